"""The rollback step: undo a migrate — what it restored leaves the target, the source runs again.

Consumes ``ferry.step.rollback`` (a ``rollback`` request names the migrate it undoes in
``rollback_of``; a failed or cancelled cutover submits one by itself). It runs in the restore
process because it is the restore's inverse and needs the same access to the target cluster.

What to remove is found in the cluster, not in a report: every object a migrate restores carries
``ferry.dev/migration=<plan key>`` (``shared.contracts.migrations``), the same for every stage and the
cutover of one application's move, so one label selector finds what the whole plan created, even
objects of an attempt that crashed before it could write a report. Every type the target's
discovery API serves is scanned, in the mapped target namespaces and cluster-wide for cluster-scoped
types. Deletion goes in an order that never strands anything:

1. workloads (foreground, so their pods are gone with them and no claim is still mounted);
2. everything else but claims, volumes and namespaces (namespaced first, then cluster-scoped);
3. claims — only those that also carry Ferry's ``ferry.dev/request`` label — then volumes;
4. namespaces that carry the plan label (Ferry created them), waited out until gone — only when
   nothing but what the cluster makes itself (the ``default`` ServiceAccount, ``kube-root-ca.crt``,
   owned and token objects) is left in them: deleting a namespace deletes all it holds, and a claim
   or an object someone else put there since is not Ferry's to remove (it stays, with a warning).

Each stage waits until its objects are gone; cancellation is checked between deletions. Then the
source's workloads are brought back from their quiesce annotations (``shared.runtime.quiescing``).
The original request is marked ``rolled_back``. Run twice, the second finds nothing and changes
nothing: the step is idempotent like every step.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from dataclasses import dataclass

from shared.bus.states import RequestNotFound
from shared.contracts.errors import Cancelled, TemporaryError
from shared.contracts.migrations import PLAN_LABEL, plan_key
from shared.contracts.requests import MobilityRequest, RequestKind
from shared.contracts.states import RequestState
from shared.contracts.steps import StepName, StepResult
from shared.kube import (
    Cluster,
    Clusters,
    MethodNotAllowed,
    NotFound,
    Obj,
    Resource,
    RetryPolicy,
    UnknownResource,
    object_key,
)
from shared.kube.comparing import REQUEST_LABEL
from shared.runtime import StepContext, StepService
from shared.runtime.outcomes import Failed, Outcome, Succeeded, WasCancelled
from shared.runtime.quiescing import unquiesce
from shared.runtime.stepping import Checkpoint, throttled

log = logging.getLogger("ferry.rollback")

WORKLOADS = frozenset(
    {
        "deployments.apps",
        "statefulsets.apps",
        "daemonsets.apps",
        "replicasets.apps",
        "replicationcontrollers",
        "cronjobs.batch",
        "jobs.batch",
        "pods",
    }
)
CLAIMS, VOLUMES, NAMESPACES = "persistentvolumeclaims", "persistentvolumes", "namespaces"
NEVER = frozenset({"events", "events.events.k8s.io", "endpoints", "endpointslices.discovery.k8s.io"})
CLUSTER_MADE = frozenset({("serviceaccounts", "default"), ("configmaps", "kube-root-ca.crt")})
TOKEN = "kubernetes.io/service-account-token"
GONE_WITHIN = 300.0  # seconds one object may take to go (finalizers, a namespace's contents)
CANCEL_CHECK = 0.5  # seconds between two cancellation checks while deleting

Found = list[tuple[Resource, Obj]]


def target_namespaces(request: MobilityRequest) -> list[str | None]:
    """Where the migrate wrote namespaced objects: its namespaces as mapped, or every namespace (None)
    when it moved by selector alone (the plan label still picks out only its own objects)."""
    mapped = request.target.namespace_map
    return [mapped.get(ns, ns) for ns in sorted(request.source.namespaces)] or [None]


async def scannable(cluster: Cluster) -> list[Resource]:
    """Every type the cluster serves (its discovery API, CRDs included) that can be listed and deleted."""
    return [
        r
        for r in await cluster.resources.preferred()
        if r.name not in NEVER and r.can("list") and r.can("delete")
    ]


async def listed(
    cluster: Cluster, resource: Resource, namespace: str | None, selector: str = ""
) -> list[Obj]:
    """The objects of one type (none when the type went away since discovery)."""
    try:
        return await cluster.list(resource, namespace, label_selector=selector)
    except (NotFound, MethodNotAllowed, UnknownResource) as e:
        log.info("%s not scanned: %s", resource.name, e)
        return []


async def labelled(
    cluster: Cluster, resources: list[Resource], selector: str, namespaces: list[str | None]
) -> Found:
    """Every object the label selector picks, in ``namespaces`` (None: all) and cluster-wide."""
    found: Found = []
    for resource in resources:
        for namespace in namespaces if resource.namespaced else [None]:
            found += [(resource, obj) for obj in await listed(cluster, resource, namespace, selector)]
    return found


def made_by_the_cluster(resource: Resource, obj: Obj) -> bool:
    """An object a namespace holds without anyone writing it (or that its owner takes with it)."""
    meta = obj.get("metadata") or {}
    return (
        (resource.name, meta.get("name")) in CLUSTER_MADE
        or bool(meta.get("ownerReferences") or meta.get("deletionTimestamp"))
        or (resource.name == "secrets" and obj.get("type") == TOKEN)
    )


async def remaining(cluster: Cluster, resources: list[Resource], namespace: str) -> list[str]:
    """What still lives in a namespace beside what the cluster makes itself."""
    left: list[str] = []
    for resource in resources:
        if resource.namespaced:
            objs = await listed(cluster, resource, namespace)
            left += [object_key(resource, o) for o in objs if not made_by_the_cluster(resource, o)]
    return left


@dataclass
class Stages:
    """The plan's objects in deletion order (see the module docstring)."""

    ordered: list[Found]  # workloads; the rest; claims and volumes
    namespaces: Found  # the plan's namespaces, deleted last if nothing else is left in them
    kept: list[
        str
    ]  # claims without Ferry's request label: Ferry did not make them, whatever their labels say


