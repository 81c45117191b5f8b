"""An idempotency key names one request body: the same body gives the same request back, another
body is refused as a conflict naming the key and the request that holds it. Real nats-server."""

from __future__ import annotations

import msgspec
import pytest

from services.intake.intake import IntakeService, idempotency_digest
from shared.bus.client import BusClient
from shared.contracts import subjects
from shared.contracts.states import Accepted, Rejected
from shared.runtime import Settings
from tests.bus.stubs import running, stub_request


async def test_the_same_key_with_another_body_is_a_conflict_naming_the_key_and_the_request(
    settings: Settings, client: BusClient
) -> None:
    async with running(IntakeService(settings), IntakeService(settings)):
        first = await client.submit(stub_request(["echo"], key="ticket-1234", team="a"))
        other = await client.submit_raw(
            msgspec.json.encode(stub_request(["echo"], key="ticket-1234", team="b"))
        )
        listed = await client.list()
    assert isinstance(other, Rejected)
    assert (other.code, other.field) == ("conflict", "$.idempotency_key")
    assert "ticket-1234" in other.error and first in other.error
    assert [s.id for s in listed] == [first]  # nothing new stored
    assert listed[0].request.labels == {"team": "a"}


async def test_the_same_body_is_the_same_whatever_the_order_of_its_keys(
    settings: Settings, client: BusClient
) -> None:
    one = b'{"kind":"replicate","source":{"cluster":"east","namespaces":["shop"]},"itinerary":["echo"],'
    async with running(IntakeService(settings)):
        first = await client.submit_raw(one + b'"idempotency_key":"k-1","labels":{"a":"1","b":"2"}}')
        again = await client.submit_raw(
            b'{"labels":{"b":"2","a":"1"},"idempotency_key":"k-1","itinerary":["echo"],'
            b'"source":{"namespaces":["shop"],"cluster":"east"},"kind":"replicate"}'
        )
    assert isinstance(first, Accepted) and not first.duplicate
    assert again == Accepted(id=first.id, duplicate=True)


@pytest.mark.parametrize(
    ("team", "duplicate"), [("a", True), ("b", False)], ids=["same body", "another body"]
)
async def test_a_key_recorded_by_an_older_intake_is_compared_with_the_stored_request(
    settings: Settings, client: BusClient, team: str, duplicate: bool
) -> None:
    """Records written before bodies were compared hold the bare request id."""
    async with running(IntakeService(settings)):
        first = await client.submit(stub_request(["echo"], key="old-key", team="a"))
        bucket = await client.nc.jetstream().key_value(subjects.IDEMPOTENCY_BUCKET)
        await bucket.put(idempotency_digest("old-key"), first.encode())  # as an older intake wrote it
        reply = await client.submit_raw(msgspec.json.encode(stub_request(["echo"], key="old-key", team=team)))
    if duplicate:
        assert reply == Accepted(id=first, duplicate=True)
    else:
        assert isinstance(reply, Rejected) and reply.code == "conflict" and first in reply.error
