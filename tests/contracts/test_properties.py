"""Property: whatever is posted, a refused request stores nothing and names a field, and an accepted
one runs to a final phase. Through the gateway and over the bus, on a real nats-server.

Requests come from the published JSON Schema (docs/schema/mobility-request.schema.json, turned into
Hypothesis strategies by ``from_schema`` below: hypothesis-jsonschema does not run on current
Hypothesis) and from mutations of valid requests (a bad value where a good one was, a field dropped
or added, a step order reversed). The stack is tests/gateway/stack.py's: the real intake and
gateway, stub steps. It runs on an event loop in a thread of its own, so Hypothesis drives plain
functions (and can shrink a failure); the accepted requests are awaited together at the end.
"""

from __future__ import annotations

import asyncio
import copy
import json
import threading
from collections.abc import Coroutine, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import msgspec
import nats
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from sandbox.localstack import NatsServer
from shared.bus.client import BusClient
from shared.bus.states import RequestStore
from shared.contracts import subjects
from shared.contracts.requests import MobilityRequest, RequestInvalid, RequestKind, Source, decode_request
from shared.contracts.states import Accepted
from shared.contracts.steps import StepName, itinerary_for
from shared.runtime import load_settings
from tests.gateway.stack import Gateway, ferry_stack, token_entries

SCHEMA = json.loads((Path(__file__).parents[2] / "docs/schema/mobility-request.schema.json").read_text())
T = TypeVar("T")
SMALL = 3  # generated lists and maps hold at most this many entries (the caps have tests of their own)


# --- requests from the JSON Schema ----------------------------------------------------------------
def from_schema(schema: dict[str, Any]) -> st.SearchStrategy[Any]:
    """The subset of JSON Schema msgspec writes: $ref, anyOf, enum, and typed values with bounds."""
    if "$ref" in schema:
        return from_schema(SCHEMA["$defs"][schema["$ref"].rsplit("/", 1)[1]])
    if "anyOf" in schema:
        return st.one_of([from_schema(s) for s in schema["anyOf"]])
    if "enum" in schema:
        return st.sampled_from(schema["enum"])
    kind = schema.get("type")
    if kind == "null":
        return st.none()
    if kind == "boolean":
        return st.booleans()
    if kind == "integer":
        return st.integers(schema.get("minimum", -(2**31)), schema.get("maximum", 2**31))
    if kind == "string":
        return strings(schema)
    if kind == "array":
        return st.lists(from_schema(schema["items"]), max_size=min(schema.get("maxItems", SMALL), SMALL))
    if kind == "object" and "properties" in schema:
        required = set(schema.get("required", []))
        strategies = {name: with_default(sub) for name, sub in schema["properties"].items()}
        strategies |= OVERRIDES.get(schema.get("title", ""), {})
        return st.fixed_dictionaries(
            {n: s for n, s in strategies.items() if n in required},
            optional={n: s for n, s in strategies.items() if n not in required},
        )
    if kind == "object":
        return st.dictionaries(
            strings(schema.get("propertyNames", {})),
            from_schema(schema.get("additionalProperties", {"type": "string"})),
            max_size=min(schema.get("maxProperties", SMALL), SMALL),
        )
    return st.none()


def strings(schema: dict[str, Any]) -> st.SearchStrategy[str]:
    low, high = schema.get("minLength", 0), schema.get("maxLength", 40)
    if "pattern" in schema:
        return st.from_regex(schema["pattern"]).filter(lambda s: low <= len(s) <= high)
    return st.text(min_size=low, max_size=min(high, 40))


def with_default(schema: dict[str, Any]) -> st.SearchStrategy[Any]:
    """A property with a default takes it half of the time (an ``api_version`` of random text would
    make nearly every request a refused one)."""
    drawn = from_schema(schema)
    return st.one_of(st.just(schema["default"]), drawn) if "default" in schema else drawn


def ordered_steps(kind: str) -> list[str]:
    """The kind's steps in their order (a valid itinerary is a part of them)."""
    request = MobilityRequest(kind=RequestKind(kind), source=Source(cluster="x"))
    return [s.value for s in itinerary_for(request)]


STEPS = list(StepName)
# The schema says an itinerary is a list of strings; which names and in which order is a rule of
# check(). Draw it as step names (any order: reversed ones are refused), or leave it out.
OVERRIDES: dict[str, dict[str, st.SearchStrategy[Any]]] = {
    "MobilityRequest": {
        "itinerary": st.lists(st.sampled_from([s.value for s in STEPS]), max_size=4, unique=True),
        "labels": st.dictionaries(
            strings(SCHEMA["$defs"]["MobilityRequest"]["properties"]["labels"]["propertyNames"]).filter(
                lambda k: k not in ("behaviour", "seconds")  # the stub steps' script (tests/gateway/stubs.py)
            ),
            st.text(st.characters(min_codepoint=32, max_codepoint=126), max_size=10),
            max_size=SMALL,
        ),
        "idempotency_key": st.sampled_from(["", "", "key-1", "key-2"]),  # repeats: duplicates and conflicts
    },
    # Most kinds need a target cluster (a rule of check()): draw it from the schema's string branch.
    "Target": {"cluster": strings(SCHEMA["$defs"]["Target"]["properties"]["cluster"]["anyOf"][0])},
}
SCHEMA_REQUESTS = from_schema(SCHEMA)


