"""Step stubs that look like the real pipeline from the outside: volume progress, a verification report.

``VolumeStep`` reports per-volume byte progress (two volumes) and, when it is the verify step,
publishes a ``Report`` titled "verification". A request's labels choose its fate as in
tests/bus/stubs.py: ``behaviour=ok|partial|fail-perm|block|sleep``. Shared by the gateway and CLI tests.

A staged migration looks real too (``migration_result``): the transfer reports the bytes it sent (a
cutover's delta an eighth of a stage's), a cutover's snapshot quiesces (a ``Quiesced`` event,
``quiesced_at``) and its restore makes the target available (``available_at``, ``downtime_seconds``),
a stage's restore counts the files it wrote, and the rollback step names what it removed and
restored and marks the original request rolled back, as services/restore's rollback does.
"""

from __future__ import annotations

import asyncio
import json
import time
from typing import ClassVar

import msgspec

from shared.bus.states import RequestStore
from shared.contracts.errors import PermanentError
from shared.contracts.events import Quiesced, Report
from shared.contracts.migrations import AVAILABLE_AT, DOWNTIME, QUIESCED_AT
from shared.contracts.reports import DocumentKind, ObjectResult, Outcome, Verification, VolumeResult
from shared.contracts.states import RequestState
from shared.contracts.steps import StepName, StepResult
from shared.runtime import StepContext, StepService

VOLUMES = {"data-db-0": 4 * 1024 * 1024, "uploads": 1024 * 1024}
WORKLOADS = ["deployments.apps/shop/web", "statefulsets.apps/shop/db"]
REMOVED = [
    "deployments.apps/shop-west/web",
    "persistentvolumeclaims/shop-west/data-db-0",
    "namespaces/shop-west",
]
DOWNTIME_STUB = 2.5  # seconds between a stub cutover's quiesce and the target available


def verification(partial: bool) -> Verification:
    """What the real verify step publishes (shared.contracts.reports), for two volumes."""
    volumes = [
        VolumeResult(claim=f"shop/{name}", snapshot=f"s-{name}", ok=True, files=3, bytes=size)
        for name, size in VOLUMES.items()
    ]
    if partial:
        volumes[1] = VolumeResult(
            claim="shop/uploads", snapshot="s-uploads", ok=False, files=3, bytes=VOLUMES["uploads"],
            reason="1 file differs", damaged={"img/1.png": "content differs"},
        )  # fmt: skip
    problems = (
        [ObjectResult(key="configmaps/shop/x", outcome=Outcome.FAILED, reason="forbidden")] if partial else []
    )
    return Verification(
        request_id="",
        snapshot="grp-1",
        objects_expected=12,
        objects_present=12,
        objects=problems,
        volumes=volumes,
    )


class VolumeStep(StepService):
    step: ClassVar[StepName] = StepName.ECHO

    async def handle(self, ctx: StepContext) -> StepResult:
        behaviour = ctx.request.labels.get("behaviour", "ok")
        if behaviour == "fail-perm":
            raise PermanentError("namespace shop does not exist in cluster east")
        if behaviour == "block":
            for _ in range(600):
                await ctx.checkpoint()
                await asyncio.sleep(0.05)
        if behaviour == "sleep":
            await asyncio.sleep(float(ctx.request.labels.get("seconds", "0.5")))
        total = sum(VOLUMES.values())
        done = 0
        for volume, size in VOLUMES.items():
            for part in (1, 2):
                await ctx.progress(throttle=0, volume=volume, bytes_done=size * part // 2, bytes_total=size)
            done += size
            await ctx.progress(throttle=0, bytes_done=done, bytes_total=total, items_done=1, items_total=2)
        outputs = {f"{self.step.value}_done": "yes"}
        if self.step is StepName.VERIFY:
            outputs["verification"] = f"{ctx.request_id}/verification.json"  # as the real verify step
            await self.topology.inventories.put(
                outputs["verification"], msgspec.json.encode(verification(partial=behaviour == "partial"))
            )
            await ctx.emit(
                Report(
                    request_id=ctx.request_id,
                    step=self.step,
                    title="the proof",  # clients select the report by its document kind, not its title
                    document=DocumentKind.VERIFICATION,
                    body=msgspec.to_builtins(verification(partial=behaviour == "partial")),
                )
            )
        partial = behaviour == "partial" and self.step is StepName.VERIFY
        counts, moved = await self.migration_result(ctx, outputs)
        return StepResult(
            outputs=outputs,
            counts={"volumes": len(VOLUMES), **counts},
            partial=partial,
            message="1 volume differs" if partial else "",
            bytes_moved=moved,
        )

    async def migration_result(self, ctx: StepContext, outputs: dict[str, str]) -> tuple[dict[str, int], int]:
        """What this step adds for a staged migration or a rollback: counts, bytes moved; outputs
        and ``Quiesced`` events as the real steps give them."""
        request, step = ctx.request, self.step
        if step is StepName.TRANSFER:
            return {}, sum(VOLUMES.values()) // (8 if request.cutover else 1)
        if step is StepName.SNAPSHOT and request.cutover:
            since = time.time() - DOWNTIME_STUB
            outputs[QUIESCED_AT] = f"{since:.3f}"
            await ctx.emit(Quiesced(request_id=ctx.request_id, step=step, since=since, workloads=WORKLOADS))
        if step is StepName.RESTORE and request.cutover and QUIESCED_AT in ctx.outputs:
            since = float(ctx.outputs[QUIESCED_AT])
            outputs[AVAILABLE_AT], outputs[DOWNTIME] = f"{since + DOWNTIME_STUB:.3f}", f"{DOWNTIME_STUB}"
            event = Quiesced(
                request_id=ctx.request_id, step=step, since=since, available_at=since + DOWNTIME_STUB
            )
            await ctx.emit(event)
        if step is StepName.RESTORE:
            return {"files_written": 7, "bytes_written": 3 * 1024 * 1024}, 0
        if step is StepName.ROLLBACK:
            outputs["removed"], outputs["restored"] = json.dumps(REMOVED), json.dumps(WORKLOADS)
            await self.mark_rolled_back(request.rollback_of)
        return {}, 0

    async def mark_rolled_back(self, request_id: str) -> None:
        def mark(state: RequestState) -> bool:
            state.rolled_back = True
            return True

        await RequestStore(self.topology.requests, self.topology.js).update(request_id, mark)


def volume_step(step: StepName) -> type[VolumeStep]:
    return type(f"Volume{step.value.title()}", (VolumeStep,), {"step": step, "name": step.value})
