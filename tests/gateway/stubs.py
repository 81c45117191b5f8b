"""Step stubs that look like the real pipeline from the outside: volume progress, a verification report.

``VolumeStep`` reports per-volume byte progress (two volumes) and, when it is the verify step,
publishes a ``Report`` titled "verification". A request's labels choose its fate as in
tests/bus/stubs.py: ``behaviour=ok|partial|fail-perm|block|sleep``. Shared by the gateway and CLI tests.
"""

from __future__ import annotations

import asyncio
from typing import ClassVar

import msgspec

from shared.contracts.errors import PermanentError
from shared.contracts.events import Report
from shared.contracts.reports import DocumentKind, ObjectResult, Outcome, Verification, VolumeResult
from shared.contracts.steps import StepName, StepResult
from shared.runtime import StepContext, StepService

VOLUMES = {"data-db-0": 4 * 1024 * 1024, "uploads": 1024 * 1024}


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
        return StepResult(
            outputs=outputs,
            counts={"volumes": len(VOLUMES)},
            partial=partial,
            message="1 volume differs" if partial else "",
        )


def volume_step(step: StepName) -> type[VolumeStep]:
    return type(f"Volume{step.value.title()}", (VolumeStep,), {"step": step, "name": step.value})
