"""The snapshot step: one Ferry snapshot (manifests + every volume) of the application in its inventory.

Consumes ``ferry.step.snapshot``. Reads the inventory discovery stored, opens the source
repository, and writes one group of records under a snapshot id derived from the request id (so a
redelivered step writes into the same group and reuses the volumes an earlier attempt finished):

1. sweep what an earlier attempt left (by label) and un-quiesce what it left quiesced — except on a
   cutover, which quiesces again instead (idempotent: the originals and the first quiesce time are
   kept in the annotations), so a retry never brings the source up for a moment;
2. quiesce if asked, and always on a cutover, never on a stage (``shared.runtime.quiescing``); a
   cutover also emits a ``Quiesced`` event (the downtime clock starts) and outputs ``quiesced_at``;
3. copy the volumes, ``request.volumes.parallel`` at a time (``copying``): a CSI VolumeSnapshot and
   a claim from it when a snapshot class fits (``auto``/``csi``), else the live claim read-only,
   which is crash-consistent only and said so as a warning; progress per volume and in total;
4. write the manifests blob last (encrypted like all repository data — it holds Secrets); its
   tags are what the catalog lists, and a group without it is an interrupted attempt. The inventory
   holds only digests of the values of Secrets and of objects marked ``ferry.dev/sensitive`` (it is
   stored on the bus), so those objects are read again from the cluster, by name, for the manifests;
   one deleted since discovery is left out with a warning;
5. always: un-quiesce (not on a cutover: its source stays down, the application moves to the
   target; a rollback brings it back), delete every temporary object (credentials Secret,
   VolumeSnapshots, claims, Jobs) — on success and on failure.

Outputs: ``{"snapshot": <id>, "repository": <name>}``, and ``quiesced_at`` on a cutover.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass
from typing import Any

import msgspec

from services.snapshot import catalog, movers
from services.snapshot.copying import Job, Progress, capture, copy_volume, sweep
from services.snapshot.endpoints import CatalogEndpoints
from services.snapshot.hooking import BackupHooks
from shared.contracts import snapshots as c
from shared.contracts.errors import PermanentError
from shared.contracts.events import Quiesced, Report
from shared.contracts.inventory import Inventory, Item, Volume, decode_inventory
from shared.contracts.migrations import QUIESCED_AT
from shared.contracts.reports import DocumentKind
from shared.contracts.requests import MobilityRequest, SnapshotMethod
from shared.contracts.steps import StepName, StepResult
from shared.kube import Cluster, Clusters, RetryPolicy
from shared.kube.comparing import is_sensitive
from shared.repository import Repository, Snapshot, put_blob
from shared.runtime import Settings, StepContext, StepService
from shared.runtime.hooks import HookError, check_request
from shared.runtime.outcomes import Failed, Outcome, Succeeded
from shared.runtime.quiescing import quiesce, unquiesce
from shared.runtime.repositories import for_repository, open_repository, repository_url

log = logging.getLogger("ferry.snapshot")
HOOKS_TAG = "ferry.dev/hooks"  # manifests record: JSON list of the hooks this snapshot ran (what each did)


def app_of(request: MobilityRequest, inventory: Inventory) -> str:
    """The retention series: the request's ``app`` label, else cluster + namespaces (+ selector)."""
    if request.labels.get("app"):
        return request.labels["app"]
    app = f"{inventory.cluster}/{','.join(sorted(inventory.namespaces))}"
    return f"{app}?{inventory.selector}" if inventory.selector else app


def manifests_document(inventory: Inventory, keep_owned: bool) -> bytes:
    """The objects as a Kubernetes-List-like JSON document restore reads (sorted: dedups well).

    Items are ``{key, resource, namespaced, owned, needed_by, object}``; ``references`` is the
    inventory's reference graph (restore orders by it) and ``volumes`` the claims' facts.
    """
    items = [
        {
            "key": i.key,
            "resource": i.resource,
            "namespaced": i.namespaced,
            "owned": i.owned,
            "needed_by": i.needed_by,
            "object": i.object,
        }
        for i in sorted(inventory.items, key=lambda i: i.key)
        if keep_owned or not i.owned
    ]
    references = sorted(
        (msgspec.to_builtins(r) for r in inventory.references), key=lambda r: (r["source"], r["target"])
    )
    doc = {
        "apiVersion": "v1",
        "kind": "List",
        "metadata": {"cluster": inventory.cluster, "namespaces": inventory.namespaces},
        "items": items,
        "references": references,
        "volumes": [msgspec.to_builtins(v) for v in sorted(inventory.volumes, key=lambda v: v.key)],
    }
    return json.dumps(doc, sort_keys=True, separators=(",", ":")).encode()


