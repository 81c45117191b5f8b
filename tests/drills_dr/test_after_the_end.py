"""A drill that is cancelled (or fails) in the middle still removes what it restored: its cleanup step
runs after the end of the request (``stepping.RUN_AFTER_END``), and the request keeps its outcome."""

from __future__ import annotations

import asyncio
from pathlib import Path

from shared.contracts.drills import drill_namespace
from shared.contracts.states import Phase, StepStatus
from shared.contracts.steps import StepName
from shared.kube import Cluster
from shared.runtime import Settings
from tests.drills_dr.conftest import ferry
from tests.drills_dr.test_drills import WRITTEN, captured, drill, stored_report


async def test_a_drill_cancelled_during_its_restore_is_still_cleaned_up_and_stays_cancelled(
    settings: Settings, kube: dict[str, Cluster], tmp_path: Path
) -> None:
    group = await captured(kube["east"], tmp_path / "west")
    async with ferry(settings) as client:
        request_id = await client.submit(drill(group, "west"))
        namespace = drill_namespace("shop", request_id)
        for _ in range(600):  # until the restore has written something into the drill namespace
            state = await client.get(request_id)
            if state.phase.final:
                break
            if state.step_state(StepName.RESTORE).status is StepStatus.RUNNING and await kube["west"].find(
                "persistentvolumeclaims", "web-uploads", namespace
            ):
                break
            await asyncio.sleep(0.1)
        assert not state.phase.final, f"the drill ended before it could be cancelled: {state.reason}"
        await client.cancel(request_id)
        state = await client.wait(request_id, within=120)
        for _ in range(1200):  # the cleanup runs after the end
            state = await client.get(request_id)
            if state.step_state(StepName.CLEANUP).status.done:
                break
            await asyncio.sleep(0.1)
        report = await stored_report(client, request_id)
    assert state.phase is Phase.CANCELLED, state.reason  # the cleanup did not turn it into a success
    assert state.step_state(StepName.CLEANUP).status is StepStatus.SUCCEEDED, state.step_state(
        StepName.CLEANUP
    )
    assert report.cleanup == "removed", report
    assert await kube["west"].find("namespaces", namespace) is None
    for resource in WRITTEN:
        left = [o for o in await kube["west"].list(resource, namespace)]
        assert left == [], (resource, left)
