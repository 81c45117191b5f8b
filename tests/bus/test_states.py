"""Request state is changed only by compare-and-set: concurrent writers never lose each other's update.

On a real nats-server's KV bucket, as the services use it.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import nats
import pytest

from services.intake.intake import queued_state
from shared.bus.states import Change, RequestNotFound, RequestStore, StateConflict
from shared.bus.topology import ensure_topology
from shared.contracts.requests import MobilityRequest, RequestKind, Source, Target
from shared.contracts.states import RequestState, StepStatus
from shared.localstack import NatsServer


@pytest.fixture
async def store(nats_server: NatsServer) -> AsyncIterator[RequestStore]:
    nc = await nats.connect(nats_server.url)
    topology = await ensure_topology(nc.jetstream())
    yield RequestStore(topology.requests, topology.js)
    await nc.close()


def new_state(request_id: str) -> RequestState:
    request = MobilityRequest(kind=RequestKind.MIGRATE, source=Source(cluster="east", namespaces=["shop"]),
                              target=Target(cluster="west"))  # fmt: skip
    return queued_state(request_id, request)


async def test_a_write_based_on_a_stale_revision_is_refused(store: RequestStore) -> None:
    revision = await store.create(new_state("r1"))
    first, _ = await store.get("r1")
    first.reason = "first writer"
    await store.put_if(first, revision)
    second, _ = await store.get("r1")
    second.reason = "second writer, from the old revision"
    with pytest.raises(StateConflict, match="changed since revision"):
        await store.put_if(second, revision)
    stored, _ = await store.get("r1")
    assert stored.reason == "first writer"


async def test_concurrent_updates_of_different_fields_all_survive(store: RequestStore) -> None:
    state = new_state("r2")
    steps = len(state.steps)
    await store.create(state)

    def finish(index: int) -> Change:
        def change(s: RequestState) -> bool:
            s.steps[index].status = StepStatus.SUCCEEDED
            return True

        return change

    def label(key: str) -> Change:
        def change(s: RequestState) -> bool:
            s.request.labels[key] = "yes"
            return True

        return change

    writers = [store.update("r2", finish(i)) for i in range(steps)]
    writers += [store.update("r2", label(f"k{i}")) for i in range(10)]
    await asyncio.gather(*writers)
    stored, _ = await store.get("r2")
    assert [s.status for s in stored.steps] == [StepStatus.SUCCEEDED] * steps
    assert stored.request.labels == {f"k{i}": "yes" for i in range(10)}


async def test_a_request_is_created_once(store: RequestStore) -> None:
    await store.create(new_state("r3"))
    with pytest.raises(StateConflict, match="exists already"):
        await store.create(new_state("r3"))
    with pytest.raises(RequestNotFound, match="r4"):
        await store.get("r4")


async def test_the_list_holds_every_request_even_while_others_are_written(store: RequestStore) -> None:
    """Listed from the bucket's stream (nats.py's ``keys()`` can stop early and list none)."""
    assert [state async for state in store.all()] == []
    for n in range(40):
        await store.create(new_state(f"r{n}"))
    await store._kv.delete("r7")
    writer = asyncio.ensure_future(asyncio.gather(*(store.create(new_state(f"w{n}")) for n in range(40))))
    for _ in range(5):
        listed = {state.id async for state in store.all()}
        assert {f"r{n}" for n in range(40) if n != 7} <= listed and "r7" not in listed
    await writer
    assert len([state async for state in store.all()]) == 79
