"""Requests over HTTP on a real nats-server with the real intake: submit, get, list, cancel, events."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import urllib.parse
from pathlib import Path

import msgspec
import pytest

from services.gateway import openapi
from shared.contracts.requests import MobilityRequest, RequestKind, Source, Target
from tests.gateway.sse import read_frames
from tests.gateway.stack import Gateway
from tests.waiting import eventually

ROOT = Path(__file__).parents[2]


def body(
    kind: RequestKind = RequestKind.MIGRATE,
    key: str = "",
    itinerary: tuple[str, ...] = ("echo",),
    **labels: str,
) -> bytes:
    return msgspec.json.encode(
        MobilityRequest(
            kind=kind,
            source=Source(cluster="east", namespaces=["shop"]),
            target=Target(cluster="west"),
            labels=labels,
            idempotency_key=key,
            itinerary=list(itinerary),
        )
    )


async def submit(gateway: Gateway, data: bytes) -> str:
    async with gateway.session.post(
        gateway.url + "/v1/requests", data=data, headers=gateway.auth("cli")
    ) as response:
        assert response.status == 201, await response.text()
        reply = await response.json()
        assert response.headers["Location"] == f"/v1/requests/{reply['id']}"
        return str(reply["id"])


async def get(gateway: Gateway, path: str, who: str = "read") -> tuple[int, dict]:
    async with gateway.session.get(gateway.url + path, headers=gateway.auth(who)) as response:
        return response.status, await response.json()


async def test_a_submitted_request_runs_and_its_steps_and_results_can_be_read(gateway: Gateway) -> None:
    rid = await submit(gateway, body(itinerary=()))  # a full migrate itinerary of stub steps
    await gateway.client.wait(rid, within=30)
    status, state = await get(gateway, f"/v1/requests/{rid}")
    assert status == 200
    assert state["phase"] == "Completed"
    steps = ["preflight", "discover", "snapshot", "transfer", "restore", "verify"]
    assert [s["step"] for s in state["steps"]] == steps
    assert all(s["status"] == "Succeeded" for s in state["steps"])
    assert state["steps"][2]["result"]["counts"] == {"volumes": 2}
    assert state["request"]["target"]["cluster"] == "west"
    status, missing = await get(gateway, "/v1/requests/migrate-nope")
    assert (status, missing["code"], missing["field"]) == (404, "not-found", "id")


async def test_the_same_idempotency_key_gives_back_the_same_request(gateway: Gateway) -> None:
    first = await submit(gateway, body(key="deploy-7"))
    async with gateway.session.post(
        gateway.url + "/v1/requests", data=body(key="deploy-7"), headers=gateway.auth("submit")
    ) as response:
        assert response.status == 200
        assert await response.json() == {"type": "accepted", "id": first, "duplicate": True}
    headers = {**gateway.auth("submit"), "Idempotency-Key": "deploy-8"}  # the HTTP header works too
    async with gateway.session.post(gateway.url + "/v1/requests", data=body(), headers=headers) as response:
        assert response.status == 201
        second = (await response.json())["id"]
    async with gateway.session.post(gateway.url + "/v1/requests", data=body(), headers=headers) as response:
        assert (response.status, (await response.json())["id"]) == (200, second)


async def test_the_same_idempotency_key_with_another_body_is_409_naming_the_key_and_the_request(
    gateway: Gateway,
) -> None:
    first = await submit(gateway, body(key="deploy-9", team="a"))
    url = gateway.url + "/v1/requests"
    async with gateway.session.post(
        url, data=body(key="deploy-9", team="b"), headers=gateway.auth("submit")
    ) as r:
        assert r.status == 409
        conflict = await r.json()
    assert (conflict["code"], conflict["field"]) == ("conflict", "$.idempotency_key")
    assert "deploy-9" in conflict["error"] and first in conflict["error"]
    headers = {**gateway.auth("submit"), "Idempotency-Key": "deploy-10"}
    second = await submit(gateway, body(team="a"))  # no key: a request of its own
    async with gateway.session.post(url, data=body(team="a"), headers=headers) as r:
        assert r.status == 201
    async with gateway.session.post(url, data=body(team="b"), headers=headers) as r:
        assert r.status == 409
        conflict = await r.json()
    assert conflict["field"] == "Idempotency-Key" and "deploy-10" in conflict["error"]
    assert second not in conflict["error"]
    status, listed = await get(gateway, "/v1/requests")
    assert status == 200 and len(listed["items"]) == 3  # the refused ones stored nothing


async def test_the_list_pages_and_an_unreadable_entry_is_skipped_not_a_500(gateway: Gateway) -> None:
    from shared.contracts import subjects

    ids = {await submit(gateway, body()) for _ in range(5)}
    kv = await gateway.client.nc.jetstream().key_value(subjects.REQUESTS_BUCKET)
    await kv.put("migrate-broken", b'{"id": "migrate-broken", "request": {"kind": "mig')  # cut short
    seen: list[str] = []
    query = "?limit=2"
    while True:
        status, page = await get(gateway, "/v1/requests" + query)
        assert status == 200, page
        assert [s["id"] for s in page["skipped"]] == ["migrate-broken"]
        seen += [item["id"] for item in page["items"]]
        if "next" not in page:
            break
        query = "?limit=2&cursor=" + urllib.parse.quote(page["next"])
    assert sorted(seen) == sorted(ids) and len(seen) == 5
    status, broken = await get(gateway, "/v1/requests/migrate-broken")
    assert (status, broken["code"]) == (500, "unreadable")
    status, error = await get(gateway, "/v1/requests?cursor=nonsense")
    assert (status, error["field"]) == (400, "cursor")


async def test_requests_are_listed_with_filters(gateway: Gateway) -> None:
    before = dt.datetime.now(dt.UTC) - dt.timedelta(seconds=1)
    migrate = await submit(gateway, body(team="a"))
    replicate = await submit(gateway, body(RequestKind.REPLICATE, team="b"))
    failed = await submit(gateway, body(team="b", behaviour="fail-perm"))
    for rid in (migrate, replicate, failed):
        await gateway.client.wait(rid, within=30)

    async def ids(query: str) -> list[str]:
        status, listed = await get(gateway, "/v1/requests" + query)
        assert status == 200, listed
        return [item["id"] for item in listed["items"]]

    assert sorted(await ids("")) == sorted([migrate, replicate, failed])
    assert await ids("?kind=replicate") == [replicate]
    assert sorted(await ids("?label=team%3Db")) == sorted([replicate, failed])
    assert await ids("?phase=Failed") == [failed]
    assert len(await ids("?limit=2")) == 2
    assert len(await ids("?since=" + before.isoformat().replace("+00:00", "Z"))) == 3
    assert await ids("?since=2999-01-01T00:00:00Z") == []
    for query, field in [
        ("?phase=Done", "phase"),
        ("?kind=teleport", "kind"),
        ("?label=team", "label"),
        ("?limit=0", "limit"),
        ("?since=yesterday", "since"),
        ("?colour=red", "colour"),
    ]:
        status, error = await get(gateway, "/v1/requests" + query)
        assert (status, error["field"]) == (400, field), query


async def test_cancel_stops_a_running_request(gateway: Gateway) -> None:
    rid = await submit(gateway, body(behaviour="block"))

    async def running() -> bool:
        return (await get(gateway, f"/v1/requests/{rid}"))[1]["phase"] == "InProgress"

    await eventually(running, what="the step started")
    async with gateway.session.post(
        gateway.url + f"/v1/requests/{rid}/cancel", headers=gateway.auth("submit")
    ) as response:
        assert response.status == 202
        assert (await response.json())["cancel_requested"] is True
    state = await gateway.client.wait(rid, within=15)
    assert state.phase.value == "Cancelled"
    async with gateway.session.post(
        gateway.url + "/v1/requests/nope/cancel", headers=gateway.auth("submit")
    ) as response:
        assert response.status == 404


async def test_events_stream_history_then_live_and_resume_after_last_event_id(gateway: Gateway) -> None:
    rid = await submit(gateway, body(itinerary=("snapshot", "verify"), behaviour="sleep", seconds="0.6"))
    url = gateway.url + f"/v1/requests/{rid}/events"
    async with gateway.session.get(url, headers=gateway.auth("read")) as response:  # connected while it runs
        assert response.status == 200
        assert response.headers["Content-Type"].startswith("text/event-stream")
        live = await asyncio.wait_for(read_frames(response), timeout=30)
    kinds = [kind for _, kind, _ in live]
    phases = [data["phase"] for _, kind, data in live if kind == "phase"]
    # history first: Queued was published before the submission was answered, so before we connected
    # (intake queues the first step before it publishes Queued, so a step-started may come first)
    assert phases[0] == "Queued"
    assert (
        kinds[-1] == "phase" and live[-1][2]["phase"] == "Completed"
    )  # the stream ends after the final phase
    assert {"step-started", "progress", "step-completed", "report"} <= set(kinds)
    ids = [seq for seq, _, _ in live]
    assert ids == sorted(ids) and len(set(ids)) == len(ids)
    volumes = {data["volume"] for _, kind, data in live if kind == "progress" and data["volume"]}
    assert volumes == {"data-db-0", "uploads"}

    resume_from = ids[4]
    headers = {**gateway.auth("read"), "Last-Event-ID": str(resume_from)}
    async with gateway.session.get(url, headers=headers) as response:
        resumed = await asyncio.wait_for(read_frames(response), timeout=30)
    assert resumed == [frame for frame in live if frame[0] > resume_from]
    async with gateway.session.get(url + f"?after={ids[-1]}", headers=gateway.auth("read")) as response:
        assert await asyncio.wait_for(read_frames(response), timeout=10) == []  # nothing after the end
    async with gateway.session.get(url, headers={**gateway.auth("read"), "Last-Event-ID": "x"}) as response:
        assert response.status == 400
        assert (await response.json())["field"] == "Last-Event-ID"


async def test_events_of_an_unknown_request_are_404(gateway: Gateway) -> None:
    status, error = await get(gateway, "/v1/requests/nope/events")
    assert (status, error["code"]) == (404, "not-found")


async def test_the_openapi_document_is_served_and_in_sync_with_docs(gateway: Gateway) -> None:
    async with gateway.session.get(
        gateway.url + "/v1/openapi.json", headers=gateway.auth("read")
    ) as response:
        assert response.status == 200
        served = await response.text()
    committed = (ROOT / "docs" / "openapi.json").read_text()
    assert served == openapi.render()
    assert committed == served, (
        "docs/openapi.json is stale: python -m services.gateway.openapi docs/openapi.json"
    )
    document = json.loads(served)
    assert {"MobilityRequest", "RequestState", "Event", "ErrorBody"} <= set(document["components"]["schemas"])
    routes = {
        (r.method.lower(), r.resource.canonical)
        for r in gateway.service._runner.app.router.routes()  # type: ignore[union-attr]
        if r.resource is not None and r.resource.canonical.startswith(("/v1/", "/healthz"))
    }  # the console's pages (services/gateway/console) are not part of the API
    documented = {(m, p) for p, item in document["paths"].items() for m in item}
    assert routes - {("head", p) for _, p in routes} <= documented | {("get", "/v1/openapi.json")}


@pytest.mark.parametrize("who", ["read", "cli"])
async def test_snapshots_are_answered_by_the_snapshot_service(gateway: Gateway, who: str) -> None:
    nc = gateway.client.nc

    async def catalog(msg) -> None:  # a stand-in for the snapshot service's micro endpoints
        if msg.subject.endswith(".list"):
            query = json.loads(msg.data)
            await msg.respond(
                json.dumps({"items": [{"id": "snap-1", "cluster": query.get("cluster", "")}]}).encode()
            )
        elif msg.data == b"snap-1":
            await msg.respond(json.dumps({"id": "snap-1", "volumes": 2}).encode())
        else:
            await msg.respond(
                json.dumps(
                    {"type": "rejected", "error": "no snapshot 'x'", "field": "id", "code": "not-found"}
                ).encode()
            )

    sub = await nc.subscribe("ferry.snapshots.*", cb=catalog)
    await nc.flush()  # the server knows the subscription before the gateway asks
    try:

        async def answered() -> bool:  # seen from the gateway's own connection (rarely a beat later)
            return (await get(gateway, "/v1/snapshots?cluster=east", who))[0] == 200

        await eventually(answered, within=10, what="the stub catalog answers")
        status, listed = await get(gateway, "/v1/snapshots?cluster=east", who)
        assert (status, listed) == (200, {"items": [{"id": "snap-1", "cluster": "east"}]}), listed
        assert await get(gateway, "/v1/snapshots/snap-1", who) == (200, {"id": "snap-1", "volumes": 2})
        status, missing = await get(gateway, "/v1/snapshots/other", who)
        assert (status, missing["code"]) == (404, "not-found")
        assert "'x'" not in missing["error"]
    finally:
        await sub.unsubscribe()
        await nc.flush()
    status, down = await get(gateway, "/v1/snapshots", who)
    assert (status, down["code"]) == (503, "unavailable")
    assert "ferry.snapshots.list" in down["error"]


async def test_a_client_leaving_mid_stream_leaves_no_subscription_behind(gateway: Gateway) -> None:
    rid = await submit(gateway, body(behaviour="block"))
    url = gateway.url + f"/v1/requests/{rid}/events"
    async with gateway.session.get(url, headers=gateway.auth("read")) as response:
        async for line in response.content:
            if line.startswith(b"data: "):
                break  # one event seen; the client goes away while the request still runs
    await gateway.client.cancel(rid)
    await gateway.client.wait(rid, within=15)

    async def no_consumers() -> bool:
        from shared.contracts import subjects

        info = await gateway.client.nc.jetstream().stream_info(subjects.EVENTS_STREAM)
        return info.state.consumer_count == 0

    await eventually(no_consumers, within=10, what="the stream's ordered consumer was removed")
