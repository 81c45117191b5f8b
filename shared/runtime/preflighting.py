"""Preflight: can this request run? Every check a migrate, replicate, restore or drill needs, in seconds.

A request that cannot run should fail before it takes a snapshot, and say everything that is wrong at
once, not one problem per attempt. ``preflight`` answers with data: a list of ``Check`` rows (what,
subject, ok, detail), the failed ones being the problems. What is checked:

- **source cluster** (migrate, replicate): reachable (its version); the namespaces exist; a
  SelfSubjectAccessReview says ``list`` and ``get`` are allowed on every type in scope in each
  namespace (cluster-wide for a selector) and on the cluster-scoped objects discovery reads; with
  ``volumes.method: csi``, a VolumeSnapshotClass exists for the provisioner of every storage class
  the claims use;
- **target cluster** (migrate, restore, drill): reachable; ``create``, ``patch`` and ``delete``
  allowed on namespaces and, in each target namespace (after ``namespace_map``), on what a restore
  writes — the usual kinds for a migrate, exactly the kinds of the snapshot (plus the claims, mover
  Jobs and their Secrets Ferry writes itself) for a restore or drill; every storage class the claims
  use, after ``storage_class_map``, exists (a claim without a class needs a default class); each
  target namespace's state against the conflict policy (with ``fail``, an existing namespace holding
  objects of the application is a problem; a namespace being deleted always is);
- **repositories**: the source one (restore, drill: it exists, opens with the configured password
  and holds the snapshot, whose manifests say what will be restored; migrate, replicate: reachable,
  and if it exists the key opens it) and the target one likewise (it may not exist yet: the transfer
  step creates it; a wrong key is a problem).

A dry run of a migrate or replicate (it stops after discovery) skips the repositories, which it does
not use. Independent checks run concurrently, each network call under a timeout, so a dead cluster or store
costs ``timeout`` seconds, not minutes of retries. Nothing is written anywhere.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, TypeVar

import msgspec

from shared.contracts.requests import ConflictPolicy, MobilityRequest, RequestKind, SnapshotMethod
from shared.contracts.steps import StepResult
from shared.kube import Cluster, Clusters, Obj, Resource, UnknownResource
from shared.runtime.applications import App, Claim, from_manifests, skip_reason
from shared.runtime.outcomes import Failed, Outcome, Succeeded
from shared.runtime.repositories import repository_url, store_settings
from shared.runtime.settings import Settings
from shared.store import open_store

T = TypeVar("T")

READ_VERBS = ("list", "get")
WRITE_VERBS = ("create", "patch", "delete")
# What a migrate writes into a target namespace (a restore or drill: the snapshot's own kinds).
TARGET_KINDS = (
    "configmaps",
    "secrets",
    "serviceaccounts",
    "persistentvolumeclaims",
    "services",
    "deployments.apps",
    "statefulsets.apps",
    "jobs.batch",
)
# What Ferry itself writes beside a restored application: claims, mover Jobs and their Secrets.
FERRY_KINDS = ("persistentvolumeclaims", "jobs.batch", "secrets")
# Cluster-scoped objects discovery reads at the source.
SOURCE_CLUSTER_KINDS = ("namespaces", "persistentvolumes", "storageclasses.storage.k8s.io")
ACCESS_REVIEWS = "/apis/authorization.k8s.io/v1/selfsubjectaccessreviews"
STORAGE_CLASSES = "storageclasses.storage.k8s.io"
SNAPSHOT_CLASSES = "volumesnapshotclasses.snapshot.storage.k8s.io"
DEFAULT_CLASS = "storageclass.kubernetes.io/is-default-class"
CONCURRENT_REVIEWS = 16


class Check(msgspec.Struct, frozen=True, kw_only=True):
    """One row of the preflight table; ``ok=False`` is a problem."""

    what: str  # cluster, namespace, access, storage class, snapshot class, repository, snapshot
    subject: str  # what was checked, e.g. "target west: create, patch, delete in shop-west"
    ok: bool
    detail: str = ""

    def problem(self) -> str:
        return f"{self.what} {self.subject}: {self.detail}"


def problems(checks: Iterable[Check]) -> list[Check]:
    return [c for c in checks if not c.ok]


def verdict(checks: list[Check]) -> Outcome:
    """The preflight step's outcome: succeeded, or failed with every problem in the reason — a
    permanent failure, since a retry would find the same."""
    failed = problems(checks)
    if failed:
        listing = "; ".join(c.problem() for c in failed)
        return Failed(f"{len(failed)} problem(s) found before any copy: {listing}")
    result = StepResult(counts={"checks": len(checks), "problems": 0}, message=f"{len(checks)} checks passed")
    return Succeeded(result)


def listable_namespaced(resource: Resource) -> bool:
    """The default scope of a source's types: namespaced and listable (discovery narrows it further)."""
    return resource.namespaced and resource.can("list")


