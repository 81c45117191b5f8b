"""The lines a staged migration adds, from hand-built states and events: where a cutover that
stopped short leaves the source, the downtime clock when the target never became available, and
durations as people read them."""

from __future__ import annotations

import io
import json
from typing import Any

import pytest
from rich.console import Console

from services.cli.rendering import duration, outcome_lines
from services.cli.watching import Watcher
from shared.contracts.events import PhaseChanged, Quiesced, StepCompleted
from shared.contracts.migrations import AVAILABLE_AT, QUIESCED_AT
from shared.contracts.requests import MobilityRequest, RequestKind, Source, Target
from shared.contracts.states import Phase, RequestState, StepState, StepStatus
from shared.contracts.steps import StepName, StepResult

CUTOVER = MobilityRequest(
    kind=RequestKind.MIGRATE,
    source=Source(cluster="east", namespaces=["shop"]),
    target=Target(cluster="west"),
    cutover=True,
)


def cutover_state(phase: Phase, **fields: Any) -> RequestState:
    snapshot = StepState(
        step=StepName.SNAPSHOT,
        status=StepStatus.SUCCEEDED,
        result=StepResult(outputs={QUIESCED_AT: "1780000000.0"}),
    )
    transfer = StepState(
        step=StepName.TRANSFER, status=StepStatus.SUCCEEDED, result=StepResult(bytes_moved=2_000_000)
    )
    restore = StepState(step=StepName.RESTORE, status=StepStatus.FAILED, error="storage class gone")
    return RequestState(
        id="migrate-1", request=CUTOVER, phase=phase, steps=[snapshot, transfer, restore], **fields
    )  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("state", "expected"),
    [
        pytest.param(
            cutover_state(Phase.FAILED, rollback_request="rollback-2"),
            "rolling back: request rollback-2 (ferry watch rollback-2)",
            id="a failed cutover names the rollback it started",
        ),
        pytest.param(
            cutover_state(Phase.FAILED, rolled_back=True),
            "rolled back: the target cleaned, the source restored",
            id="a failed cutover rolled back says so",
        ),
        pytest.param(
            cutover_state(Phase.FAILED),
            "the source stays quiesced (no auto rollback): ferry rollback migrate-1 brings it back",
            id="a failed cutover without auto rollback says how to bring the source back",
        ),
    ],
)
def test_a_cutover_that_stopped_short_says_where_the_source_stands(
    state: RequestState, expected: str
) -> None:
    lines = outcome_lines(state)
    assert lines[0] == "cutover: source quiesced at 20:26:40 UTC"
    assert "last delta: 2.0 MB sent" in lines
    assert lines[-1] == expected


def test_a_rollback_lists_what_it_did_and_whether_the_original_is_marked() -> None:
    rollback = MobilityRequest(
        kind=RequestKind.ROLLBACK, source=CUTOVER.source, target=CUTOVER.target, rollback_of="migrate-1"
    )
    outputs = {
        "removed": json.dumps(["deployments.apps/shop/web"]),
        "restored": json.dumps(["statefulsets.apps/shop/db"]),
    }
    step = StepState(step=StepName.ROLLBACK, status=StepStatus.SUCCEEDED, result=StepResult(outputs=outputs))
    state = RequestState(id="rollback-2", request=rollback, phase=Phase.COMPLETED, steps=[step])
    original = cutover_state(Phase.FAILED)
    assert outcome_lines(state, original) == [
        "removed deployments.apps/shop/web",
        "restored statefulsets.apps/shop/db",
        "migrate-1: not marked rolled back",
    ]


def watched(*events: object) -> str:
    buffer = io.StringIO()
    console = Console(file=buffer, width=140, force_terminal=False)
    watcher = Watcher(console, cutover_state(Phase.IN_PROGRESS))
    with watcher.progress:
        for event in events:
            watcher.handle(event)  # type: ignore[arg-type]
    watcher.summary()
    return buffer.getvalue()


def test_the_clock_stops_when_the_restore_says_the_target_is_available() -> None:
    screen = watched(
        Quiesced(request_id="migrate-1", since=1780000000.0, workloads=["deployments.apps/shop/web"]),
        StepCompleted(request_id="migrate-1", step=StepName.RESTORE, outputs={AVAILABLE_AT: "1780000042.5"}),
    )
    assert "source quiesced at 20:26:40 UTC (1 workload(s)): downtime starts" in screen
    assert "target available at 20:27:22 UTC: downtime 42.5s" in screen
    assert "⏱ downtime 42.5s (target available)" in screen


def test_a_stream_that_ends_before_the_target_is_available_says_the_source_is_down() -> None:
    screen = watched(
        Quiesced(request_id="migrate-1", since=1780000000.0),
        PhaseChanged(request_id="migrate-1", phase=Phase.FAILED, reason="restore failed; rolling back"),
    )
    assert "the source is down since 20:26:40 UTC" in screen
    assert "target available" not in screen


@pytest.mark.parametrize(
    ("seconds", "said"),
    [
        pytest.param(None, "-", id="no time at all"),
        pytest.param(4.25, "4.2s", id="seconds with a tenth"),
        pytest.param(192, "3m12s", id="minutes and seconds"),
        pytest.param(7500, "2h05m", id="hours and minutes"),
        pytest.param(273600, "3d04h", id="days and hours"),
    ],
)
def test_durations_read_as_people_say_them(seconds: float | None, said: str) -> None:
    assert duration(seconds) == said


def test_a_cutover_within_one_repository_says_nothing_was_to_send_not_zero_bytes_sent() -> None:
    state = cutover_state(Phase.FAILED, rolled_back=True)
    one = StepResult(counts={"same_repository": 1, "bytes_sent": 0})
    state.steps[1] = StepState(step=StepName.TRANSFER, status=StepStatus.SUCCEEDED, result=one)
    lines = outcome_lines(state)
    assert "last delta: nothing to send (source and target share one repository)" in lines
    assert not any("0 B sent" in line for line in lines)


def test_a_stage_within_one_repository_says_so() -> None:
    stage = MobilityRequest(
        kind=RequestKind.MIGRATE, source=CUTOVER.source, target=CUTOVER.target, stage=True
    )
    one = StepResult(counts={"same_repository": 1})
    steps = [
        StepState(step=StepName.TRANSFER, status=StepStatus.SUCCEEDED, result=one),
        StepState(
            step=StepName.RESTORE, status=StepStatus.SUCCEEDED, result=StepResult(counts={"files_written": 3})
        ),
    ]
    state = RequestState(id="migrate-2", request=stage, phase=Phase.COMPLETED, steps=steps)
    [line] = outcome_lines(state)
    assert line.startswith("stage: nothing to send (one repository), restore wrote 3 file(s); data as of ")
