"""The restore engine: clean, modify, transform, order, write — volumes first — then wait.

One pass over the snapshot's objects, each ending with an ``ObjectResult``:

1. **prepare** every object: whiteouts are skipped with their reason; the rest is cleaned, then the
   request's resource modifiers run (their conditions see the *source* namespace, as in Velero),
   then Velero's ``init.hook.restore`` init container (``hooking``), then the mappings and the
   request/snapshot/plan labels. An object captured from a quiesced source
   gets its replicas or suspension from before the quiesce first (``transforming.unquiesced``). A modifier error fails that object only.
   PVs bound to a captured claim are skipped: the claim gets a new volume from its (mapped) storage
   class and its data comes from the repository.
2. **order** them (``ordering``): priorities plus references plus the inventory's edges.
3. **write** them in that order under the conflict policy (``conflicts.write``), with two barriers:
   a custom resource waits until its CRD is established; a workload that mounts claims waits until
   those claims' mover Jobs are done — and is *not created* when one failed, so an application never
   starts on an empty volume. Mover Jobs start as soon as their claim is written, in parallel.
4. **wait** (bounded) until workloads are available, claims bound and Jobs done (``readiness``).

A dry run does steps 1–3 without writing: every object is rendered and compared with the target.
The engine talks to the cluster only through the ``Cluster`` protocol of ``conflicts``.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Coroutine, Iterable
from dataclasses import dataclass, field
from typing import Any

import msgspec

from services.restore import modifiers
from services.restore.cleaning import clean, whiteout
from services.restore.conflicts import result_of, write
from services.restore.hooking import add_init_hook
from services.restore.manifests import VolumeRecord
from services.restore.ordering import claims_mounted, crd_index, order
from services.restore.readiness import WAITED_KINDS, ready
from services.restore.refreshing import Refresher
from services.restore.transforming import Transforms, transform, unquiesced
from shared.contracts.reports import ObjectResult, Outcome, RestoreReport, VolumeAction, VolumeResult
from shared.contracts.requests import ConflictPolicy, ExistingVolumes
from shared.kube.comparing import REQUEST_LABEL, digested
from shared.kube.objects import Manifest, Obj, object_key
from shared.runtime.clusters import Cluster
from shared.runtime.hooks import HookError

log = logging.getLogger("ferry.restore")

# Fills one claim: (target claim manifest, its volume record, delta) -> its result. Provided by the
# service; ``delta`` refreshes a claim that holds data already (only what differs is rewritten).
VolumeFiller = Callable[[Manifest, VolumeRecord, bool], Coroutine[Any, Any, VolumeResult]]


@dataclass
class Plan:
    """What a restore will write, in order, and what it already decided not to."""

    items: list[Manifest] = field(default_factory=list)
    results: list[ObjectResult] = field(default_factory=list)  # skipped / failed while preparing
    warnings: list[str] = field(default_factory=list)


def prepare(
    captured: Iterable[Manifest],
    transforms: Transforms,
    rules: list[modifiers.Rule],
    *,
    keep_owned: bool = False,
    completed_jobs: bool = False,
    extra_edges: Iterable[tuple[str, str]] = (),
) -> Plan:
    plan = Plan()
    captured = list(captured)
    claims = {(m.namespace, m.name) for m in captured if m.kind == "PersistentVolumeClaim"}
    ready_items = []
    for item in captured:
        why = whiteout(item, keep_owned=keep_owned, completed_jobs=completed_jobs)
        if not why and item.kind == "PersistentVolume":
            ref = item.obj.get("spec", {}).get("claimRef") or {}
            if (ref.get("namespace", ""), ref.get("name", "")) in claims:
                why = "its claim is restored with a new volume from the claim's storage class"
        if why:
            plan.results.append(result_of(item, Outcome.SKIPPED, reason=why))
            continue
        clean(item)
        unquiesced(item)  # before the modifiers: their conditions see the app as its owners left it
        outcome = modifiers.apply(rules, item)
        if outcome.error:
            plan.results.append(result_of(item, Outcome.FAILED, reason=outcome.error))
            continue
        item.notes.extend(outcome.notes)
        try:
            if note := add_init_hook(item):
                item.notes.append(note)
        except HookError as e:
            plan.results.append(result_of(item, Outcome.FAILED, reason=str(e)))
            continue
        transform(item, transforms)
        ready_items.append(item)
    mapped_edges = []
    by_source = {m.source_key: m.key for m in ready_items}
    for dependent, dependency in extra_edges:
        if dependent in by_source and dependency in by_source:
            mapped_edges.append((by_source[dependent], by_source[dependency]))
    plan.items, plan.warnings = order(ready_items, mapped_edges)
    return plan


class Restore:
    """One run of the engine over a prepared plan."""

    def __init__(
        self,
        cluster: Cluster,
        plan: Plan,
        *,
        policy: ConflictPolicy,
        dry_run: bool,
        volumes: dict[tuple[str, str], VolumeRecord],
        fill: VolumeFiller | None,
        source_namespace: Callable[[str], str],
        timeout: float = 300.0,
        on_result: Callable[[ObjectResult], Awaitable[None]] | None = None,
        existing: ExistingVolumes = ExistingVolumes.AUTO,
    ) -> None:
        self.cluster, self.plan, self.policy, self.dry_run = cluster, plan, policy, dry_run
        self.existing = existing
        self.refresher = Refresher(cluster, timeout=timeout)
        self.volumes, self.fill, self.timeout = volumes, fill, timeout
        self.source_namespace = source_namespace
        self.on_result = on_result
        self.results: list[ObjectResult] = list(plan.results)
        self.fills: dict[str, asyncio.Task[VolumeResult]] = {}
        self.waited: dict[str, str] = {}

    async def _record(self, result: ObjectResult) -> ObjectResult:
        self.results.append(result)
        if self.on_result is not None:
            await self.on_result(result)
        return result

    async def _poll(self, item: Manifest, within: float) -> tuple[bool, str]:
        deadline = time.monotonic() + within
        delay, why = 0.05, "not found"
        while True:
            live = await self.cluster.get(item)
            if live is not None:
                ok, why = ready(live)
                if ok:
                    return True, ""
            if time.monotonic() > deadline:
                return False, why
            await asyncio.sleep(delay)
            delay = min(delay * 1.5, 1.0)

    async def _claims_ready(self, item: Manifest) -> str:
        """ "" when every claim ``item`` mounts is filled; else why the workload must not start."""
        problems = []
        for claim in sorted(claims_mounted(item)):
            task = self.fills.get(claim)
            if task is None:
                continue
            volume = await task
            if not volume.ok:
                problems.append(f"volume {volume.claim} was not restored: {volume.reason}")
        return "; ".join(problems)

    async def run(self) -> RestoreReport:
        crds = crd_index(self.plan.items)
        established: dict[str, asyncio.Future[str]] = {}
        try:
            for item in self.plan.items:
                if item.gr in crds and not self.dry_run:
                    why = await established[crds[item.gr]] if crds[item.gr] in established else ""
                    if why:
                        await self._record(result_of(item, Outcome.FAILED, reason=why))
                        continue
                if not self.dry_run and (why := await self._claims_ready(item)):
                    await self._record(result_of(item, Outcome.FAILED, reason=f"not created: {why}"))
                    continue
                if not self.dry_run:  # scaled down for a refresh: back at its replicas before it is compared
                    await self.refresher.scale_back(item.key)
                result = await self._record(
                    await write(self.cluster, item, self.policy, dry_run=self.dry_run)
                )
                if self.dry_run or result.failed:
                    continue
                if item.kind == "CustomResourceDefinition":
                    ok, why = await self._poll(item, min(self.timeout, 60.0))
                    future: asyncio.Future[str] = asyncio.get_running_loop().create_future()
                    future.set_result("" if ok else f"its CRD {item.name} is not established: {why}")
                    established[item.key] = future
                if item.kind == "PersistentVolumeClaim" and self.fill is not None:
                    await self._start_fill(item, result)
            volumes = [await task for task in self.fills.values()]
        finally:
            for task in self.fills.values():
                task.cancel()
            await asyncio.gather(*self.fills.values(), return_exceptions=True)
            if not self.dry_run:
                await self.refresher.scale_back_all()  # workloads outside the snapshot, or after a failure
        if not self.dry_run:
            await self._wait_all()
        return RestoreReport(
            request_id="",
            snapshot="",
            dry_run=self.dry_run,
            objects=self.results,
            volumes=volumes,
            waited=self.waited,
        )

    async def _ours(self, claim: Manifest) -> bool:
        """True when the live claim was created by this very request (an earlier attempt of the step)."""
        mine = (claim.metadata.get("labels") or {}).get(REQUEST_LABEL)
        live = await self.cluster.get(claim)
        return (
            bool(mine)
            and live is not None
            and (live["metadata"].get("labels") or {}).get(REQUEST_LABEL) == mine
        )

    async def _filled(self, claim: Manifest, record: VolumeRecord, delta: bool) -> VolumeResult:
        assert self.fill is not None
        volume = await self.fill(claim, record, delta)
        action = VolumeAction.REFRESHED if delta else VolumeAction.CREATED
        return msgspec.structs.replace(volume, action=action if volume.ok else VolumeAction.FAILED)

    def _settled(self, key: str, volume: VolumeResult) -> None:
        done: asyncio.Future[VolumeResult] = asyncio.get_running_loop().create_future()
        done.set_result(volume)
        self.fills[key] = asyncio.ensure_future(done)

    async def _start_fill(self, claim: Manifest, result: ObjectResult) -> None:
        source = (self.source_namespace(claim.namespace), claim.name)
        record = self.volumes.get(source)
        if record is None or self.fill is None:
            return
        key = object_key("persistentvolumeclaims", claim.namespace, claim.name)
        label = f"{claim.namespace}/{claim.name}"
        fresh = result.outcome in (Outcome.CREATED, Outcome.RECREATED)
        if fresh or (result.outcome is Outcome.UNCHANGED and await self._ours(claim)):
            # Fresh, or created by an earlier attempt of this very step: filled as new (the same Job).
            self.fills[key] = asyncio.create_task(self._filled(claim, record, False), name=f"fill:{key}")
            return
        live = await self.cluster.get(claim)
        policy = self.existing
        if policy is ExistingVolumes.AUTO:
            made_by_ferry = bool(((live or {}).get("metadata", {}).get("labels") or {}).get(REQUEST_LABEL))
            policy = ExistingVolumes.REFRESH if made_by_ferry else ExistingVolumes.KEEP
        if policy is ExistingVolumes.KEEP:
            why = (
                "kept by policy (volumes.existing: keep)"
                if self.existing is ExistingVolumes.KEEP
                else "kept: the claim existed and was not made by Ferry (volumes.existing: refresh overwrites it)"
            )
            self._settled(
                key,
                VolumeResult(
                    claim=label, snapshot=record.snapshot_id, ok=True, action=VolumeAction.KEPT, reason=why
                ),
            )
            return
        if policy is ExistingVolumes.FAIL:
            why = "the claim already exists in the target (volumes.existing: fail): nothing written into it"
            self._settled(
                key,
                VolumeResult(
                    claim=label, snapshot=record.snapshot_id, ok=False, action=VolumeAction.FAILED, reason=why
                ),
            )
            return

        async def refresh() -> VolumeResult:
            why = await self.refresher.scale_down(claim.namespace, claim.name)
            if why:
                return VolumeResult(
                    claim=label, snapshot=record.snapshot_id, ok=False, action=VolumeAction.FAILED, reason=why
                )
            return await self._filled(claim, record, True)

        self.fills[key] = asyncio.create_task(refresh(), name=f"refresh:{key}")

    async def _wait_all(self) -> None:
        deadline = time.monotonic() + self.timeout
        created = {
            r.target
            for r in self.results
            if r.outcome in (Outcome.CREATED, Outcome.UPDATED, Outcome.RECREATED, Outcome.UNCHANGED)
        }
        waited = [i for i in self.plan.items if i.kind in WAITED_KINDS and i.key in created]

        async def one(item: Manifest) -> None:
            ok, why = await self._poll(item, max(0.0, deadline - time.monotonic()))
            self.waited[item.key] = "ready" if ok else f"not ready after {self.timeout:.0f}s: {why}"

        await asyncio.gather(*(one(i) for i in waited))


def rendered(plan: Plan) -> list[Obj]:
    """The documents a restore of ``plan`` writes, in order (the dry run's output), each Secret value
    replaced by its digest: the document is stored with the request, where Secret values must not be."""
    return [digested(item.obj) for item in plan.items]
