"""Replication policies and drills over HTTP, against the real policy service: create, read, pause,
resume, delete; bad input named by its field and never echoed; each route's scope."""

from __future__ import annotations

from typing import Any

import msgspec
import pytest

from tests.gateway.stack import Gateway

SECRET = "s3cr3t-Hunter2-schedule"


def policy(name: str = "shop-dr", **fields: Any) -> dict[str, Any]:
    """A policy as a user posts it: hourly (no slot fires during a test), a stub step for a run."""
    return {
        "name": name,
        "source": {"cluster": "east", "namespaces": ["shop"]},
        "target": {"cluster": "west", "repository": "dr"},
        "schedule": "@every 1h",
        "rpo": "30m",
        "itinerary": ["echo"],
        **fields,
    }


async def call(
    gateway: Gateway, method: str, path: str, who: str = "cli", body: Any = None
) -> tuple[int, Any]:
    data = msgspec.json.encode(body) if body is not None else None
    async with gateway.session.request(method, gateway.url + path, data=data, headers=gateway.auth(who)) as r:
        return r.status, await r.json()


async def test_a_policy_is_created_read_listed_paused_resumed_and_deleted(gateway: Gateway) -> None:
    status, created = await call(gateway, "POST", "/v1/policies", body=policy(time_zone=""))
    assert status == 201, created
    assert created["policy"]["name"] == "shop-dr" and created["status"]["state"] == "active"
    assert created["status"]["rpo_target_seconds"] == 1800
    again, same = await call(gateway, "POST", "/v1/policies", body=policy())
    assert again == 200 and same["status"]["created_at"] == created["status"]["created_at"]

    status, found = await call(gateway, "GET", "/v1/policies/shop-dr", who="read")
    assert status == 200 and found["policy"]["schedule"] == "@every 1h"
    status, listed = await call(gateway, "GET", "/v1/policies", who="read")
    assert [p["policy"]["name"] for p in listed["items"]] == ["shop-dr"]

    status, paused = await call(gateway, "POST", "/v1/policies/shop-dr/pause")
    assert status == 200 and paused["status"]["state"] == "paused" and paused["status"]["paused_at"]
    status, resumed = await call(gateway, "POST", "/v1/policies/shop-dr/resume")
    assert status == 200 and resumed["status"]["state"] == "active"

    status, deleted = await call(gateway, "DELETE", "/v1/policies/shop-dr", who="admin")
    assert (status, deleted) == (200, {"type": "deleted", "name": "shop-dr"})
    status, gone = await call(gateway, "GET", "/v1/policies/shop-dr", who="read")
    assert status == 404 and gone["code"] == "not-found"


async def test_another_definition_under_an_existing_name_is_409_naming_the_name(gateway: Gateway) -> None:
    assert (await call(gateway, "POST", "/v1/policies", body=policy()))[0] == 201
    status, error = await call(gateway, "POST", "/v1/policies", body=policy(rpo="2h"))
    assert status == 409, error
    assert error["code"] == "conflict" and error["field"] == "$.name"


@pytest.mark.parametrize(
    ("fields", "field", "words"),
    [
        pytest.param({"schedule": f"@every {SECRET}"}, "$.schedule", "", id="a bad schedule"),
        pytest.param({"rpo": SECRET}, "$.rpo", "not a duration", id="a bad rpo"),
        pytest.param({"time_zone": "Mars/Olympus"}, "$.time_zone", "time zone", id="an unknown time zone"),
        pytest.param({"target": {"repository": "dr"}}, "$.target.cluster", "DR cluster", id="no DR cluster"),
        pytest.param({"colour": "red"}, "$.colour", "unknown field", id="an unknown field"),
        pytest.param(
            {"target_retention": {"keep_last": -1}},
            "$.target_retention.keep_last",
            ">= 0",
            id="a negative keep",
        ),
    ],
)
async def test_a_bad_policy_is_400_naming_the_field_without_its_value(
    gateway: Gateway, fields: dict[str, Any], field: str, words: str
) -> None:
    status, error = await call(gateway, "POST", "/v1/policies", body=policy(**fields))
    assert status == 400, error
    assert error["field"] == field and error["code"] == "invalid"
    assert words in error["error"]
    assert SECRET not in error["error"]
    assert (await call(gateway, "GET", "/v1/policies", who="read"))[1]["items"] == []


async def test_unknown_policies_and_names_that_cannot_be_one_are_404(gateway: Gateway) -> None:
    for path, method in [
        ("/v1/policies/nope", "GET"),
        ("/v1/policies/nope/pause", "POST"),
        ("/v1/policies/Not_A_Name", "GET"),
    ]:
        status, error = await call(gateway, method, path)
        assert status == 404 and error["code"] == "not-found", (path, error)
        assert error["field"] == "name", error


# (method, path, the tokens that may call it, one that may not)
SCOPES = [
    pytest.param("GET", "/v1/policies", {"read", "cli", "admin"}, "submit", id="listing policies"),
    pytest.param("POST", "/v1/policies", {"submit", "cli", "admin"}, "read", id="creating a policy"),
    pytest.param("GET", "/v1/policies/shop-dr", {"read", "cli", "admin"}, "submit", id="getting a policy"),
    pytest.param("POST", "/v1/policies/shop-dr/pause", {"submit", "cli", "admin"}, "read", id="pausing"),
    pytest.param("POST", "/v1/policies/shop-dr/resume", {"submit", "cli", "admin"}, "read", id="resuming"),
    pytest.param("POST", "/v1/policies/shop-dr/drill", {"submit", "cli", "admin"}, "read", id="drilling"),
    pytest.param(
        "POST", "/v1/policies/shop-dr/failover", {"submit", "cli", "admin"}, "read", id="failing over"
    ),
    pytest.param(
        "POST", "/v1/policies/shop-dr/failback", {"submit", "cli", "admin"}, "read", id="failing back"
    ),
    pytest.param("DELETE", "/v1/policies/shop-dr", {"admin"}, "cli", id="deleting a policy"),
    pytest.param("GET", "/v1/drills", {"read", "cli", "admin"}, "submit", id="listing drills"),
    pytest.param("GET", "/v1/drills/drill-1", {"read", "cli", "admin"}, "submit", id="getting a drill"),
]


@pytest.mark.parametrize(("method", "path", "allowed", "refused"), SCOPES)
async def test_each_policy_route_needs_its_scope(
    gateway: Gateway, method: str, path: str, allowed: set[str], refused: str
) -> None:
    body = policy() if path == "/v1/policies" and method == "POST" else None
    status, error = await call(gateway, method, path, who=refused, body=body)
    assert status == 403 and error["code"] == "forbidden", error
    assert (await call(gateway, "GET", "/v1/policies", who="read"))[1]["items"] == []  # refused: nothing done
    status, error = await call(gateway, method, path, body=body, who=sorted(allowed)[0])
    assert status not in (401, 403), error


async def test_drills_are_listed_for_a_policy_and_a_bad_query_is_named(gateway: Gateway) -> None:
    status, error = await call(gateway, "GET", "/v1/drills?colour=red", who="read")
    assert status == 400 and error["field"] == "colour"
    status, error = await call(gateway, "GET", "/v1/drills?limit=0", who="read")
    assert status == 400 and error["field"] == "limit"
    status, error = await call(gateway, "GET", "/v1/drills?policy=Not_A_Name", who="read")
    assert status == 400 and error["field"] == "policy"