def stages(found: Found) -> Stages:
    """Sort the plan's objects into the order they are deleted in."""
    workloads: Found = []
    rest: Found = []
    claims: Found = []
    namespaces: Found = []
    kept: list[str] = []
    for resource, obj in found:
        labels = (obj.get("metadata") or {}).get("labels") or {}
        if resource.name in WORKLOADS:
            workloads.append((resource, obj))
        elif resource.name == NAMESPACES:
            namespaces.append((resource, obj))
        elif resource.name in (CLAIMS, VOLUMES) and REQUEST_LABEL not in labels:
            kept.append(object_key(resource, obj))
        elif resource.name in (CLAIMS, VOLUMES):
            claims.append((resource, obj))
        else:
            rest.append((resource, obj))
    rest.sort(key=lambda found: not found[0].namespaced)  # namespaced first (stable)
    claims.sort(key=lambda found: found[0].name == VOLUMES)  # claims before their volumes
    return Stages([workloads, rest, claims], namespaces, kept)


async def delete_all(cluster: Cluster, objects: Found, checkpoint: Checkpoint) -> list[str]:
    """Delete the objects, then wait until each is gone; returns their keys."""
    removed: list[str] = []
    for resource, obj in objects:
        await checkpoint()
        meta = obj.get("metadata") or {}
        namespace = meta.get("namespace") if resource.namespaced else None
        propagation = "Foreground" if resource.name in WORKLOADS else "Background"
        await cluster.delete(resource, meta["name"], namespace=namespace, propagation=propagation)
        removed.append(object_key(resource, obj))
    for resource, obj in objects:
        meta = obj.get("metadata") or {}
        namespace = meta.get("namespace") if resource.namespaced else None
        try:
            await cluster.wait_deleted(resource, meta["name"], namespace=namespace, within=GONE_WITHIN)
        except TimeoutError as e:
            raise TemporaryError(f"{object_key(resource, obj)} is still being deleted: {e}") from e
    return removed


def refusal(rollback_of: str, original: RequestState | None) -> str:
    """Why this rollback cannot run, or "" when it can."""
    if original is None:
        return f"request {rollback_of} is unknown: there is nothing to roll back"
    if original.request.kind is not RequestKind.MIGRATE:
        kind = original.request.kind.value
        return f"request {rollback_of} is a {kind}: only a migrate can be rolled back"
    if not original.phase.final:
        return (
            f"request {rollback_of} is still {original.phase.value}: cancel it first "
            "(a cancelled cutover is rolled back by itself)"
        )
    return ""