def _group_resource(name: str) -> tuple[str, str]:
    plural, _, group = name.partition(".")
    return group, plural


def _error(e: BaseException) -> str:
    return str(e) or type(e).__name__


@dataclass
class _Preflight:
    request: MobilityRequest
    settings: Settings
    clusters: Clusters
    in_scope: Callable[[Resource], bool]
    timeout: float
    checks: list[Check] = field(default_factory=list)

    def add(self, what: str, subject: str, ok: bool, detail: str = "") -> None:
        self.checks.append(Check(what=what, subject=subject, ok=ok, detail=detail))

    async def bounded(self, call: Awaitable[T]) -> T:
        return await asyncio.wait_for(call, self.timeout)

    # --- clusters -------------------------------------------------------------------------------
    async def reach(self, role: str, name: str) -> Cluster | None:
        subject = f"{role} {name}"
        try:
            cluster = await self.clusters.get(name)
            version = await self.bounded(cluster.version())
        except TimeoutError:
            self.add("cluster", subject, False, f"no answer within {self.timeout:.0f}s")
            return None
        except Exception as e:  # noqa: BLE001 - any failure is this row's verdict
            self.add("cluster", subject, False, _error(e))
            return None
        self.add("cluster", subject, True, f"reachable, Kubernetes {version.get('gitVersion', '?')}")
        return cluster

    async def allowed(self, cluster: Cluster, verb: str, resource: str, namespace: str) -> bool:
        group, plural = _group_resource(resource)
        attributes = {"verb": verb, "group": group, "resource": plural}
        if namespace:
            attributes["namespace"] = namespace
        review = {
            "apiVersion": "authorization.k8s.io/v1",
            "kind": "SelfSubjectAccessReview",
            "spec": {"resourceAttributes": attributes},
        }
        doc = await cluster.transport.request("POST", ACCESS_REVIEWS, body=review, what="access review")
        return bool((doc.get("status") or {}).get("allowed"))

    async def access(
        self, role: str, cluster: Cluster, verbs: tuple[str, ...], resources: Iterable[str], namespace: str
    ) -> None:
        """One row: may we do ``verbs`` on each of ``resources`` in ``namespace`` ("" cluster-wide)?"""
        names = sorted(set(resources))
        where = f"in {namespace}" if namespace else "cluster-wide"
        subject = f"{role} {cluster.name}: {', '.join(verbs)} {where}"
        limit = asyncio.Semaphore(CONCURRENT_REVIEWS)

        async def one(verb: str, resource: str) -> bool:
            async with limit:
                return await self.allowed(cluster, verb, resource, namespace)

        pairs = [(v, r) for r in names for v in verbs]
        try:
            answers = await self.bounded(asyncio.gather(*(one(v, r) for v, r in pairs)))
        except TimeoutError:
            self.add("access", subject, False, f"no answer to the access reviews within {self.timeout:.0f}s")
            return
        except Exception as e:  # noqa: BLE001
            self.add("access", subject, False, f"cannot review access: {_error(e)}")
            return
        denied = [f"{v} {r}" for (v, r), ok in zip(pairs, answers, strict=True) if not ok]
        if denied:
            self.add("access", subject, False, "denied: " + ", ".join(denied))
        else:
            self.add("access", subject, True, f"allowed on {len(names)} type(s)")

    async def source(self, cluster: Cluster) -> App | None:
        """The source's checks; the application as the source holds it (its claims, its objects)."""
        request = self.request
        source = request.source
        app = App(namespaces=list(source.namespaces))
        try:
            types = [r for r in await self.bounded(cluster.resources.preferred()) if self.in_scope(r)]
        except Exception as e:  # noqa: BLE001
            self.add("access", f"source {cluster.name}", False, f"cannot discover its types: {_error(e)}")
            return None
        present = await asyncio.gather(*(self.source_namespace(cluster, ns) for ns in source.namespaces))
        scopes = [ns for ns, ok in zip(source.namespaces, present, strict=True) if ok]
        names = [r.name for r in types]
        reads = [self.access("source", cluster, READ_VERBS, names, ns) for ns in scopes]
        if not source.namespaces:  # a selector across namespaces
            reads.append(self.access("source", cluster, READ_VERBS, names, ""))
        reads.append(self.access("source", cluster, READ_VERBS, SOURCE_CLUSTER_KINDS, ""))
        facts = self.source_facts(cluster, app, scopes if source.namespaces else [""])
        results = await asyncio.gather(*reads, facts, return_exceptions=True)
        if isinstance(results[-1], BaseException):
            self.add("claims", f"source {cluster.name}", False, f"cannot read: {_error(results[-1])}")
            return None
        if request.volumes.method is SnapshotMethod.CSI:
            await self.snapshot_classes(cluster, app.claims)
        return app

    async def source_namespace(self, cluster: Cluster, name: str) -> bool:
        subject = f"source {cluster.name}/{name}"
        try:
            found = await self.bounded(cluster.find("namespaces", name))
        except Exception as e:  # noqa: BLE001
            self.add("namespace", subject, False, f"cannot read it: {_error(e)}")
            return False
        self.add("namespace", subject, found is not None, "exists" if found else "does not exist")
        return found is not None

    async def source_facts(self, cluster: Cluster, app: App, scopes: list[str]) -> None:
        selector = self.request.source.selector

        async def listing(resource: str, namespace: str) -> list[Obj]:
            try:
                return await self.bounded(cluster.list(resource, namespace or None, label_selector=selector))
            except UnknownResource:
                return []

        jobs = [(r, ns) for r in TARGET_KINDS for ns in scopes]
        lists = await asyncio.gather(*(listing(r, ns) for r, ns in jobs))
        for (resource, _), objs in zip(jobs, lists, strict=True):
            for obj in objs:
                meta = obj.get("metadata") or {}
                if skip_reason(obj):
                    continue
                app.objects.add((resource, meta.get("namespace", ""), meta.get("name", "")))
                if resource == "persistentvolumeclaims":
                    spec = obj.get("spec") or {}
                    app.claims.append(
                        Claim(
                            meta.get("namespace", ""),
                            meta.get("name", ""),
                            spec.get("storageClassName") or "",
                        )
                    )
        if not app.namespaces:
            app.namespaces = sorted({ns for _, ns, _ in app.objects if ns})

    async def snapshot_classes(self, cluster: Cluster, claims: list[Claim]) -> None:
        """``volumes.method: csi``: each used storage class's provisioner has a VolumeSnapshotClass."""
        used = sorted({c.storage_class for c in claims})
        if not used:
            return
        try:
            classes = {c["metadata"]["name"]: c for c in await self.bounded(cluster.list(STORAGE_CLASSES))}
            try:
                snapshot_classes = await self.bounded(cluster.list(SNAPSHOT_CLASSES))
            except UnknownResource:
                snapshot_classes = []
        except Exception as e:  # noqa: BLE001
            self.add("snapshot class", f"source {cluster.name}", False, f"cannot read: {_error(e)}")
            return
        for name in used:
            subject = f"source {cluster.name}: storage class {name or '(default)'}"
            storage_class = classes.get(name) if name else _default_class(list(classes.values()))
            if storage_class is None:
                self.add("snapshot class", subject, False, "the storage class does not exist")
                continue
            driver = storage_class.get("provisioner", "")
            fitting = [c["metadata"]["name"] for c in snapshot_classes if c.get("driver") == driver]
            detail = (
                f"{', '.join(fitting)} (driver {driver})"
                if fitting
                else (
                    f"no VolumeSnapshotClass for driver {driver}, and the request asks for CSI snapshots only"
                )
            )
            self.add("snapshot class", subject, bool(fitting), detail)

    async def target(self, cluster: Cluster, app: App | None) -> None:
        """The target's checks: access, storage classes, and the namespaces' state."""
        request = self.request
        ns_map = request.target.namespace_map
        namespaces = [ns_map.get(ns, ns) for ns in (app.namespaces if app else request.source.namespaces)]
        if app is not None and app.kinds:
            kinds = {k for k, namespaced in app.kinds if namespaced} | set(FERRY_KINDS)
            cluster_kinds = {k for k, namespaced in app.kinds if not namespaced} | {"namespaces"}
        else:
            kinds, cluster_kinds = set(TARGET_KINDS), {"namespaces"}
        work = [self.access("target", cluster, WRITE_VERBS, cluster_kinds, "")]
        work += [self.access("target", cluster, WRITE_VERBS, kinds, ns) for ns in namespaces]
        if app is not None:
            work.append(self.storage_classes(cluster, app.claims))
            work += [self.target_namespace(cluster, source_ns, app) for source_ns in app.namespaces]
        await asyncio.gather(*work)

    async def storage_classes(self, cluster: Cluster, claims: list[Claim]) -> None:
        mapping = self.request.target.storage_class_map
        try:
            classes = await self.bounded(cluster.list(STORAGE_CLASSES))
        except Exception as e:  # noqa: BLE001
            self.add("storage class", f"target {cluster.name}", False, f"cannot read: {_error(e)}")
            return
        names = sorted(c["metadata"]["name"] for c in classes)
        users: dict[str, list[str]] = {}
        for claim in claims:
            users.setdefault(claim.storage_class, []).append(f"{claim.namespace}/{claim.name}")
        for used in sorted(users):
            wanted = mapping.get(used, used)
            claims_text = f"used by {', '.join(sorted(users[used]))}"
            if not wanted:
                default = _default_class(classes)
                subject = f"target {cluster.name}: (default)"
                detail = (
                    f"{default['metadata']['name']}; {claims_text}"
                    if default
                    else (f"the target has no default storage class; {claims_text}")
                )
                self.add("storage class", subject, default is not None, detail)
                continue
            mapped = f" (mapped from {used})" if wanted != used else ""
            subject = f"target {cluster.name}: {wanted}{mapped}"
            if wanted in names:
                self.add("storage class", subject, True, f"exists; {claims_text}")
            else:
                detail = f"does not exist on the target (it has {', '.join(names) or 'none'}); {claims_text}"
                self.add("storage class", subject, False, detail)
        for old, new in sorted(mapping.items()):
            if old not in users:
                self.add(
                    "storage class", f"mapping {old}:{new}", True, f"no claim of the application uses {old}"
                )

    async def target_namespace(self, cluster: Cluster, source_ns: str, app: App) -> None:
        name = self.request.target.namespace_map.get(source_ns, source_ns)
        subject = f"target {cluster.name}/{name}"
        policy = self.request.conflict_policy
        try:
            namespace = await self.bounded(cluster.find("namespaces", name))
            if namespace is None:
                self.add("namespace", subject, True, "does not exist yet: the restore creates it")
                return
            if (namespace.get("status") or {}).get("phase") == "Terminating":
                self.add("namespace", subject, False, "is being deleted; wait until it is gone")
                return
            mine = {(r, n) for r, ns, n in app.objects if ns == source_ns}
            resources = sorted({r for r, _ in mine})
            lists = await self.bounded(asyncio.gather(*(_names(cluster, r, name) for r in resources)))
        except Exception as e:  # noqa: BLE001
            self.add("namespace", subject, False, f"cannot read it: {_error(e)}")
            return
        there = {(r, n) for r, names in zip(resources, lists, strict=True) for n in names}
        clashes = sorted(f"{r}/{n}" for r, n in mine & there)
        if not clashes:
            self.add("namespace", subject, True, "exists, holds none of the application's objects")
            return
        shown = ", ".join(clashes[:5]) + (f" and {len(clashes) - 5} more" if len(clashes) > 5 else "")
        if policy is ConflictPolicy.FAIL:
            detail = f"exists and holds {len(clashes)} of the application's objects ({shown}); "
            self.add("namespace", subject, False, detail + "the conflict policy is fail")
            return
        fate = {
            ConflictPolicy.SKIP: "kept as they are",
            ConflictPolicy.UPDATE: "updated",
            ConflictPolicy.RECREATE: "recreated",
        }[policy]
        self.add(
            "namespace",
            subject,
            True,
            f"exists; {len(clashes)} of the application's objects there will be {fate} ({shown})",
        )

    # --- repositories -------------------------------------------------------------------------
    async def repositories(self) -> App | None:
        """Both repositories' checks; for a restore or drill, the application its snapshot holds."""
        request = self.request
        restoring = request.kind in (RequestKind.RESTORE, RequestKind.DRILL)
        if not self.settings.repo_password:
            self.add(
                "repository", "password", False, "no repository password configured (FERRY_REPO_PASSWORD)"
            )
            return None
        source_name, target_name = request.source.repository, request.target.repository
        try:
            source_url = repository_url(self.settings, source_name)
        except Exception as e:  # noqa: BLE001
            self.add("repository", f"source {source_name or 'default'}", False, _error(e))
            source_url = ""
        jobs: list[Awaitable[App | None]] = []
        if source_url:
            jobs.append(
                self.repository("source", source_name, source_url, must_exist=restoring, read=restoring)
            )
        if target_name and target_name != source_name:
            try:
                target_url = repository_url(self.settings, target_name)
            except Exception as e:  # noqa: BLE001
                self.add("repository", f"target {target_name}", False, _error(e))
                target_url = ""
            if target_url and target_url != source_url:
                jobs.append(self.repository("target", target_name, target_url, must_exist=False, read=False))
        found = await asyncio.gather(*jobs)
        return found[0] if found and restoring and source_url else None

    async def repository(self, role: str, name: str, url: str, *, must_exist: bool, read: bool) -> App | None:
        subject = f"{role} {name or 'default'} ({url})"
        settings, snapshot = self.settings, self.request.source.snapshot
        try:
            verdict = await self.bounded(
                asyncio.to_thread(_open_repository, settings, name, url, must_exist, snapshot if read else "")
            )
        except TimeoutError:
            self.add("repository", subject, False, f"no answer within {self.timeout:.0f}s")
            return None
        except Exception as e:  # noqa: BLE001
            self.add("repository", subject, False, _error(e))
            return None
        self.add("repository", subject, verdict.ok, verdict.detail)
        if verdict.group:
            ok = verdict.manifests is not None
            self.add("snapshot", f"{snapshot} in {name or 'default'}", ok, verdict.snapshot_detail)
            if verdict.manifests is not None:
                return from_manifests(verdict.manifests, self.request)
        return None


