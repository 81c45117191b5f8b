"""A step handler's outcome, typed: what each one does to the request, and what each error stands for."""

from __future__ import annotations

from typing import ClassVar

import msgspec
import nats
import pytest

from sandbox.localstack import NatsServer
from services.intake.intake import IntakeService
from shared.bus.client import BusClient
from shared.contracts.errors import Cancelled, Conflict, PermanentError, TemporaryError
from shared.contracts.events import Event, Failed, PhaseChanged, StepCompleted
from shared.contracts.requests import MobilityRequest, RequestKind, Source, Target
from shared.contracts.states import Phase
from shared.contracts.steps import StepName, StepResult
from shared.runtime import StepContext, StepService, load_settings
from shared.runtime import outcomes as o


@pytest.mark.parametrize(
    ("error", "expected"),
    [
        pytest.param(
            TemporaryError("store unavailable", retry_after=3.0),
            o.RetryAfter("store unavailable", delay=3.0),
            id="a temporary error is retried after its hint",
        ),
        pytest.param(
            TemporaryError("timeout"),
            o.RetryAfter("timeout"),
            id="a temporary error without a hint backs off",
        ),
        pytest.param(
            PermanentError("namespace shop does not exist"),
            o.Failed("namespace shop does not exist"),
            id="a permanent error fails the request with its message",
        ),
        pytest.param(
            Conflict("key reused"), o.Failed("key reused", code="conflict"), id="a conflict keeps its code"
        ),
        pytest.param(
            msgspec.ValidationError("Expected `int`"),
            o.Failed("Expected `int`", code="invalid"),
            id="a document that does not decode is permanent",
        ),
        pytest.param(
            Cancelled("request r was cancelled"),
            o.WasCancelled("request r was cancelled"),
            id="a cancellation seen at a checkpoint cancels",
        ),
        pytest.param(KeyError(), o.RetryAfter("KeyError"), id="a bug is retried, named by its class"),
    ],
)
def test_an_error_raised_inside_a_handler_stands_for_one_outcome(
    error: Exception, expected: o.Outcome
) -> None:
    assert o.outcome_of(error) == expected


async def test_a_bare_result_is_a_success_and_an_error_is_converted() -> None:
    result = StepResult(message="done")

    async def returns() -> StepResult:
        return result

    async def raises() -> StepResult:
        raise PermanentError("no target cluster")

    assert await o.outcome(returns()) == o.Succeeded(result)
    assert await o.outcome(raises()) == o.Failed("no target cluster")


class OutcomeStep(StepService):
    """Returns the outcome the request's ``outcome`` label names (``retry`` only on its first attempt)."""

    name = "outcome-step"
    step: ClassVar[StepName] = StepName.ECHO

    async def handle(self, ctx: StepContext) -> o.Outcome:
        match ctx.request.labels.get("outcome"):
            case "retry" if ctx.attempt == 1:
                return o.RetryAfter("the store is busy", delay=0.1)
            case "fail":
                return o.Failed("the snapshot is damaged")
            case "cancel":
                return o.WasCancelled()
        return o.Succeeded(StepResult(message=f"done at attempt {ctx.attempt}"))


async def _run(url: str, outcome: str) -> list[Event]:
    nc = await nats.connect(url)
    try:
        client = BusClient(nc, timeout=5)
        request = MobilityRequest(
            kind=RequestKind.REPLICATE,
            source=Source(cluster="east"),
            target=Target(cluster="west"),
            itinerary=["echo"],
            labels={"outcome": outcome},
        )
        request_id = await client.submit(request)
        return [event async for _, event in client.events(request_id)]
    finally:
        await nc.close()


@pytest.mark.parametrize(
    ("outcome", "phase", "said"),
    [
        pytest.param("retry", Phase.COMPLETED, "done at attempt 2", id="a retry runs the step again"),
        pytest.param("fail", Phase.FAILED, "the snapshot is damaged", id="a failure fails the request"),
        pytest.param("cancel", Phase.CANCELLED, "cancelled", id="a cancellation cancels the request"),
    ],
)
async def test_the_runner_acts_on_each_outcome(
    nats_server: NatsServer, outcome: str, phase: Phase, said: str
) -> None:
    settings = load_settings({}, nats={"url": nats_server.url}, http_port=0, http_host="127.0.0.1")
    async with IntakeService(settings), OutcomeStep(settings):
        events = await _run(nats_server.url, outcome)
    final = events[-1]
    assert isinstance(final, PhaseChanged) and final.phase is phase
    failures = [e for e in events if isinstance(e, Failed)]
    if outcome == "retry":
        assert [(f.reason, f.temporary, f.attempt) for f in failures] == [("the store is busy", True, 1)]
        assert [e.message for e in events if isinstance(e, StepCompleted)] == [said]
    elif outcome == "fail":
        assert [(f.reason, f.temporary) for f in failures] == [(said, False)]
        assert said in final.reason
    else:
        assert not failures and said in final.reason