def marked(removed: list[str], restored: list[str], target: str) -> Callable[[RequestState], bool]:
    """The change to the original request's state: rolled back, and its reason says what that did."""
    note = (
        f"rolled back: {len(removed)} object(s) removed from {target}, "
        f"source restored ({len(restored)} workload(s) brought back)"
    )

    def mark(state: RequestState) -> bool:
        if state.rolled_back and "rolled back:" in state.reason:
            return False
        state.rolled_back = True
        state.reason = f"{state.reason}; {note}" if state.reason else note
        return True

    return mark


async def remove_labelled(
    ctx: StepContext, target: Cluster, selector: str, namespaces: list[str | None]
) -> tuple[list[str], list[str]]:
    """Delete what carries the label ``selector`` picks, in ``namespaces`` (None: every namespace)
    and cluster-wide, stage by stage (``stages``), each waited out; then its namespaces that hold
    nothing else. Returns the keys removed and a warning (also emitted) for each thing left in
    place. Shared by the rollback (the plan's label) and a drill's cleanup (the request's label)."""
    resources = await scannable(target)
    found = stages(await labelled(target, resources, selector, namespaces))
    checkpoint = throttled(ctx.checkpoint, CANCEL_CHECK)
    total = sum(len(s) for s in found.ordered) + len(found.namespaces)
    warnings = [
        f"{key}: carries the plan's label but not Ferry's request label, left in place" for key in found.kept
    ]
    removed: list[str] = []
    for objects in found.ordered:
        removed += await delete_all(target, objects, checkpoint)
        await ctx.progress(items_done=len(removed), items_total=total)
    empty: Found = []
    for resource, namespace in found.namespaces:
        name = namespace["metadata"]["name"]
        left = await remaining(target, resources, name)
        if left:
            shown = ", ".join(left[:5]) + (" ..." if len(left) > 5 else "")
            warnings.append(f"namespace {name} kept: it still holds {len(left)} object(s) ({shown})")
        else:
            empty.append((resource, namespace))
    removed += await delete_all(target, empty, checkpoint)
    for message in warnings:
        await ctx.warn(message)
    return removed, warnings


class RollbackService(StepService):
    name = "rollback"
    description = "Undoes a migrate: removes what it restored from the target, brings the source back"
    step = StepName.ROLLBACK

    async def setup(self) -> None:
        self.clusters = Clusters(self.settings.kubeconfig, retry=RetryPolicy(attempts=4))
        await super().setup()

    async def teardown(self) -> None:
        await self.clusters.close()
        await super().teardown()

    async def handle(self, ctx: StepContext) -> Outcome:
        rollback_of = ctx.request.rollback_of
        if not rollback_of:
            return Failed("a rollback request names the migrate it undoes (rollback_of)", code="invalid")
        try:
            original: RequestState | None = (await self.store.get(rollback_of))[0]
        except RequestNotFound:
            original = None
        why = refusal(rollback_of, original)
        if why or original is None:
            return Failed(why, code="not-found" if original is None else "invalid")
        try:
            return Succeeded(await self._undo(ctx, original))
        except Cancelled as e:
            return WasCancelled(str(e))

    async def _undo(self, ctx: StepContext, original: RequestState) -> StepResult:
        """Remove the plan's objects from the target, then bring the source's workloads back."""
        request = original.request
        target_name = request.target.cluster or request.source.cluster
        removed, warnings = await self._remove(ctx, await self.clusters.get(target_name), request)
        await ctx.checkpoint()
        source = await self.clusters.get(request.source.cluster)
        namespaces = request.source.namespaces or [
            ns["metadata"]["name"] for ns in await source.list(NAMESPACES)
        ]
        restored = await unquiesce(source, namespaces, request.source.selector)
        await self.store.update(original.id, marked(removed, restored, target_name))
        log.info("rolled back %s: %d removed, %d restored", original.id, len(removed), len(restored))
        return StepResult(
            outputs={"removed": json.dumps(removed), "restored": json.dumps(restored)},
            counts={"removed": len(removed), "restored": len(restored), "kept": len(warnings)},
            warnings=warnings,
            message=f"rolled back {original.id}: {len(removed)} object(s) removed from {target_name}, "
            f"{len(restored)} workload(s) of {request.source.cluster} brought back",
        )

    async def _remove(
        self, ctx: StepContext, target: Cluster, request: MobilityRequest
    ) -> tuple[list[str], list[str]]:
        """Delete what the migration plan created in the target (see ``remove_labelled``)."""
        selector = f"{PLAN_LABEL}={plan_key(request)}"
        return await remove_labelled(ctx, target, selector, target_namespaces(request))
