"""A request is Queued before its first step: on the bus, in its event history, after any crash.

On a real nats-server (a fresh one per test). The intake stores the state, publishes
``phase → Queued`` and only then the first step command, so a watcher never sees a step of a
request that was not queued yet. A retry with the same idempotency key after the intake died
between any two of those writes repeats the missing ones and nothing twice.
"""

from __future__ import annotations

import asyncio

import msgspec
import pytest
from nats.aio.msg import Msg
from nats.js import JetStreamContext

from services.intake.intake import IntakeService, announce_queued, idempotency_digest, queued_state
from shared.bus.client import BusClient
from shared.bus.publishing import publish_step
from shared.bus.states import RequestStore
from shared.contracts import subjects
from shared.contracts.events import Event, PhaseChanged, StepStarted
from shared.contracts.requests import MobilityRequest
from shared.contracts.states import Accepted, Phase
from shared.contracts.steps import StepCommand, StepName, command_decoder
from shared.runtime import Settings
from tests.bus.stubs import Journal, running, step_class, stub_request
from tests.waiting import eventually


async def history(client: BusClient, request_id: str) -> list[Event]:
    return [event async for _, event in client.events(request_id, follow=False, idle=0.3)]


def milestones(events: list[Event]) -> list[str]:
    """The phases and step starts of a history, in order: ``["Queued", "start echo", ...]``."""
    marks = []
    for event in events:
        if isinstance(event, PhaseChanged):
            marks.append(event.phase.value)
        elif isinstance(event, StepStarted):
            marks.append(f"start {event.step.value if event.step else '?'}")
    return marks


async def test_a_watcher_sees_a_request_queued_before_its_first_step_is_dispatched(
    settings: Settings, client: BusClient
) -> None:
    seen: list[tuple[str, str]] = []  # (request id, "queued" | "step"), in the order the bus routed them

    async def watch(msg: Msg) -> None:
        if msg.subject == subjects.step_subject(StepName.ECHO):
            seen.append((command_decoder.decode(msg.data).request_id, "step"))
        elif msg.subject.startswith(f"{subjects.EVENTS_PREFIX}.") and msg.subject.endswith(".phase"):
            seen.append((msg.subject.split(".")[2], "queued"))

    sub = await client.nc.subscribe(f"{subjects.PREFIX}.>", cb=watch)  # one subscription: one order
    try:
        async with running(IntakeService(settings)):
            ids = list(await asyncio.gather(*(client.submit(stub_request(["echo"])) for _ in range(5))))
            await eventually(lambda: len(seen) == 2 * len(ids), within=10, what="both messages of each")
    finally:
        await sub.unsubscribe()
    for rid in ids:
        assert [what for r, what in seen if r == rid] == ["queued", "step"], rid


async def test_the_history_shows_queued_before_the_first_step_starts(
    settings: Settings, client: BusClient
) -> None:
    journal = Journal()
    echo = step_class(StepName.ECHO, journal)
    async with running(IntakeService(settings), echo(settings, instance="e1"), echo(settings, instance="e2")):
        ids = list(await asyncio.gather(*(client.submit(stub_request(["echo"])) for _ in range(8))))
        for rid in ids:
            assert (await client.wait(rid, within=30)).phase is Phase.COMPLETED
    for rid in ids:
        marks = milestones(await history(client, rid))
        assert marks == ["Queued", "start echo", "InProgress", "Completed"], rid


async def crashed_intake(js: JetStreamContext, request: MobilityRequest, died_after: str) -> str:
    """The writes of an intake that died after ``died_after`` (storing, announcing, dispatching)."""
    idempotency = await js.key_value(subjects.IDEMPOTENCY_BUCKET)
    requests = await js.key_value(subjects.REQUESTS_BUCKET)
    rid = f"replicate-crashed-{died_after}"
    await idempotency.create(idempotency_digest(request.idempotency_key), rid.encode())
    state = queued_state(rid, request)
    await RequestStore(requests, js).create(state)
    if died_after in ("announcing", "dispatching"):
        await announce_queued(js, rid)
    if died_after == "dispatching":
        first = StepCommand(
            request_id=rid, step=StepName.ECHO, index=0, itinerary=state.itinerary, request=request
        )
        await publish_step(js, first)
    return rid


@pytest.mark.parametrize(
    "died_after",
    [
        pytest.param("storing", id="the intake died after storing the state"),
        pytest.param("announcing", id="the intake died after publishing Queued"),
        pytest.param("dispatching", id="the intake died after dispatching the first step"),
    ],
)
async def test_a_retry_after_the_intake_died_queues_and_runs_the_request_once(
    settings: Settings, client: BusClient, died_after: str
) -> None:
    journal = Journal()
    request = stub_request(["echo"], key=f"deploy-{died_after}")
    async with running(IntakeService(settings)):
        rid = await crashed_intake(client.nc.jetstream(), request, died_after)
        reply = await client.submit_raw(msgspec.json.encode(request))
        assert reply == Accepted(id=rid, duplicate=True)
        async with running(step_class(StepName.ECHO, journal)(settings)):
            assert (await client.wait(rid, within=30)).phase is Phase.COMPLETED
    assert milestones(await history(client, rid)) == ["Queued", "start echo", "InProgress", "Completed"]
    assert len(journal.runs(rid, "echo")) == 1


async def test_a_request_submitted_twice_at_once_is_queued_and_run_once(
    settings: Settings, client: BusClient
) -> None:
    journal = Journal()
    request = stub_request(["echo"], key="deploy-42")
    async with running(IntakeService(settings), IntakeService(settings)):
        replies = await asyncio.gather(*(client.submit_raw(msgspec.json.encode(request)) for _ in range(2)))
        accepted = [r for r in replies if isinstance(r, Accepted)]
        assert sorted(r.duplicate for r in accepted) == [False, True]
        assert accepted[0].id == accepted[1].id
        rid = accepted[0].id
        async with running(step_class(StepName.ECHO, journal)(settings)):
            assert (await client.wait(rid, within=30)).phase is Phase.COMPLETED
    assert milestones(await history(client, rid)) == ["Queued", "start echo", "InProgress", "Completed"]
    assert len(journal.runs(rid, "echo")) == 1
