"""The OpenAPI 3.1 document of the gateway, built from the same msgspec types the bus uses.

Component schemas come from ``msgspec.json.schema_components``, so the HTTP contract cannot drift
from the bus contract; the paths are written here next to the routes they describe. The document is
served at ``/v1/openapi.json`` and kept in ``docs/openapi.json`` (a test compares the two);
regenerate with ``python -m services.gateway.openapi docs/openapi.json``.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import msgspec
from aiohttp import web

from services.gateway.policies import DrillAsk
from services.gateway.web import ErrorBody
from shared.contracts.drills import DrillList, DrillReport
from shared.contracts.events import Event
from shared.contracts.migrations import MigrationPlan
from shared.contracts.policies import Policy, PolicyDeleted, PolicyList, PolicyState
from shared.contracts.requests import MobilityRequest
from shared.contracts.snapshots import (
    Deleted,
    RetentionQuery,
    RetentionResult,
    SnapshotDetail,
    SnapshotList,
    SnapshotQuery,
)
from shared.contracts.states import Accepted, RequestList, RequestState
from shared.kube.probing import ClusterList
from shared.runtime.lifecycle import VERSION

REF = "#/components/schemas/{name}"


def _ref(name: str) -> dict[str, str]:
    return {"$ref": REF.format(name=name)}


def _json(schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _errors(*statuses: int) -> dict[str, Any]:
    words = {
        400: "Invalid input: `field` names the JSON path or parameter",
        401: "Missing or unknown bearer token",
        403: "The token lacks the scope this call needs",
        404: "No such request, snapshot, policy or drill",
        409: "A conflict with what is stored (code `conflict`): an idempotency key or a policy name "
        "reused with another body, a policy failed over",
        413: "Request body too large",
        500: "The stored request cannot be read (code `unreadable`); other requests are unaffected",
        503: "The bus or the service behind it does not answer",
    }
    return {str(s): _json(_ref("ErrorBody"), words[s]) for s in statuses}


_ID = {"name": "id", "in": "path", "required": True, "schema": {"type": "string"}}
_ANY = {"type": "object", "additionalProperties": True}
_REPOSITORY = {
    "name": "repository",
    "in": "query",
    "required": False,
    "description": "the repository's name (default: the default)",
    "schema": {"type": "string"},
}


_LIST_QUERY = [
    ("phase", "New, Queued, InProgress, Completed, PartiallyFailed, Failed or Cancelled"),
    ("kind", "migrate, replicate, restore, drill or rollback"),
    ("label", "key=value"),
    ("since", "ISO 8601 time: created at or after"),
    ("limit", "1..1000, default 100"),
    ("cursor", "a RequestList's `next`: the page after it"),
]
_DOCUMENTS = ["inventory", "restore_report", "rendered", "expectation", "verification"]


def _health() -> dict[str, Any]:
    def liveness(summary: str) -> dict[str, Any]:
        return {
            "get": {"summary": summary, "security": [], "responses": {"200": _json(_ANY, "The gateway runs")}}
        }

    return {
        "/healthz": liveness("Liveness (no token needed)"),
        "/v1/healthz": liveness("Liveness under the API prefix (no token needed)"),
    }


def _requests() -> dict[str, Any]:
    """Submit and list: ``/v1/requests``."""
    submit = {
        "summary": "Submit a mobility request (scope submit)",
        "parameters": [
            {
                "name": "Idempotency-Key",
                "in": "header",
                "required": False,
                "description": "used when the body has no idempotency_key",
                "schema": {"type": "string", "maxLength": 256},
            }
        ],
        "requestBody": {
            "required": True,
            "content": {"application/json": {"schema": _ref("MobilityRequest")}},
        },
        "responses": {
            "201": _json(_ref("Accepted"), "Accepted; Location names the request"),
            "200": _json(_ref("Accepted"), "A repeated idempotency key: the existing request"),
            **_errors(400, 401, 403, 409, 413, 503),
        },
    }
    listing = {
        "summary": "List requests, newest first (scope read)",
        "parameters": [
            {"name": n, "in": "query", "required": False, "description": d, "schema": {"type": "string"}}
            for n, d in _LIST_QUERY
        ],
        "responses": {"200": _json(_ref("RequestList"), "Matching requests"), **_errors(400, 401, 403, 503)},
    }
    return {"/v1/requests": {"post": submit, "get": listing}}


def _request() -> dict[str, Any]:
    """One request: get, cancel, its documents and its events."""
    return {
        "/v1/requests/{id}": {
            "get": {
                "summary": "One request with its per-step state and results (scope read)",
                "parameters": [_ID],
                "responses": {
                    "200": _json(_ref("RequestState"), "The request"),
                    **_errors(401, 403, 404, 500, 503),
                },
            }
        },
        "/v1/requests/{id}/cancel": {
            "post": {
                "summary": "Cancel a request (scope submit)",
                "parameters": [_ID],
                "responses": {
                    "202": _json(_ref("RequestState"), "Cancellation recorded"),
                    **_errors(401, 403, 404, 503),
                },
            }
        },
        "/v1/requests/{id}/rollback": {"post": _rollback()},
        "/v1/requests/{id}/documents/{document}": {"get": _document()},
        "/v1/requests/{id}/events": {"get": _events()},
    }


def _rollback() -> dict[str, Any]:
    return {
        "summary": "Roll back a migrate: remove what it created on the target, bring the source back "
        "(scope submit)",
        "description": "Submits a `rollback` request built from the stored migrate (`rollback_of`, "
        "idempotency key `rollback-<id>`): asked twice, the same rollback request (200). 400 when the "
        "request is not a migrate.",
        "parameters": [_ID],
        "responses": {
            "201": _json(_ref("Accepted"), "The rollback request; Location names it"),
            "200": _json(_ref("Accepted"), "The rollback already asked: the existing request"),
            **_errors(400, 401, 403, 404, 503),
        },
    }


def _migrations() -> dict[str, Any]:
    plans = {"type": "array", "items": _ref("MigrationPlan")}
    return {
        "/v1/migrations": {
            "get": {
                "summary": "Migration plans: per application moved, its stages, cutover, downtime, whether "
                "the source is quiesced or rolled back; the most recently active first (scope read)",
                "responses": {"200": _json(plans, "The plans"), **_errors(401, 403, 503)},
            }
        }
    }


def _document() -> dict[str, Any]:
    return {
        "summary": "A step's JSON document (scope read)",
        "description": "`inventory` (discover; schema inventory.schema.json), `restore_report` "
        "(restore; restore-report.schema.json), `rendered` (a dry-run restore: the objects it would "
        "write, as a list), `expectation` (restore: what the target must hold, Secret values as "
        "digests; expectation.schema.json), `verification` (verify; verification.schema.json). 404 names the "
        "documents the request has.",
        "parameters": [
            _ID,
            {"name": "document", "in": "path", "required": True, "schema": {"enum": _DOCUMENTS}},
        ],
        "responses": {
            "200": _json(_ANY, "The document as the step stored it"),
            **_errors(400, 401, 403, 404, 503),
        },
    }


def _events() -> dict[str, Any]:
    return {
        "summary": "Server-Sent Events: history, then live; ends after the final phase (scope read)",
        "description": "Each SSE `id` is the JetStream stream sequence and each `event` the event kind; "
        "`data` is one Event. Resume with the `Last-Event-ID` header (or `?after=`).",
        "parameters": [
            _ID,
            {"name": "Last-Event-ID", "in": "header", "required": False, "schema": {"type": "integer"}},
            {"name": "after", "in": "query", "required": False, "schema": {"type": "integer"}},
        ],
        "responses": {
            "200": {
                "description": "An event stream",
                "content": {"text/event-stream": {"schema": _ref("Event")}},
            },
            **_errors(400, 401, 403, 404, 503),
        },
    }


def _snapshots() -> dict[str, Any]:
    """The catalog: list, describe, delete, retention."""
    return {
        "/v1/snapshots/retention": {
            "post": {
                "summary": "Apply a retention policy: keep the newest N and/or those younger than an age, per "
                "application; delete the rest and prune their data (scope admin; dry_run to preview)",
                "requestBody": {
                    "required": True,
                    "content": {"application/json": {"schema": _ref("RetentionQuery")}},
                },
                "responses": {
                    "200": _json(_ref("RetentionResult"), "What was kept and removed"),
                    **_errors(400, 401, 403, 503),
                },
            }
        },
        "/v1/snapshots": {
            "get": {
                "summary": "List snapshots, newest first (scope read)",
                "parameters": [
                    {"name": n, "in": "query", "required": False, "schema": {"type": "string"}}
                    for n in SnapshotQuery.__struct_fields__
                ],
                "responses": {"200": _json(_ref("SnapshotList"), "Snapshots"), **_errors(400, 401, 403, 503)},
            }
        },
        "/v1/snapshots/{id}": {
            "get": {
                "summary": "Describe one snapshot: counts per resource, one record per volume (scope read)",
                "parameters": [_ID, _REPOSITORY],
                "responses": {
                    "200": _json(_ref("SnapshotDetail"), "The snapshot"),
                    **_errors(400, 401, 403, 404, 503),
                },
            },
            "delete": {
                "summary": "Delete one snapshot and prune what only it used (scope admin)",
                "parameters": [_ID, _REPOSITORY],
                "responses": {"200": _json(_ref("Deleted"), "Deleted"), **_errors(400, 401, 403, 404, 503)},
            },
        },
    }


def _clusters() -> dict[str, Any]:
    return {
        "/v1/clusters": {
            "get": {
                "summary": "Kubeconfig contexts with their reachability (scope read)",
                "responses": {"200": _json(_ref("ClusterList"), "Clusters"), **_errors(401, 403)},
            }
        }
    }


_NAME = {"name": "name", "in": "path", "required": True, "schema": {"type": "string"}}


def _call(summary: str, ok: dict[str, Any], *statuses: int, **more: Any) -> dict[str, Any]:
    """One operation on a policy (its name in the path) answering ``ok`` or the ``statuses``."""
    return {"summary": summary, "parameters": [_NAME], "responses": {**ok, **_errors(*statuses)}, **more}


def _policies() -> dict[str, Any]:
    """Replication policies: ``ferry.policies.*`` on the bus."""
    state = _ref("PolicyState")
    changed = {"200": _json(state, "The policy after the change")}
    return {
        "/v1/policies": {
            "get": {
                "summary": "Every policy with its RPO as of now (scope read)",
                "responses": {"200": _json(_ref("PolicyList"), "The policies"), **_errors(401, 403, 503)},
            },
            "post": {
                "summary": "Create a replication policy (scope submit)",
                "description": "Checked like the policy service checks it: a bad field is a 400 naming its "
                "JSON path (`$.schedule`, `$.rpo`...). The same body again answers the stored policy (200); "
                "another body under an existing name is a 409.",
                "requestBody": {
                    "required": True,
                    "content": {"application/json": {"schema": _ref("Policy")}},
                },
                "responses": {
                    "201": _json(state, "Created; Location names it"),
                    "200": _json(state, "The same policy existed already"),
                    **_errors(400, 401, 403, 409, 413, 503),
                },
            },
        },
        "/v1/policies/{name}": {
            "get": _call(
                "One policy, its RPO refreshed (scope read)",
                {"200": _json(state, "The policy")},
                401,
                403,
                404,
                503,
            ),
            "delete": _call(
                "Delete a policy and its schedule; the replicas stay (scope admin)",
                {"200": _json(_ref("PolicyDeleted"), "Deleted")},
                401,
                403,
                404,
                503,
            ),
        },
        "/v1/policies/{name}/pause": {
            "post": _call("Pause the slots (scope submit)", changed, 401, 403, 404, 409, 503)
        },
        "/v1/policies/{name}/resume": {
            "post": _call(
                "Resume the slots; those missed while paused are counted (scope submit)",
                changed,
                401,
                403,
                404,
                409,
                503,
            )
        },
        **_recovery(),
    }


def _recovery() -> dict[str, Any]:
    """Drill, failover and failback of a policy."""
    drill = _call(
        "Drill the policy's DR side: restore a replica into isolated namespaces, verify, measure RTO and "
        "RPO, clean up (scope submit)",
        {
            "201": _json(_ref("Accepted"), "The drill request; Location names it"),
            "200": _json(_ref("Accepted"), "The same drill asked before"),
        },
        400,
        401,
        403,
        404,
        409,
        503,
        requestBody={"required": False, "content": {"application/json": {"schema": _ref("DrillAsk")}}},
    )
    words = {
        "failover": "Fail over to the DR side: a cutover from the primary when it answers, else a restore of "
        "the newest replica; replication stops (scope submit). `failover_request` names the request",
        "failback": "Fail back to the primary: a cutover from the DR side; replication resumes when it "
        "completes (scope submit). `failback_request` names the request",
    }
    return {
        "/v1/policies/{name}/drill": {"post": drill},
        **{
            f"/v1/policies/{{name}}/{action}": {
                "post": _call(
                    text, {"200": _json(_ref("PolicyState"), "The policy")}, 401, 403, 404, 409, 503
                )
            }
            for action, text in words.items()
        },
    }


def _drills() -> dict[str, Any]:
    """Drill reports: ``ferry.drills.*`` on the bus."""
    query = [
        {
            "name": "policy",
            "in": "query",
            "required": False,
            "description": "one policy's drills",
            "schema": {"type": "string"},
        },
        {
            "name": "limit",
            "in": "query",
            "required": False,
            "description": "1..1000, default 100",
            "schema": {"type": "integer"},
        },
    ]
    return {
        "/v1/drills": {
            "get": {
                "summary": "Drill reports, newest first: RTO, RPO, verified, problems, clean-up (scope read)",
                "parameters": query,
                "responses": {"200": _json(_ref("DrillList"), "The drills"), **_errors(400, 401, 403, 503)},
            }
        },
        "/v1/drills/{id}": {
            "get": {
                "summary": "One drill's report, by its request id (scope read)",
                "parameters": [_ID],
                "responses": {"200": _json(_ref("DrillReport"), "The report"), **_errors(401, 403, 404, 503)},
            }
        },
    }


def _paths() -> dict[str, Any]:
    """Every route, next to the module that serves it: health, requests, migrations, snapshots,
    clusters, policies and drills."""
    return {
        **_health(),
        **_requests(),
        **_request(),
        **_migrations(),
        **_snapshots(),
        **_clusters(),
        **_policies(),
        **_drills(),
    }


def document() -> dict[str, Any]:
    types = [
        MobilityRequest,
        Accepted,
        RequestState,
        RequestList,
        Event,
        ErrorBody,
        ClusterList,
        MigrationPlan,
    ]
    types += [SnapshotList, SnapshotDetail, Deleted, RetentionQuery, RetentionResult]
    types += [Policy, PolicyState, PolicyList, PolicyDeleted, DrillAsk, DrillReport, DrillList]
    schemas, components = msgspec.json.schema_components(types, ref_template=REF)
    components["Event"] = schemas[types.index(Event)]  # a tagged union: a oneOf of the event kinds
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "Ferry gateway",
            "version": VERSION,
            "description": "Move and replicate Kubernetes applications between clusters. Same contract as the bus.",
        },
        "servers": [{"url": "/"}],
        "security": [{"bearer": []}],
        "paths": _paths(),
        "components": {
            "schemas": components,
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        },
    }


def render() -> str:
    return json.dumps(document(), indent=2, sort_keys=True) + "\n"


async def serve_document(_: web.Request) -> web.Response:
    return web.Response(text=render(), content_type="application/json")


serve_document.ferry_scopes = frozenset()  # type: ignore[attr-defined]  # needs a valid token, any scope


def add_routes(router: web.UrlDispatcher) -> None:
    router.add_get("/v1/openapi.json", serve_document)


if __name__ == "__main__":
    target = Path(sys.argv[1] if len(sys.argv) > 1 else "docs/openapi.json")
    target.write_text(render())
    print(f"wrote {target}")
