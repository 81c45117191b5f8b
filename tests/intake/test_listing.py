"""A request list pages and never fails because of one entry, on a real nats-server.

The incident: a request with 50,000 namespaces was accepted, its state grew past what one NATS
message carries, and every list failed with a decoding error. Now requests are bounded, states are
bounded, a list page never holds more bytes than a message can, and a stored entry that does not
decode is left out and named in ``skipped``.
"""

from __future__ import annotations

import msgspec

from services.intake.intake import IntakeService
from shared.bus.client import BusClient
from shared.contracts import subjects
from shared.contracts.requests import MAX_REQUEST_BYTES, MobilityRequest, RequestKind, Source, Target
from shared.contracts.states import ListQuery, Rejected
from shared.runtime import Settings
from tests.bus.stubs import running, stub_request


def large_request(n: int) -> MobilityRequest:
    """A request close to the size bound: 1,000 namespaces of 60 characters and 60 KiB of modifiers."""
    namespaces = [f"{n:02d}-{i:04d}-" + "n" * 52 for i in range(1000)]
    return MobilityRequest(
        kind=RequestKind.MIGRATE,
        source=Source(cluster="east", namespaces=namespaces),
        target=Target(cluster="west", resource_modifiers="# " + "m" * 60_000),
        itinerary=["echo"],  # no step service runs here: the requests stay Queued
    )


async def test_a_list_of_requests_near_the_size_bound_comes_in_pages_that_fit_a_message(
    settings: Settings, client: BusClient
) -> None:
    assert MAX_REQUEST_BYTES - 10_000 < len(msgspec.json.encode(large_request(0))) <= MAX_REQUEST_BYTES
    async with running(IntakeService(settings)):
        ids = [await client.submit(large_request(n)) for n in range(12)]  # 1.5 MB of requests
        first = await client.list_page(ListQuery(limit=100))
        everything = await client.list(ListQuery(limit=100))
    assert 0 < len(first.items) < 12 and first.next  # one NATS message (1 MiB) cannot hold them all
    assert sorted(s.id for s in everything) == sorted(ids)  # list() follows the pages
    created = [s.created_at for s in everything]
    assert created == sorted(created, reverse=True)


async def test_pages_follow_each_other_without_gaps_or_repeats(settings: Settings, client: BusClient) -> None:
    async with running(IntakeService(settings)):
        ids = [await client.submit(stub_request(["echo"], team="a" if n % 2 else "b")) for n in range(7)]
        pages, query = [], ListQuery(limit=3)
        while True:
            page = await client.list_page(query)
            pages.append([s.id for s in page.items])
            if not page.next:
                break
            query = msgspec.structs.replace(query, cursor=page.next)
        team_a = await client.list(ListQuery(label="team=a", limit=2))
        bad = await client.submit_raw(b"")  # not a request: nothing stored
        refused = await client.nc.request(subjects.REQUEST_LIST, b'{"cursor": "garbage"}', timeout=5)
    assert [len(p) for p in pages] == [3, 3, 1]
    assert sorted(i for p in pages for i in p) == sorted(ids)
    assert len(team_a) == 2 and all(s.request.labels["team"] == "a" for s in team_a)
    assert isinstance(bad, Rejected)
    rejected = msgspec.json.decode(refused.data, type=Rejected)
    assert rejected.field == "$.cursor"


async def test_an_entry_that_does_not_decode_is_skipped_and_named_not_fatal(
    settings: Settings, client: BusClient
) -> None:
    async with running(IntakeService(settings)):
        good = await client.submit(stub_request(["echo"]))
        kv = await client.nc.jetstream().key_value(subjects.REQUESTS_BUCKET)
        await kv.put("migrate-broken", b'{"id": "migrate-broken", "request": {"kind": "mig')  # cut short
        page = await client.list_page()
        listed = await client.list()
        reply = await client.nc.request(subjects.REQUEST_GET, b"migrate-broken", timeout=5)
    assert [s.id for s in page.items] == [good] and [s.id for s in listed] == [good]
    assert [s.id for s in page.skipped] == ["migrate-broken"]
    assert "truncated" in page.skipped[0].reason
    rejected = msgspec.json.decode(reply.data, type=Rejected)
    assert (rejected.code, rejected.field) == ("unreadable", "id")