@dataclass
class _Opened:
    ok: bool
    detail: str
    group: str = ""
    manifests: bytes | None = None
    snapshot_detail: str = ""


def _open_repository(settings: Settings, name: str, url: str, must_exist: bool, snapshot: str) -> _Opened:
    """Blocking: open the repository with the configured password; with ``snapshot``, read its manifests."""
    from shared.repository import Repository, RepositoryNotFound, WrongKey, read_blob

    store = open_store(url, store_settings(settings, name))
    try:
        try:
            repo = Repository.open(store, settings.repo_password.encode())
        except RepositoryNotFound:
            if must_exist:
                return _Opened(False, "does not exist")
            return _Opened(True, "does not exist yet: Ferry creates it on first use")
        except WrongKey:
            return _Opened(False, "the configured password does not open it (wrong key)")
        if not snapshot:
            return _Opened(True, "opens with the configured key")
        records = repo.snapshots()
        groups = [r.group for _, r in records if r.kind == "blob" and r.name == "manifests" and r.group]
        group = (groups[-1] if groups else "") if snapshot == "latest" else snapshot
        manifests = [i for i, r in records if r.group == group and r.kind == "blob" and group]
        if not manifests:
            what = (
                "no Ferry snapshot to take as latest" if snapshot == "latest" else f"no snapshot {snapshot}"
            )
            return _Opened(True, "opens with the configured key", snapshot or "?", None, f"{what} in it")
        data = read_blob(repo, manifests[-1])
        volumes = sum(1 for _, r in records if r.group == group and r.kind == "tree")
        return _Opened(
            True, "opens with the configured key", group, data, f"{group}: {volumes} volume record(s)"
        )
    finally:
        store.close()