async def with_values(cluster: Cluster, items: list[Item]) -> tuple[list[Item], list[str]]:
    """The items with the real values of the sensitive objects, read again from the cluster (discovery
    stored their digests only); a sensitive object that is gone is left out, with a warning."""
    out: list[Item] = []
    warnings: list[str] = []
    for item in items:
        if not is_sensitive(item.object):
            out.append(item)
            continue
        live = await cluster.find(item.resource, item.name, item.namespace or None)
        if live is None:
            warnings.append(f"{item.key} was deleted after discovery: it is not in the snapshot")
            continue
        (live.get("metadata") or {}).pop("managedFields", None)
        out.append(msgspec.structs.replace(item, object=live))
    return out, warnings


def quiesces(request: MobilityRequest) -> bool:
    """Whether the step quiesces the source: when asked, and always for a cutover (the last copy of
    a moving application must be consistent); never for a stage, which keeps the source serving."""
    return (request.quiesce or request.cutover) and not request.stage


def method_for(request: MobilityRequest, volume: Volume) -> str:
    if request.volumes.method is SnapshotMethod.LIVE:
        return "live"
    if volume.snapshot_class:
        return "csi"
    if request.volumes.method is SnapshotMethod.CSI:
        raise PermanentError(
            f"volume {volume.key} (driver {volume.driver or 'unknown'}) has no VolumeSnapshotClass, "
            "and the request asks for CSI snapshots only (volumes.method=csi)"
        )
    return "live"


Warn = Callable[[str, Volume], Awaitable[None]]


async def choose(request: MobilityRequest, inventory: Inventory, warn: Warn) -> list[tuple[Volume, str]]:
    """The volumes to copy and how (``csi`` or ``live``); each one left out is a warning."""
    chosen: list[tuple[Volume, str]] = []
    for volume in inventory.volumes if request.volumes.copy_data else []:
        if volume.storage_class in request.volumes.exclude_storage_classes:
            await warn(
                f"volume {volume.key} not copied: storage class {volume.storage_class} is excluded", volume
            )
        elif volume.phase != "Bound":
            await warn(f"volume {volume.key} not copied: the claim is {volume.phase or 'not bound'}", volume)
        else:
            chosen.append((volume, method_for(request, volume)))
    return chosen


def parents(repo: Repository, app: str) -> dict[str, str]:
    """The newest finished volume record of each claim in this application's series (for the mover)."""
    found: dict[str, str] = {}
    for record_id, record in repo.snapshots(tags={c.APP_TAG: app}):
        if record.kind == "tree" and c.VERIFICATION_TAG not in record.tags:
            found[f"{record.tags.get(c.NAMESPACE_TAG)}/{record.tags.get(c.PVC_TAG)}"] = record_id
    return found


@dataclass
class Attempt:
    """One attempt of the step: what the volume copies and the manifests write share."""

    ctx: StepContext
    cluster: Cluster
    repo: Repository
    request: MobilityRequest
    inventory: Inventory
    group: str
    app: str
    url: str
    secret: str
    mover_settings: Settings  # the service's, with the source repository's own S3 endpoint and keys
    done: dict[str, Snapshot]  # volumes an earlier attempt finished, by claim key
    previous: dict[str, str]  # the parent record of each claim (the series' newest)
    manifests_written: bool  # by an earlier attempt: the snapshot is complete but for its clean-up
    warnings: list[str]  # the result's, in the order the events said them
    hooks: BackupHooks
    quiesced_at: float | None = None  # a cutover's first quiesce (unix seconds), once quiesced

    async def warn(self, message: str, volume: Volume | None = None) -> None:
        """A warning in the result and as an event (naming the volume's claim, if any)."""
        self.warnings.append(message)
        await self.ctx.warn(message, f"persistentvolumeclaims/{volume.key}" if volume else "")


def record_of(repo: Repository, group: str, volume: Volume) -> Snapshot | None:
    """The volume record a mover stored for this claim in this group, if any."""
    for _, record in repo.snapshots(group=group, name=f"{volume.namespace}/{volume.claim}"):
        if record.kind == "tree":
            return record
    return None