# --- mutations of valid requests ----------------------------------------------------------------
NAMESPACE = st.from_regex(r"^[a-z][a-z0-9-]{0,10}[a-z0-9]$", fullmatch=True)
CLUSTER = st.sampled_from(["east", "west", "prod-eu-1", "ctx@cluster"])


@st.composite
def valid_requests(draw: st.DrawFn) -> dict[str, Any]:
    kind = draw(st.sampled_from([k.value for k in RequestKind]))
    namespaces = draw(st.lists(NAMESPACE, min_size=1, max_size=SMALL, unique=True))
    document: dict[str, Any] = {
        "kind": kind,
        "source": {"cluster": draw(CLUSTER), "namespaces": namespaces},
        "target": {"cluster": draw(CLUSTER)},
    }
    if kind in ("restore", "drill"):
        document["source"]["snapshot"] = draw(st.sampled_from(["latest", "snap-a1d8de33"]))
    if kind == "rollback":
        document["rollback_of"] = draw(st.sampled_from(["req-1", "req-2"]))
    if draw(st.booleans()):
        document["target"]["namespace_map"] = {ns: draw(NAMESPACE) for ns in namespaces}
    if draw(st.booleans()):
        document["labels"] = {"team": draw(st.sampled_from(["a", "b"])), "ferry.dev/ticket": "1234"}
    if draw(st.booleans()):
        document["itinerary"] = [s for s in ordered_steps(kind) if draw(st.booleans())]
    document["dry_run"] = draw(st.booleans())
    document["idempotency_key"] = draw(st.sampled_from(["", "", "key-3", "key-4"]))
    decode_request(json.dumps(document).encode())  # valid, or the strategy is wrong
    return document


BAD_VALUES: list[tuple[tuple[str, ...], Any]] = [
    (("source", "cluster"), "east\n"),
    (("target", "cluster"), "west\n"),
    (("source", "namespaces"), ["shop.eu"]),
    (("source", "namespaces"), ["a" * 64]),
    (("source", "namespaces"), [f"ns-{i}" for i in range(1001)]),
    (("target", "namespace_map"), {"shop.eu": "shop"}),
    (("target", "namespace_map"), {"shop": "shop.west"}),
    (("labels",), {"Bad Key": "v"}),
    (("labels",), {f"k{i}": "v" for i in range(65)}),
    (("itinerary",), ["verify", "discover"]),
    (("itinerary",), ["fly"]),
    (("kind",), "x" * 10_000),
    (("source", "selector"), "app=web\n"),
    (("target", "resource_modifiers"), "#" * 70_000),
    (("source", "namespace"), ["shop"]),  # a misspelt field
    (("volumes", "parallel"), 0),
    (("restore", "volume_paths"), ["x"]),
]


@st.composite
def mutated_requests(draw: st.DrawFn) -> dict[str, Any]:
    document = copy.deepcopy(draw(valid_requests()))
    how = draw(st.sampled_from(["bad value", "any value", "dropped"]))
    if how == "bad value":
        path, value = draw(st.sampled_from(BAD_VALUES))
    else:
        path = draw(st.sampled_from(sorted(leaves(document))))
        value = draw(st.recursive(st.none() | st.booleans() | st.integers() | st.text(max_size=8),
                                  lambda inner: st.lists(inner, max_size=2), max_leaves=3))  # fmt: skip
    parent = document
    for name in path[:-1]:
        parent = parent.setdefault(name, {})
    if how == "dropped":
        parent.pop(path[-1], None)
    else:
        parent[path[-1]] = value
    return document


def leaves(document: dict[str, Any], prefix: tuple[str, ...] = ()) -> set[tuple[str, ...]]:
    found = set()
    for name, value in document.items():
        if isinstance(value, dict) and value and prefix == ():
            found |= leaves(value, (name,))
        else:
            found.add((*prefix, name))
    return found


