"""The staged-migration routes: ``GET /v1/migrations`` (plans computed from the stored requests) and
``POST /v1/requests/{id}/rollback`` (a rollback built from the stored migrate), on the stub stack."""

from __future__ import annotations

import msgspec
import pytest

from shared.contracts.migrations import MigrationPlan, plan_key
from shared.contracts.requests import MobilityRequest, RequestKind, Source, Target
from tests.gateway.stack import Gateway

APP = MobilityRequest(
    kind=RequestKind.MIGRATE,
    source=Source(cluster="east", namespaces=["shop"]),
    target=Target(cluster="west", namespace_map={"shop": "shop-west"}),
)


async def migrate(gateway: Gateway, **fields: bool) -> str:
    rid = await gateway.client.submit(msgspec.structs.replace(APP, **fields))
    await gateway.client.wait(rid, within=30)
    return rid


async def call(gateway: Gateway, method: str, path: str, who: str = "cli") -> tuple[int, object]:
    async with gateway.session.request(method, gateway.url + path, headers=gateway.auth(who)) as response:
        return response.status, await response.json()


async def test_the_plan_of_two_stages_and_a_cutover(gateway: Gateway) -> None:
    stages = [await migrate(gateway, stage=True) for _ in range(2)]
    cutover = await migrate(gateway, cutover=True)
    status, body = await call(gateway, "GET", "/v1/migrations", "read")
    assert status == 200, body
    (plan,) = msgspec.convert(body, list[MigrationPlan])
    assert plan.key == plan_key(APP)
    assert (plan.source_cluster, plan.namespaces, plan.target_cluster) == ("east", ["shop"], "west")
    assert (plan.stages, plan.cutover, plan.cutover_request) == (2, "completed", cutover)
    assert plan.downtime_seconds == 2.5 and plan.source_quiesced and not plan.rolled_back
    assert plan.last_stage_bytes == 5 * 1024 * 1024 // 8  # the cutover's delta
    assert plan.requests == [*stages, cutover]


async def test_a_rollback_is_submitted_once_and_marks_the_plan_rolled_back(gateway: Gateway) -> None:
    cutover = await migrate(gateway, cutover=True)
    status, first = await call(gateway, "POST", f"/v1/requests/{cutover}/rollback")
    assert status == 201, first
    assert isinstance(first, dict)
    status, again = await call(gateway, "POST", f"/v1/requests/{cutover}/rollback")
    assert (status, again) == (200, {**first, "duplicate": True})
    state = await gateway.client.wait(first["id"], within=30)
    assert state.request.kind is RequestKind.ROLLBACK and state.request.rollback_of == cutover
    assert state.request.idempotency_key == f"rollback-{cutover}"
    (plan,) = await gateway.client.migrations()
    assert plan.rolled_back and not plan.source_quiesced


@pytest.mark.parametrize(
    ("path", "status", "words"),
    [
        pytest.param(
            "/v1/requests/migrate-20260101-000000-abcdef/rollback", 404, "no request", id="an unknown id"
        ),
        pytest.param("/v1/requests/not..an.id/rollback", 404, "no request", id="a malformed id"),
    ],
)
async def test_a_rollback_of_nothing_is_404(gateway: Gateway, path: str, status: int, words: str) -> None:
    answer, body = await call(gateway, "POST", path)
    assert answer == status and isinstance(body, dict)
    assert words in body["error"] and body["code"] == "not-found"


async def test_a_rollback_of_a_request_that_is_not_a_migrate_is_400(gateway: Gateway) -> None:
    replica = MobilityRequest(
        kind=RequestKind.REPLICATE, source=Source(cluster="east", namespaces=["shop"]), itinerary=["echo"]
    )
    rid = await gateway.client.submit(replica)
    await gateway.client.wait(rid, within=30)
    status, body = await call(gateway, "POST", f"/v1/requests/{rid}/rollback")
    assert status == 400 and isinstance(body, dict)
    assert "is a replicate: only a migrate can be rolled back" in body["error"]
    assert (body["field"], body["code"]) == ("id", "invalid")


async def test_no_plans_without_migrations(gateway: Gateway) -> None:
    assert await call(gateway, "GET", "/v1/migrations", "read") == (200, [])
