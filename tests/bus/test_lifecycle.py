"""The request lifecycle end to end on a real nats-server: intake, routing slip, replicas, failures."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import msgspec
import pytest

from sandbox.localstack import NatsServer
from services.intake.intake import IntakeService
from shared.bus.client import BusClient, RequestRejected
from shared.bus.publishing import publish_step
from shared.contracts import subjects
from shared.contracts.events import Failed, PhaseChanged, Progress, StepCompleted
from shared.contracts.states import Phase, Rejected, StepStatus
from shared.contracts.steps import StepCommand, StepName
from shared.runtime import Settings
from tests.bus.stubs import Journal, running, step_class, stub_request
from tests.waiting import eventually


async def events_of(client: BusClient, request_id: str) -> list[object]:
    return [event async for _, event in client.events(request_id, follow=False, idle=0.3)]


async def test_request_goes_through_a_two_step_itinerary_shared_by_two_replicas(
    settings: Settings, client: BusClient
) -> None:
    journal = Journal()
    discover, echo = step_class(StepName.DISCOVER, journal), step_class(StepName.ECHO, journal)
    services = [IntakeService(settings), discover(settings, instance="d1"), discover(settings, instance="d2")]
    services += [echo(settings, instance="e1"), echo(settings, instance="e2")]
    async with running(*services):
        ids = [
            await client.submit(stub_request(["discover", "echo"], behaviour="sleep", seconds="0.3"))
            for _ in range(6)
        ]
        states = [await client.wait(rid, within=30) for rid in ids]

    assert [s.phase for s in states] == [Phase.COMPLETED] * 6
    for rid in ids:  # each step of each request done exactly once
        assert len(journal.runs(rid, "discover")) == 1
        assert len(journal.runs(rid, "echo")) == 1
    assert {c[2] for c in journal.calls if c[1] == "discover"} == {"d1", "d2"}, "work was not shared"
    final = states[0]
    assert [s.status for s in final.steps] == [StepStatus.SUCCEEDED, StepStatus.SUCCEEDED]
    assert set(final.outputs) == {"discover_by", "echo_by"}  # outputs of earlier steps travel on
    kinds = [type(e).__name__ for e in await events_of(client, ids[0])]
    assert kinds.count("StepCompleted") == 2 and kinds[-1] == "PhaseChanged"
    assert "Progress" in kinds


@pytest.mark.parametrize(
    ("payload", "field", "words"),
    [
        pytest.param(
            b'{"kind": "migrate"}', "$", "missing required field `source`", id="a request without a source"
        ),
        pytest.param(
            b'{"kind": "migrate", "source": {"cluster": 7}}',
            "$.source.cluster",
            "Expected `str`",
            id="a cluster of the wrong type",
        ),
        pytest.param(
            b'{"kind": "teleport", "source": {"cluster": "east"}}',
            "$.kind",
            "Invalid enum value",
            id="an unknown kind",
        ),
        pytest.param(
            b'{"kind": "migrate", "source": {"cluster": "east", "namespace": ["a"]}}',
            "$.source",
            "unknown field `namespace`",
            id="a misspelt field",
        ),
        pytest.param(
            b'{"kind": "migrate", "source": {"cluster": "east", "namespaces": ["shop"]}}',
            "$.target.cluster",
            "needs a target cluster",
            id="a migration with no target",
        ),
        pytest.param(
            b'{"kind": "restore", "source": {"cluster": "east"}, "target": {"cluster": "w"}}',
            "$.source.snapshot",
            "needs a snapshot",
            id="a restore with no snapshot",
        ),
        pytest.param(
            b'{"kind": "replicate", "source": {"cluster": "east"}, "itinerary": ["fly"]}',
            "$.itinerary[0]",
            "unknown step",
            id="an unknown step",
        ),
        pytest.param(
            b'{"kind": "replicate", "source": {"cluster": "east\\n"}}',
            "$.source.cluster",
            "cluster",
            id="a cluster name with a trailing newline",
        ),
        pytest.param(
            b'{"kind": "replicate", "source": {"cluster": "east", "namespaces": ["shop.eu"]}}',
            "$.source.namespaces[0]",
            "DNS-1123 label",
            id="a namespace with a dot",
        ),
        pytest.param(
            b'{"kind": "migrate", "source": {"cluster": "east", "namespaces": ["shop"]}, '
            b'"target": {"cluster": "west"}, "itinerary": ["verify", "discover"]}',
            "$.itinerary[1]",
            "cannot run after verify",
            id="a reversed itinerary",
        ),
        pytest.param(
            b'{"kind": "replicate", "source": {"cluster": "east"}, "labels": {"Bad Key": "x"}}',
            '$.labels["Bad Key"]',
            "invalid key",
            id="a label key that is not one, named",
        ),
        pytest.param(
            b'{"kind": "' + b"x" * 10_000 + b'", "source": {"cluster": "east"}}',
            "$.kind",
            "(10000 characters)",
            id="a 10,000-character kind, echoed only in part",
        ),
        pytest.param(b"\xff not json", "$", "not valid JSON", id="bytes that are not JSON"),
    ],
)
async def test_bad_requests_are_refused_naming_the_field_and_nothing_is_stored(
    settings: Settings, client: BusClient, payload: bytes, field: str, words: str
) -> None:
    async with running(IntakeService(settings)):
        reply = await client.submit_raw(payload)
        stored = await client.list()
    assert isinstance(reply, Rejected)
    assert reply.field == field
    assert words in reply.error
    assert "x" * 101 not in reply.error and len(reply.error) < 400
    assert stored == []


async def test_resubmitting_with_the_same_idempotency_key_returns_the_same_request(
    settings: Settings, client: BusClient
) -> None:
    journal = Journal()
    async with running(
        IntakeService(settings), IntakeService(settings), step_class(StepName.ECHO, journal)(settings)
    ):
        first = await client.submit(stub_request(["echo"], key="deploy-42"))
        again = await client.submit_raw(msgspec.json.encode(stub_request(["echo"], key="deploy-42")))
        other = await client.submit(stub_request(["echo"], key="deploy-43"))
        await client.wait(first)
        await client.wait(other)
        listed = await client.list()
    assert again == type(again)(id=first, duplicate=True)
    assert other != first
    assert sorted(s.id for s in listed) == sorted([first, other])
    assert len(journal.runs(first, "echo")) == 1


async def test_a_temporary_failure_is_retried_with_the_attempt_in_the_events(
    settings: Settings, client: BusClient
) -> None:
    journal = Journal()
    async with running(IntakeService(settings), step_class(StepName.ECHO, journal)(settings)):
        rid = await client.submit(stub_request(["echo"], behaviour="fail-temp", failures="1"))
        state = await client.wait(rid, within=30)
    assert state.phase is Phase.COMPLETED
    failures = [e for e in await events_of(client, rid) if isinstance(e, Failed)]
    assert [(f.temporary, f.attempt, f.max_attempts) for f in failures] == [(True, 1, 3)]
    assert "store unavailable" in failures[0].reason


async def test_after_the_last_attempt_the_request_fails_with_the_last_reason(
    settings: Settings, client: BusClient
) -> None:
    async with running(IntakeService(settings), step_class(StepName.ECHO, Journal())(settings)):
        rid = await client.submit(stub_request(["echo"], behaviour="fail-temp", failures="99"))
        state = await client.wait(rid, within=60)
    assert state.phase is Phase.FAILED
    assert "after 3 attempt(s): store unavailable (attempt 3)" in state.reason
    assert state.steps[0].status is StepStatus.FAILED


async def test_a_permanent_failure_fails_the_request_at_once_with_its_reason(
    settings: Settings, client: BusClient
) -> None:
    journal = Journal()
    async with running(IntakeService(settings), step_class(StepName.ECHO, journal)(settings)):
        rid = await client.submit(stub_request(["echo"], behaviour="fail-perm"))
        state = await client.wait(rid, within=30)
    assert state.phase is Phase.FAILED
    assert "namespace shop does not exist" in state.reason
    assert len(journal.runs(rid, "echo")) == 1
    phases = [e.phase for e in await events_of(client, rid) if isinstance(e, PhaseChanged)]
    assert phases[-1] is Phase.FAILED


async def test_a_step_delivered_twice_does_its_work_once(settings: Settings, client: BusClient) -> None:
    journal = Journal()
    async with running(IntakeService(settings), step_class(StepName.ECHO, journal)(settings)):
        rid = await client.submit(stub_request(["echo"]))
        state = await client.wait(rid)
        command = StepCommand(
            request_id=rid, step=StepName.ECHO, index=0, itinerary=state.itinerary, request=state.request
        )
        await publish_step(client.nc.jetstream(), command, generation=7)  # a second copy, new message id
        for _ in range(100):  # the duplicate is consumed (acked) without running the step
            info = await client.nc.jetstream().consumer_info(
                subjects.STEPS_STREAM, subjects.step_consumer("echo")
            )
            if info.num_pending == 0 and info.num_ack_pending == 0:
                break
            await asyncio.sleep(0.05)
        after = await client.get(rid)
    assert len(journal.runs(rid, "echo")) == 1
    assert after.phase is Phase.COMPLETED


async def test_a_message_that_does_not_decode_is_dropped_and_work_goes_on(
    settings: Settings, client: BusClient
) -> None:
    journal = Journal()
    async with running(IntakeService(settings), step_class(StepName.ECHO, journal)(settings)):
        await client.nc.jetstream().publish(subjects.step_subject("echo"), b'{"not": "a command"}')
        rid = await client.submit(stub_request(["echo"]))
        state = await client.wait(rid)
    assert state.phase is Phase.COMPLETED


async def test_cancelling_a_running_step_stops_it_at_its_checkpoint(
    settings: Settings, client: BusClient
) -> None:
    journal = Journal()
    async with running(IntakeService(settings), step_class(StepName.ECHO, journal)(settings)):
        rid = await client.submit(stub_request(["echo", "discover"], behaviour="block"))
        for _ in range(200):
            if journal.runs(rid, "echo"):
                break
            await asyncio.sleep(0.02)
        await client.cancel(rid)
        state = await client.wait(rid, within=10)
    assert state.phase is Phase.CANCELLED
    assert state.steps[0].status is StepStatus.CANCELLED
    assert state.steps[1].status is StepStatus.PENDING  # the slip was not forwarded


async def test_a_queued_request_cancelled_before_any_service_runs_never_runs(
    settings: Settings, client: BusClient
) -> None:
    journal = Journal()
    async with running(IntakeService(settings)):
        rid = await client.submit(stub_request(["echo"]))
        cancelled = await client.cancel(rid)
    assert cancelled.phase is Phase.CANCELLED
    async with running(step_class(StepName.ECHO, journal)(settings)):
        for _ in range(40):
            info = await client.nc.jetstream().consumer_info(
                subjects.STEPS_STREAM, subjects.step_consumer("echo")
            )
            if info.num_pending == 0 and info.num_ack_pending == 0:
                break
            await asyncio.sleep(0.05)
    assert journal.runs(rid, "echo") == []


async def test_unknown_request_ids_are_reported_as_not_found(settings: Settings, client: BusClient) -> None:
    async with running(IntakeService(settings)):
        with pytest.raises(RequestRejected, match="no request with id 'nope'"):
            await client.get("nope")
        with pytest.raises(RequestRejected, match="no request"):
            await client.cancel("nope")


@pytest.fixture
def doomed_worker(nats_server: NatsServer, tmp_path: Path) -> Iterator[tuple[subprocess.Popen[bytes], Path]]:
    """A step replica in its own process (tests/bus/worker.py), to be killed with SIGKILL."""
    markers = tmp_path / "markers"
    markers.mkdir()
    worker = subprocess.Popen(
        [sys.executable, "-m", "tests.bus.worker", nats_server.url, str(markers)],
        cwd=Path(__file__).parents[2],
        start_new_session=True,
    )
    yield worker, markers
    if worker.poll() is None:
        os.killpg(worker.pid, signal.SIGKILL)
        worker.wait()


async def test_a_replica_killed_mid_step_is_resumed_by_another(
    settings: Settings, client: BusClient, doomed_worker: tuple[subprocess.Popen[bytes], Path]
) -> None:
    worker, markers = doomed_worker
    journal = Journal()
    async with running(IntakeService(settings)):
        rid = await client.submit(stub_request(["echo"]))
        marker = markers / f"{rid}.started"
        await eventually(marker.exists, what="the worker started the step")
        os.killpg(worker.pid, signal.SIGKILL)
        async with running(step_class(StepName.ECHO, journal)(settings, instance="survivor")):
            state = await client.wait(rid, within=30)
    assert state.phase is Phase.COMPLETED
    assert journal.runs(rid, "echo") == [(rid, "echo", "survivor", 2)]  # the second attempt, by the survivor
    assert state.outputs["echo_by"] == "survivor"


async def test_a_nats_restart_mid_request_loses_nothing(
    settings: Settings, client: BusClient, nats_server: NatsServer
) -> None:
    journal = Journal()
    async with running(IntakeService(settings), step_class(StepName.ECHO, journal)(settings)):
        rid = await client.submit(stub_request(["echo"], behaviour="sleep", seconds="1.0"))
        await asyncio.sleep(0.3)
        nats_server.restart()
        state = await client.wait(rid, within=45)
    assert state.phase is Phase.COMPLETED
    assert len({c[3] for c in journal.runs(rid, "echo")}) >= 1
    progress = [e for e in await events_of(client, rid) if isinstance(e, Progress | StepCompleted)]
    assert progress, "events written before and after the restart are kept"


async def test_a_step_longer_than_the_ack_wait_is_kept_alive_and_runs_once(
    settings: Settings, client: BusClient
) -> None:
    """A long step (3.5x the ack wait) keeps its message with in_progress heartbeats and its lease: the
    other replica never gets it, the step runs once, on its first attempt."""
    journal = Journal()
    echo = step_class(StepName.ECHO, journal)
    async with running(IntakeService(settings), echo(settings, instance="e1"), echo(settings, instance="e2")):
        rid = await client.submit(
            stub_request(["echo"], behaviour="sleep", seconds=str(3.5 * settings.ack_wait))
        )
        state = await client.wait(rid, within=60)
        consumer = await client.nc.jetstream().consumer_info(
            subjects.STEPS_STREAM, subjects.step_consumer("echo")
        )
    assert state.phase is Phase.COMPLETED
    assert consumer.delivered is not None and consumer.delivered.consumer_seq == 1, (
        "the message was redelivered"
    )
    runs = journal.runs(rid, "echo")
    assert len(runs) == 1 and runs[0][3] == 1, runs
    assert state.steps[0].attempts == 1
    assert not [e for e in await events_of(client, rid) if isinstance(e, Failed)]