async def _names(cluster: Cluster, resource: str, namespace: str) -> set[str]:
    try:
        return {o["metadata"]["name"] for o in await cluster.list(resource, namespace) if not skip_reason(o)}
    except UnknownResource:
        return set()


def _default_class(classes: list[Obj]) -> Obj | None:
    for storage_class in classes:
        if (storage_class["metadata"].get("annotations") or {}).get(DEFAULT_CLASS) == "true":
            return storage_class
    return None


async def preflight(
    request: MobilityRequest,
    settings: Settings,
    clusters: Clusters,
    *,
    in_scope: Callable[[Resource], bool] = listable_namespaced,
    within: float = 10.0,
) -> list[Check]:
    """Every check the request needs (module docstring), concurrently, each call answered ``within``
    seconds or failed; the checks that failed are the problems."""
    run = _Preflight(request, settings, clusters, in_scope, within)
    reading = request.kind in (RequestKind.MIGRATE, RequestKind.REPLICATE)
    writing = request.kind is not RequestKind.REPLICATE and request.target.cluster

    async def nothing() -> None:
        return None

    # A dry run of a migrate or replicate stops after discovery: it opens no repository.
    repositories = not (request.dry_run and reading)
    source, target, from_snapshot = await asyncio.gather(
        run.reach("source", request.source.cluster) if reading else nothing(),
        run.reach("target", request.target.cluster) if writing and request.target.cluster else nothing(),
        run.repositories() if repositories else nothing(),
    )
    app = from_snapshot
    if source is not None:
        app = await run.source(source)
    if target is not None:
        await run.target(target, app)
    return sorted(run.checks, key=_order)


_WHAT = (
    "cluster",
    "namespace",
    "access",
    "snapshot class",
    "storage class",
    "claims",
    "repository",
    "snapshot",
)


def _order(check: Check) -> tuple[int, int, str]:
    """The table's order: the source's rows, the target's, then the repositories'."""
    role = 2 if check.what in ("repository", "snapshot") else 0 if check.subject.startswith("source ") else 1
    what = _WHAT.index(check.what) if check.what in _WHAT else len(_WHAT)
    return role, what, check.subject


def summary(checks: list[Check]) -> dict[str, Any]:
    """The body of the preflight ``Report``: the table and its counts."""
    return {
        "checks": [msgspec.to_builtins(c) for c in checks],
        "passed": sum(1 for c in checks if c.ok),
        "problems": len(problems(checks)),
    }
