"""The console's actions: start a migration (a dry run first), start it for real, cancel, roll back.

A migration starts as a dry run, always: the form builds the same ``MobilityRequest`` the API takes,
checked by the same ``decode_request`` (so a bad field is named by its JSON path, as the API would),
with ``dry_run`` set. Its page shows what it would do; the button there submits the stored request
again without ``dry_run``, under an idempotency key derived from the dry run, so a double click
starts one migration. Every action needs the submit scope (``sessions.page``), checked on the
server whatever the page showed.
"""

from __future__ import annotations

import logging
from typing import Any

import msgspec
from aiohttp import web

from services.gateway.config import Scope
from services.gateway.console import calls
from services.gateway.console.sessions import Session, page, render, see_other
from services.gateway.requests import request_id
from services.gateway.web import CLIENT, without_values
from shared.bus.client import RequestRejected
from shared.contracts.errors import Invalid
from shared.contracts.requests import (
    ConflictPolicy,
    MobilityRequest,
    RequestInvalid,
    RequestKind,
    decode_request,
    encode_request,
)
from shared.contracts.states import Accepted

log = logging.getLogger("ferry.gateway.console")
FIELDS = ("source", "target", "namespaces", "other_namespaces", "namespace_map", "storage_class_map")


def pairs(text: str, what: str, field: str) -> dict[str, str]:
    """``"a:b, c:d"`` (commas or new lines) as a mapping; a malformed entry is named."""
    mapping: dict[str, str] = {}
    for entry in text.replace("\n", ",").split(","):
        entry = entry.strip()
        if not entry:
            continue
        old, sep, new = entry.partition(":")
        if not sep or not old.strip() or not new.strip():
            raise RequestInvalid(field, f"each {what} entry is from:to, e.g. shop:shop-west")
        mapping[old.strip()] = new.strip()
    return mapping


def migration(form: dict[str, Any]) -> MobilityRequest:
    """The dry-run request the form describes, checked as the API checks a body."""
    chosen = [str(n) for n in form.get("namespaces", [])]
    chosen += [n.strip() for n in str(form.get("other_namespaces", "")).split(",") if n.strip()]
    body = {
        "kind": RequestKind.MIGRATE.value,
        "source": {"cluster": str(form.get("source", "")), "namespaces": list(dict.fromkeys(chosen))},
        "target": {
            "cluster": str(form.get("target", "")),
            "namespace_map": pairs(str(form.get("namespace_map", "")), "namespace mapping", "namespace_map"),
            "storage_class_map": pairs(
                str(form.get("storage_class_map", "")), "storage-class mapping", "storage_class_map"
            ),
        },
        "conflict_policy": str(form.get("conflict_policy", ConflictPolicy.SKIP.value)),
        "dry_run": True,
        "labels": {"submitted-by": "console"},
    }
    return decode_request(msgspec.json.encode(body))


async def _form(
    request: web.Request, values: dict[str, Any], error: str = "", status: int = 200
) -> web.Response:
    found, problem = await calls.clusters(request.app)
    names = [c.name for c in found.items]
    source = str(values.get("source", "")) or (names[0] if names else "")
    namespaces, ns_problem = await calls.namespaces(request.app, source) if source in names else ([], "")
    context = {
        "clusters": found.items,
        "problem": problem,
        "values": {**values, "source": source},
        "namespaces": namespaces,
        "ns_problem": ns_problem,
        "policies": [p.value for p in ConflictPolicy],
        "error": error,
    }
    return render(request, "migrate.html", context, status=status)


@page(Scope.SUBMIT)
async def migrate_form(request: web.Request, session: Session) -> web.Response:
    return await _form(request, dict(request.query))


@page(Scope.SUBMIT)
async def namespaces_fragment(request: web.Request, session: Session) -> web.Response:
    """The namespace checkboxes of the cluster chosen as the source (htmx swaps them in)."""
    cluster = request.query.get("source", "")
    found, problem = await calls.namespaces(request.app, cluster) if cluster else ([], "")
    return render(request, "_namespaces.html", {"namespaces": found, "ns_problem": problem, "values": {}})


@page(Scope.SUBMIT)
async def migrate_dry_run(request: web.Request, session: Session) -> web.Response:
    form = await request.post()
    values: dict[str, Any] = {k: str(form.get(k, "")) for k in FIELDS if k != "namespaces"}
    values["namespaces"] = [str(v) for v in form.getall("namespaces", [])]
    values["conflict_policy"] = str(form.get("conflict_policy", ""))
    try:
        mobility = migration(values)
    except RequestInvalid as e:
        return await _form(request, values, f"{e.field}: {without_values(e.reason)}", 400)
    reply = await request.app[CLIENT].submit_raw(encode_request(mobility))
    if not isinstance(reply, Accepted):
        return await _form(request, values, f"{reply.field}: {without_values(reply.error)}", 400)
    log.info("%s started dry run %s from the console", session.identity.name, reply.id)
    return see_other(f"/requests/{reply.id}")


@page(Scope.SUBMIT)
async def start_for_real(request: web.Request, session: Session) -> web.Response:
    """Submit a completed dry run's migration without ``dry_run`` (once, whatever the clicks)."""
    client, rid = request.app[CLIENT], request_id(request)
    state = await client.get(rid)
    if not state.request.dry_run or state.request.kind is not RequestKind.MIGRATE:
        raise Invalid(f"request {rid} is not a migration's dry run", field="id")
    real = msgspec.structs.replace(state.request, dry_run=False, idempotency_key=f"console-{rid}")
    reply = await client.submit_raw(encode_request(real))
    if not isinstance(reply, Accepted):
        raise RequestRejected(reply)
    log.info("%s started migration %s (dry run %s) from the console", session.identity.name, reply.id, rid)
    return see_other(f"/requests/{reply.id}")


@page(Scope.SUBMIT)
async def cancel(request: web.Request, session: Session) -> web.Response:
    state = await request.app[CLIENT].cancel(request_id(request))
    log.info("%s cancelled %s from the console", session.identity.name, state.id)
    return see_other(f"/requests/{state.id}")


@page(Scope.SUBMIT)
async def rollback(request: web.Request, session: Session) -> web.Response:
    """The gateway's rollback (``POST /v1/requests/{id}/rollback``), from the request page."""
    reply = await request.app[CLIENT].rollback(request_id(request))
    log.info("%s asked a rollback from the console: %s", session.identity.name, reply.id)
    return see_other(f"/requests/{reply.id}")


def add_routes(router: web.UrlDispatcher) -> None:
    router.add_get("/migrate", migrate_form)
    router.add_post("/migrate", migrate_dry_run)
    router.add_get("/migrate/namespaces", namespaces_fragment)
    router.add_post("/requests/{id}/start", start_for_real)
    router.add_post("/requests/{id}/cancel", cancel)
    router.add_post("/requests/{id}/rollback", rollback)
