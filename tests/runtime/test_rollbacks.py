"""A cutover that fails or is cancelled starts its own rollback, through the intake like any request.

A stub step stands in for the step that breaks (so no cluster is needed): it fails at once, or waits
at checkpoints until the request is cancelled. The rollback step itself is not running here; these
tests look at what the failed request says and at the rollback request the intake stored.
"""

from __future__ import annotations

import asyncio

import pytest

from sandbox.localstack import NatsServer
from services.intake.intake import IntakeService
from shared.bus.client import BusClient
from shared.contracts.requests import MobilityRequest, RequestKind, Source, Target
from shared.contracts.states import Phase
from shared.contracts.steps import StepName, StepResult
from shared.runtime import Settings, StepContext, StepService, load_settings
from shared.runtime.outcomes import Failed, Outcome
from tests.waiting import eventually


class BreakingStep(StepService):
    """The ``echo`` step, failing for good (or, for ``hold`` requests, waiting to be cancelled)."""

    name = "breaking"
    step = StepName.ECHO

    async def handle(self, ctx: StepContext) -> Outcome | StepResult:
        if ctx.request.labels.get("hold"):
            while True:
                await ctx.checkpoint()
                await asyncio.sleep(0.05)
        return Failed("the target refused everything")


def cutover(*, auto_rollback: bool = True, is_cutover: bool = True, **labels: str) -> MobilityRequest:
    return MobilityRequest(
        kind=RequestKind.MIGRATE,
        source=Source(cluster="east", namespaces=["shop"]),
        target=Target(cluster="west", namespace_map={"shop": "shop-west"}),
        cutover=is_cutover,
        auto_rollback=auto_rollback,
        itinerary=["echo"],
        labels=labels,
    )


@pytest.fixture
def settings(nats_server: NatsServer) -> Settings:
    return load_settings(
        {}, nats={"url": nats_server.url}, http_port=0, http_host="127.0.0.1", max_attempts=1, lease=5.0
    )


async def test_a_failed_cutover_submits_its_rollback_and_says_so(
    settings: Settings, client: BusClient
) -> None:
    async with IntakeService(settings), BreakingStep(settings):
        original = await client.wait(await client.submit(cutover(team="shop")), within=30)
        rollback = await client.get(original.rollback_request)
    assert original.phase is Phase.FAILED
    assert original.reason == (
        f"echo failed after 1 attempt(s): the target refused everything; rolling back (request {rollback.id})"
    )
    assert rollback.request.kind is RequestKind.ROLLBACK and rollback.request.rollback_of == original.id
    assert rollback.request.idempotency_key == f"rollback-{original.id}"
    assert rollback.request.labels == {"team": "shop"}
    assert rollback.itinerary == (StepName.ROLLBACK,)


@pytest.mark.parametrize(
    "request_",
    [
        pytest.param(cutover(auto_rollback=False), id="a cutover that asks for no automatic rollback"),
        pytest.param(cutover(is_cutover=False), id="a plain migrate (its source was never left down)"),
    ],
)
async def test_no_rollback_is_started_for(
    settings: Settings, client: BusClient, request_: MobilityRequest
) -> None:
    async with IntakeService(settings), BreakingStep(settings):
        state = await client.wait(await client.submit(request_), within=30)
        listed = await client.list()
    assert state.phase is Phase.FAILED and state.rollback_request == ""
    assert "rolling back" not in state.reason
    assert [s.request.kind for s in listed] == [RequestKind.MIGRATE]


async def test_a_cancelled_cutover_is_rolled_back_too(settings: Settings, client: BusClient) -> None:
    async with IntakeService(settings), BreakingStep(settings):
        request_id = await client.submit(cutover(hold="yes"))

        async def running() -> bool:
            return (await client.get(request_id)).steps[0].attempts > 0

        await eventually(running, within=20, what="the step to start")
        await client.cancel(request_id)
        state = await client.wait(request_id, within=20)

        async def recorded() -> bool:
            return bool((await client.get(request_id)).rollback_request)

        await eventually(recorded, within=20, what="the rollback to be recorded")
        state = await client.get(request_id)
    assert state.phase is Phase.CANCELLED
    assert state.reason == f"cancelled by request; rolling back (request {state.rollback_request})"


async def test_a_cutover_cancelled_between_steps_is_rolled_back_by_the_next_delivery(
    settings: Settings, client: BusClient
) -> None:
    """Cancelled while no step runs, the intake ends it at once; the queued step finds it over."""
    async with IntakeService(settings):
        request_id = await client.submit(cutover())
        await client.cancel(request_id)
        async with BreakingStep(settings):

            async def recorded() -> bool:
                return bool((await client.get(request_id)).rollback_request)

            await eventually(recorded, within=20, what="the rollback to be recorded")
        state = await client.get(request_id)
    assert state.phase is Phase.CANCELLED
    assert state.reason == f"cancelled by request; rolling back (request {state.rollback_request})"


async def test_when_the_intake_does_not_answer_the_reason_names_the_command_to_run(
    settings: Settings, client: BusClient
) -> None:
    async with IntakeService(settings):
        request_id = await client.submit(cutover())
    step = BreakingStep(settings)
    async with step:

        async def failed() -> bool:
            return (await step.store.get(request_id))[0].phase is Phase.FAILED

        await eventually(failed, within=40, what="the request to fail")

        async def noted() -> bool:
            return "automatic rollback" in (await step.store.get(request_id))[0].reason

        await eventually(noted, within=40, what="the failed rollback submission to be noted")
        state, _ = await step.store.get(request_id)
    assert state.rollback_request == ""
    assert state.reason.startswith("echo failed after 1 attempt(s): the target refused everything; ")
    assert "automatic rollback could not be submitted: no Ferry intake service answers" in state.reason
    assert state.reason.endswith(f"run `ferry rollback {request_id}`")
