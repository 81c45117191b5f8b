"""A request whose first step cannot be queued is never left Queued forever.

On a real nats-server whose step stream has gone (as after an operator's mistake or a JetStream
outage): the submission is refused with the reason, and the request it stored says Failed with
that reason — unless it has an idempotency key, in which case a retry dispatches it.
"""

from __future__ import annotations

import pytest
from nats.aio.client import Client

from services.intake.intake import IntakeService
from shared.bus.client import BusClient, RequestRejected
from shared.bus.topology import ensure_topology
from shared.contracts import subjects
from shared.contracts.requests import MobilityRequest, RequestKind, Source, Target
from shared.contracts.states import ListQuery, Phase, StepStatus
from shared.runtime import Settings


def request(key: str = "") -> MobilityRequest:
    return MobilityRequest(kind=RequestKind.MIGRATE, source=Source(cluster="east", namespaces=["shop"]),
                           target=Target(cluster="west"), idempotency_key=key)  # fmt: skip


async def test_a_request_that_cannot_be_dispatched_fails_with_the_reason(
    settings: Settings, client: BusClient
) -> None:
    async with IntakeService(settings):
        nc: Client = client.nc
        await nc.jetstream().delete_stream(subjects.STEPS_STREAM)
        with pytest.raises(RequestRejected, match="could not queue step preflight"):
            await client.submit(request())
        [state] = await client.list()
    assert state.phase is Phase.FAILED
    assert "could not queue step preflight" in state.reason and "submit again" in state.reason


async def test_with_an_idempotency_key_a_retry_dispatches_it(settings: Settings, client: BusClient) -> None:
    async with IntakeService(settings) as intake:
        nc: Client = client.nc
        await nc.jetstream().delete_stream(subjects.STEPS_STREAM)
        with pytest.raises(RequestRejected):
            await client.submit(request("ticket-42"))
        [state] = await client.list()
        assert state.phase is Phase.QUEUED
        await ensure_topology(intake.js)  # the stream is back
        again = await client.submit(request("ticket-42"))
        assert again == state.id
        info = await nc.jetstream().stream_info(subjects.STEPS_STREAM)
    assert info.state.messages == 1
    assert state.steps[0].status is StepStatus.PENDING


async def test_a_bad_list_query_is_refused_naming_the_field(settings: Settings, client: BusClient) -> None:
    async with IntakeService(settings):
        with pytest.raises(RequestRejected, match="bad list query") as refused:
            await client.list(ListQuery(limit="many"))  # type: ignore[arg-type]
    assert refused.value.rejected.field == "$.limit"