# --- the stack, on a loop of its own ------------------------------------------------------------
@dataclass
class Bench:
    loop: asyncio.AbstractEventLoop
    gateway: Gateway
    client: BusClient
    store: RequestStore

    def run(self, coroutine: Coroutine[Any, Any, T], timeout: float = 30) -> T:
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result(timeout)

    async def stored(self) -> tuple[int, int]:
        """How many requests and idempotency keys the buckets hold."""
        keys = await self.client.nc.jetstream().key_value(subjects.IDEMPOTENCY_BUCKET)
        status = await keys.status()
        return len(await self.store.keys()), int(status.values)

    async def send(self, document: dict[str, Any], via: str) -> tuple[str | None, str, str]:
        """(request id, "", "") when accepted, (None, field, code) when refused."""
        payload = json.dumps(document).encode()
        if via == "bus":
            reply = await self.client.submit_raw(payload)
            if isinstance(reply, Accepted):
                return reply.id, "", ""
            return None, reply.field, reply.code
        url = self.gateway.url + "/v1/requests"
        async with self.gateway.session.post(url, data=payload, headers=self.gateway.auth("submit")) as r:
            body = await r.json()
            assert r.status in (200, 201, 400, 409, 413), (r.status, body)
            if r.status in (200, 201):
                return body["id"], "", ""
            return None, body["field"], body["code"]


@pytest.fixture(scope="module")
def bench(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Bench]:
    server = NatsServer(tmp_path_factory.mktemp("nats")).start()
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, name="property-stack", daemon=True)
    thread.start()
    config = load_settings({}, nats={"url": server.url}, http_port=0, http_host="127.0.0.1", ack_wait=2.0,
                           lease=2.0, max_attempts=2, drain_grace=2.0, concurrency=8,
                           gateway_tokens=msgspec.json.encode(token_entries()).decode())  # fmt: skip
    done = asyncio.Event()

    async def serve(ready: asyncio.Future[Bench]) -> None:
        nc = await nats.connect(server.url)
        client = BusClient(nc, timeout=10)
        try:
            async with ferry_stack(config, client) as gateway:
                kv = await nc.jetstream().key_value(subjects.REQUESTS_BUCKET)
                ready.set_result(Bench(loop, gateway, client, RequestStore(kv, nc.jetstream())))
                await done.wait()
        finally:
            await nc.close()

    async def start() -> tuple[asyncio.Task[None], Bench]:
        ready: asyncio.Future[Bench] = loop.create_future()
        task = loop.create_task(serve(ready), name="property-stack")
        return task, await ready

    task, running = asyncio.run_coroutine_threadsafe(start(), loop).result(60)
    try:
        yield running
    finally:
        loop.call_soon_threadsafe(done.set)
        asyncio.run_coroutine_threadsafe(asyncio.wait_for(asyncio.shield(task), 30), loop).result(40)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)
        loop.close()
        server.stop()


def check_one(bench: Bench, document: dict[str, Any], via: str, accepted: set[str]) -> None:
    before = bench.run(bench.stored())
    request_id, named, code = bench.run(bench.send(document, via))
    after = bench.run(bench.stored())
    if request_id is None:
        event(f"refused: {code}")
        assert named, f"refused without naming a field: {document}"
        assert after == before, f"a refused request stored something: {document}"
        if code == "invalid":  # not a key conflict, nor the gateway's body limit: the contract says so
            with pytest.raises(RequestInvalid):
                decode_request(json.dumps(document).encode())
    else:
        event("accepted")
        assert request_id in bench.run(bench.store.keys())
        accepted.add(request_id)


def all_final(bench: Bench, accepted: set[str]) -> None:
    """Every accepted request, awaited together once Hypothesis is done: a final phase each."""

    async def phases() -> list[tuple[str, str]]:
        states = await asyncio.gather(*(bench.client.wait(rid, within=60) for rid in accepted))
        return [(s.request.kind.value, s.phase.value) for s in states]

    ended = bench.run(phases(), timeout=90)
    assert {phase for kind, phase in ended if kind != "rollback"} <= {"Completed", "PartiallyFailed"}
    # A drawn rollback names a request that may not exist: its step refuses it, and it fails.
    assert {phase for kind, phase in ended if kind == "rollback"} <= {"Completed", "Failed"}


PROPERTY = settings(
    max_examples=50, deadline=5000, suppress_health_check=[HealthCheck.too_slow], database=None
)
VIA = st.sampled_from(["gateway", "bus"])


def test_requests_drawn_from_the_schema_are_refused_cleanly_or_run(bench: Bench) -> None:
    accepted: set[str] = set()

    @PROPERTY
    @given(document=SCHEMA_REQUESTS, via=VIA)
    def example(document: Any, via: str) -> None:
        check_one(bench, document, via, accepted)

    example()
    all_final(bench, accepted)


def test_mutated_requests_are_refused_cleanly_or_run(bench: Bench) -> None:
    accepted: set[str] = set()

    @PROPERTY
    @given(document=mutated_requests(), via=VIA)
    def example(document: Any, via: str) -> None:
        check_one(bench, document, via, accepted)

    example()
    assert accepted, "no mutated request was accepted: the strategies are too narrow"
    all_final(bench, accepted)
