"""Request state is changed only by compare-and-set: concurrent writers never lose each other's update.

On a real nats-server's KV bucket, as the services use it.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import msgspec
import nats
import pytest

from sandbox.localstack import NatsServer
from services.intake.intake import queued_state
from shared.bus.states import Change, RequestNotFound, RequestStore, StateConflict, StateUnreadable
from shared.bus.topology import ensure_topology
from shared.contracts import subjects
from shared.contracts.requests import MobilityRequest, RequestKind, Source, Target
from shared.contracts.states import (
    MAX_STATE_BYTES,
    RequestState,
    StepStatus,
    Unreadable,
    result_document,
    result_output,
)
from shared.contracts.steps import StepName, StepResult


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


async def test_a_state_above_the_bound_keeps_its_large_step_result_in_the_object_store(
    store: RequestStore,
) -> None:
    """A step that reports 20,000 warnings (2 MB) must not make the request unreadable or unlistable."""
    await store.create(new_state("big"))
    warnings = [f"configmaps/shop/cm-{n}: skipped, {'x' * 80}" for n in range(20_000)]
    result = StepResult(outputs={"inventory": "big/inventory.json"}, counts={"objects": 20_000},
                        warnings=warnings, message="20000 objects")  # fmt: skip

    def record(state: RequestState) -> bool:
        step = state.step_state(StepName.DISCOVER)
        step.status, step.result = StepStatus.SUCCEEDED, result
        return True

    written = await store.update("big", record)
    entry = await store._kv.get("big")
    assert entry.value is not None and len(entry.value) <= MAX_STATE_BYTES
    stored, _ = await store.get("big")
    summary = stored.step_state(StepName.DISCOVER).result
    assert summary is not None and summary == written.step_state(StepName.DISCOVER).result
    name = result_document("big", StepName.DISCOVER)
    assert summary.outputs == {"inventory": "big/inventory.json", result_output(StepName.DISCOVER): name}
    assert summary.counts == {"objects": 20_000} and summary.message == "20000 objects"
    assert (
        len(summary.warnings) == 11
        and name in summary.warnings[-1]
        and "20000 warnings" in summary.warnings[-1]
    )
    documents = await store._js.object_store(subjects.INVENTORY_STORE)
    kept = await documents.get(name)
    assert msgspec.json.decode(kept.data or b"", type=StepResult) == result  # whole, as reported

    def reason(state: RequestState) -> bool:
        state.reason = "updated again"
        return True

    await store.update("big", reason)  # a later write keeps the summary as it is
    again, _ = await store.get("big")
    assert again.step_state(StepName.DISCOVER).result == summary and again.reason == "updated again"


async def test_a_stored_state_that_does_not_decode_is_reported_and_the_others_listed(
    store: RequestStore,
) -> None:
    for n in range(3):
        await store.create(new_state(f"ok{n}"))
    await store._kv.put("truncated", b'{"id": "truncated", "request": {"kind": "migr')
    unbounded = msgspec.to_builtins(new_state("unbounded"))  # as written before requests were bounded
    unbounded["request"]["source"]["namespaces"] = [f"ns-{n}" for n in range(50_000)]
    await store._kv.put("unbounded", msgspec.json.encode(unbounded))
    entries = [entry async for entry in store.entries()]
    unreadable = {e.id: e.reason for e in entries if isinstance(e, Unreadable)}
    assert sorted(e.id for e in entries if isinstance(e, RequestState)) == ["ok0", "ok1", "ok2"]
    assert set(unreadable) == {"truncated", "unbounded"}
    assert "truncated" in unreadable["truncated"] and "$.request.source.namespaces" in unreadable["unbounded"]
    assert sorted([s.id async for s in store.all()]) == ["ok0", "ok1", "ok2"]
    with pytest.raises(StateUnreadable, match="stored state of request truncated cannot be read"):
        await store.get("truncated")