class SnapshotService(StepService):
    name = "snapshot"
    description = "Ferry snapshot: an application's manifests and volumes into the repository"
    step = StepName.SNAPSHOT

    async def setup(self) -> None:
        self.clusters = Clusters(self.settings.kubeconfig, retry=RetryPolicy(attempts=4))
        self.catalog = CatalogEndpoints(self.settings)
        assert self.micro is not None
        await self.catalog.register(self.micro)
        await super().setup()

    async def teardown(self) -> None:
        await self.clusters.close()
        await asyncio.to_thread(self.catalog.close)
        await super().teardown()

    async def handle(self, ctx: StepContext) -> Outcome:
        request: MobilityRequest = ctx.request
        try:
            check_request(request)
        except HookError as e:
            return Failed(str(e))
        name = ctx.outputs.get("inventory")
        if not name:
            return Failed("no inventory: the snapshot step needs the discover step before it")
        inventory = decode_inventory((await self.topology.inventories.get(name)).data or b"")
        cluster = await self.clusters.get(inventory.cluster)
        repo = await asyncio.to_thread(open_repository, self.settings, request.source.repository)
        try:
            return Succeeded(await self._snapshot(ctx, request, inventory, cluster, repo))
        finally:
            await asyncio.to_thread(repo.close)

    async def _snapshot(
        self,
        ctx: StepContext,
        request: MobilityRequest,
        inventory: Inventory,
        cluster: Cluster,
        repo: Repository,
    ) -> StepResult:
        rid, group = ctx.request_id, catalog.snapshot_id_for(ctx.request_id)
        namespaces = sorted({v.namespace for v in inventory.volumes} | set(inventory.namespaces))
        warnings: list[str] = []
        if await sweep(cluster, namespaces, rid):
            log.info("removed what an earlier attempt of %s left", rid)
        if not request.cutover:  # an earlier attempt may have crashed quiesced; a cutover stays down
            await unquiesce(cluster, inventory.namespaces)

        async def warn(message: str, volume: Volume) -> None:
            warnings.append(message)
            await ctx.warn(message, f"persistentvolumeclaims/{volume.key}")

        chosen = await choose(request, inventory, warn)
        attempt = await self._attempt(ctx, cluster, repo, inventory, group, warnings)
        await attempt.hooks.owed()  # an earlier attempt crashed between the pre and the post hooks
        try:
            await self._take(attempt, chosen)
        finally:
            if quiesces(request) and not request.cutover:
                await unquiesce(cluster, inventory.namespaces)
            await sweep(cluster, namespaces, rid)
        return await self._described(attempt)

    async def _attempt(
        self,
        ctx: StepContext,
        cluster: Cluster,
        repo: Repository,
        inventory: Inventory,
        group: str,
        warnings: list[str],
    ) -> Attempt:
        """What this attempt shares, with what earlier attempts already stored in the group."""
        request, app = ctx.request, app_of(ctx.request, inventory)
        existing = await asyncio.to_thread(repo.snapshots, group=group)
        done = {
            f"{r.tags.get(c.NAMESPACE_TAG)}/{r.tags.get(c.PVC_TAG)}": r
            for _, r in existing
            if r.kind == "tree"
        }
        return Attempt(
            ctx=ctx,
            cluster=cluster,
            repo=repo,
            request=request,
            inventory=inventory,
            group=group,
            app=app,
            url=repository_url(self.settings, request.source.repository),
            secret=movers.short_name(ctx.request_id, "credentials"),
            mover_settings=for_repository(self.settings, request.source.repository),
            done=done,
            previous=await asyncio.to_thread(parents, repo, app),
            manifests_written=any(r.kind == "blob" and r.name == c.MANIFESTS for _, r in existing),
            warnings=warnings,
            hooks=BackupHooks(
                ctx,
                cluster,
                request.hooks,
                inventory.namespaces,
                inventory.selector,
                warn=self._warner(ctx, warnings),
            ),
        )

    @staticmethod
    def _warner(ctx: StepContext, warnings: list[str]) -> Callable[[str], Awaitable[None]]:
        async def warn(message: str) -> None:
            warnings.append(message)
            await ctx.warn(message)

        return warn

    async def _take(self, attempt: Attempt, chosen: list[tuple[Volume, str]]) -> None:
        """Credentials, quiescing, the volumes, then the manifests (unless an earlier attempt wrote them)."""
        ctx, cluster, request, inventory = attempt.ctx, attempt.cluster, attempt.request, attempt.inventory
        for namespace in sorted({v.namespace for v, _ in chosen}):
            await cluster.create(
                movers.credentials(attempt.mover_settings, attempt.secret, namespace, ctx.request_id)
            )
        if quiesces(request):
            await self._quiesce(attempt)
        for volume, method in chosen:
            if method == "live" and not quiesces(request):
                why = (
                    "the request asks for volumes.method=live"
                    if request.volumes.method is SnapshotMethod.LIVE
                    else f"no VolumeSnapshotClass for driver {volume.driver or 'unknown'}"
                )
                await attempt.warn(
                    f"volume {volume.key} is copied live ({why}): crash-consistent only", volume
                )
        consistencies = await self._copy_all(attempt, chosen)
        await ctx.checkpoint()
        if not attempt.manifests_written:
            items, gone = await with_values(cluster, inventory.items)
            for message in gone:
                await attempt.warn(message)
            attempt.inventory = msgspec.structs.replace(inventory, items=items)
            await self._write_manifests(attempt, consistencies)

    async def _quiesce(self, attempt: Attempt) -> None:
        """Quiesce the source; a cutover says since when it is down (event and output), the earliest
        attempt's time, so the downtime it reports covers every attempt."""
        done = await quiesce(attempt.cluster, attempt.inventory.items)
        if not attempt.request.cutover:
            return
        attempt.quiesced_at = done.since
        await attempt.ctx.emit(
            Quiesced(
                request_id=attempt.ctx.request_id,
                step=StepName.SNAPSHOT,
                since=done.since,
                workloads=sorted(done.keys),
            )
        )

    async def _described(self, attempt: Attempt) -> StepResult:
        """The snapshot as the catalog describes it: a ``Report`` event, and the step's result."""
        request, group = attempt.request, attempt.group
        repository = request.source.repository or "default"
        detail = await asyncio.to_thread(catalog.describe, attempt.repo, group, repository)
        summary = detail.summary
        await attempt.ctx.emit(
            Report(
                request_id=attempt.ctx.request_id,
                step=StepName.SNAPSHOT,
                title=f"Snapshot {group} of {summary.app}",
                document=DocumentKind.SNAPSHOT,
                body={**msgspec.to_builtins(detail), "hooks": attempt.hooks.records()},
            )
        )
        message = (
            f"snapshot {group}: {summary.objects} objects, {summary.volumes} volumes, "
            f"{summary.bytes} bytes ({summary.new_bytes} new), {summary.consistency}"
        )
        counts = {
            "objects": summary.objects,
            "volumes": summary.volumes,
            "bytes": summary.bytes,
            "new_bytes": summary.new_bytes,
        }
        outputs = {"snapshot": group, "repository": repository}
        if attempt.quiesced_at is not None:
            outputs[QUIESCED_AT] = f"{attempt.quiesced_at:.3f}"  # as the ferry.dev/quiesced-at note says it
        return StepResult(
            outputs=outputs,
            counts=counts,
            warnings=attempt.warnings,
            message=message,
            bytes_moved=summary.bytes,
        )

    async def _write_manifests(self, attempt: Attempt, consistencies: list[str]) -> None:
        request, inventory = attempt.request, attempt.inventory
        consistency = catalog.weakest(consistencies) or "manifests-only"  # no volume data copied
        counts = inventory.counts()
        for item in inventory.items:
            if item.owned and not request.keep_owned:
                counts[item.resource] -= 1
        tags = {
            c.APP_TAG: attempt.app,
            c.CLUSTER_TAG: inventory.cluster,
            c.NAMESPACES_TAG: ",".join(inventory.namespaces),
            c.REQUEST_TAG: attempt.ctx.request_id,
            c.CONSISTENCY_TAG: consistency,
            c.COUNTS_TAG: json.dumps({k: v for k, v in counts.items() if v}),
        }
        if attempt.hooks.runs:
            tags[HOOKS_TAG] = json.dumps(attempt.hooks.records(), sort_keys=True)
        document = manifests_document(inventory, request.keep_owned)
        await asyncio.to_thread(
            put_blob, attempt.repo, document, name=c.MANIFESTS, group=attempt.group, tags=tags
        )

    def _job(self, attempt: Attempt, volume: Volume, method: str, consistency: str) -> Job:
        return Job(
            cluster=attempt.cluster,
            settings=attempt.mover_settings,
            request_id=attempt.ctx.request_id,
            group=attempt.group,
            repository_url=attempt.url,
            secret=attempt.secret,
            parent=attempt.previous.get(volume.key, ""),
            tags=movers.volume_tags(
                attempt.app,
                attempt.inventory.cluster,
                volume.namespace,
                volume.claim,
                consistency,
                attempt.ctx.request_id,
            ),
            method=method,
            checkpoint=attempt.ctx.checkpoint,
        )

    async def _capture(
        self, attempt: Attempt, todo: list[tuple[Volume, str]], copy: Copier, limit: asyncio.Semaphore
    ) -> dict[str, str]:
        """The freeze: pre hooks, every CSI snapshot (until ready) and every live copy (until its
        mover has read everything: it reads and uploads in one pass), then post hooks at once — before
        any CSI snapshot is uploaded. A failure still runs the post hooks. Returns the snapshots' sizes."""
        sizes: dict[str, str] = {}

        async def snap(volume: Volume) -> None:
            sizes[volume.key] = await capture(self._job(attempt, volume, "csi", "csi"), volume)

        async def live(volume: Volume, method: str) -> None:
            async with limit:
                await copy(volume, method, "")

        hooks = attempt.hooks
        try:
            await hooks.pre()
            await _all(
                [snap(v) for v, m in todo if m == "csi"] + [live(v, m) for v, m in todo if m == "live"]
            )
        except Exception:  # noqa: BLE001 - thaw, then the first error is the step's reason
            await hooks.post(failing=True)
            raise
        await hooks.post()
        return sizes

    async def _copy_all(self, attempt: Attempt, chosen: list[tuple[Volume, str]]) -> list[str]:
        """Capture then copy the volumes, ``parallel`` copies at a time; returns each one's consistency."""
        ctx, request, rid = attempt.ctx, attempt.request, attempt.ctx.request_id
        limit = asyncio.Semaphore(request.volumes.parallel)
        results: list[str] = []

        async def emit(**fields: Any) -> None:
            await ctx.progress(**fields)

        async with Progress(self.nc, rid, [v.key for v, _ in chosen], emit) as progress:

            async def copy(volume: Volume, method: str, size: str) -> None:
                consistency = "quiesced" if quiesces(request) else method
                summary = await copy_volume(self._job(attempt, volume, method, consistency), volume, size)
                found = await asyncio.to_thread(record_of, attempt.repo, attempt.group, volume)
                if found is None:
                    raise PermanentError(
                        f"the mover Job for volume {volume.key} finished but stored no snapshot record "
                        f"(is {self.settings.image} Ferry's image?)"
                    )
                results.append(consistency)
                await progress.done(volume.key, int(summary.get("bytes") or found.stats.bytes))

            todo = []
            for volume, method in chosen:
                if volume.key in attempt.done:  # an earlier attempt finished this one
                    record = attempt.done[volume.key]
                    results.append(
                        record.tags.get(c.CONSISTENCY_TAG, "quiesced" if quiesces(request) else method)
                    )
                    await progress.done(volume.key, record.stats.bytes)
                else:
                    todo.append((volume, method))
            if todo and await attempt.hooks.wanted():
                sizes = await self._capture(attempt, todo, copy, limit)
                await _all([limited(limit, copy(v, m, sizes[v.key])) for v, m in todo if m == "csi"])
            elif todo:  # no hooks: each volume's snapshot and copy as one unit, ``parallel`` at a time

                async def whole(volume: Volume, method: str) -> None:
                    async with limit:
                        job = self._job(attempt, volume, method, method)
                        await copy(volume, method, await capture(job, volume) if method == "csi" else "")

                await _all([whole(v, m) for v, m in todo])
        return results


async def limited(limit: asyncio.Semaphore, work: Coroutine[Any, Any, None]) -> None:
    async with limit:
        await work


Copier = Callable[[Volume, str, str], Coroutine[Any, Any, None]]


async def _all(work: list[Coroutine[Any, Any, None]]) -> None:
    """Run every coroutine at once; the first permanent error (else the first error) is raised alone:
    the step runner classifies one error, not a group."""
    try:
        async with asyncio.TaskGroup() as tasks:
            for i, one in enumerate(work):
                tasks.create_task(one, name=f"volume:{i}")
    except* Exception as group:
        errors = list(group.exceptions)
        raise next((e for e in errors if isinstance(e, PermanentError)), errors[0]) from None
