"""Snapshots and clusters: what Ferry can restore from, and where it can move things to.

Snapshots are answered by the snapshot service on ``ferry.snapshots.list|describe|delete``
(request-reply, documents in shared/contracts/snapshots.py); the gateway checks the query against
``SnapshotQuery``, passes the service's JSON through unchanged and maps a ``rejected`` reply onto
an HTTP status, so it holds no state.

Clusters are the contexts of the gateway's kubeconfig, each probed for reachability by
``shared.kube.probing`` (the same probe ``ferry clusters --bus`` runs).
"""

from __future__ import annotations

import logging
from typing import Any

import msgspec
from aiohttp import web

from services.gateway.config import Scope
from services.gateway.web import CLIENT, CONFIG, IDENTITY, json_response, requires, without_values
from shared.bus.client import BusClient
from shared.bus.micro import NoRespondersError
from shared.bus.micro import ReplyTimeout as NatsTimeout
from shared.contracts import subjects
from shared.contracts.errors import Invalid, NotFound, ServiceFailed, Unavailable, error_for, json_path
from shared.contracts.snapshots import SnapshotQuery, retention_decoder
from shared.kube.probing import KubeconfigUnreadable, probe_clusters

log = logging.getLogger("ferry.gateway")
_fields = msgspec.json.Decoder(dict[str, Any])


# --- snapshots (pass-through to the snapshot service) ------------------------------------------
async def ask_snapshots(client: BusClient, subject: str, payload: bytes) -> bytes:
    """One request to the snapshot service, its reply's bytes; its rejection raised as the taxonomy's
    error (the API passes the reply through, the console decodes it)."""
    try:
        reply = await client.nc.request(subject, payload, timeout=client.timeout)
    except NoRespondersError:
        raise Unavailable(
            f"no snapshot service answers on {subject}: the catalog is not available now"
        ) from None
    except (NatsTimeout, TimeoutError):
        raise Unavailable(f"the snapshot service did not answer on {subject} in time") from None
    try:
        doc = _fields.decode(reply.data)
    except msgspec.DecodeError:
        raise ServiceFailed("the snapshot service answered with something that is not JSON") from None
    if isinstance(doc, dict) and doc.get("type") == "rejected":
        raise error_for(
            str(doc.get("code", Invalid.code)),
            without_values(str(doc.get("error", "rejected"))),
            field=str(doc.get("field", "")),
        )
    return bytes(reply.data)


async def _ask(request: web.Request, subject: str, payload: bytes) -> web.Response:
    body = await ask_snapshots(request.app[CLIENT], subject, payload)
    return web.Response(body=body, content_type="application/json")


SNAPSHOT_QUERY = frozenset(SnapshotQuery.__struct_fields__)  # cluster, namespace, app, repository, limit


def _snapshot_target(request: web.Request) -> bytes:
    """The describe/delete body: the raw id, or ``{"id", "repository"}`` with ``?repository=``."""
    value = request.match_info["id"]
    if not value or len(value) > 256 or any(c in value for c in " \t\r\n*>"):
        raise NotFound("no snapshot with this id", field="id")
    unknown = sorted(set(request.query) - {"repository"})
    if unknown:
        raise Invalid("unknown query parameter", field=unknown[0])
    if repository := request.query.get("repository", ""):
        return msgspec.json.encode({"id": value, "repository": repository})
    return value.encode()


@requires(Scope.READ)
async def list_snapshots(request: web.Request) -> web.Response:
    """The query string is a SnapshotQuery (shared/contracts/snapshots.py); unknown parameters are refused."""
    unknown = sorted(set(request.query) - SNAPSHOT_QUERY)
    if unknown:
        raise Invalid(
            f"unknown query parameter (known: {', '.join(sorted(SNAPSHOT_QUERY))})", field=unknown[0]
        )
    limit = request.query.get("limit", "")
    if limit and (not limit.isdigit() or int(limit) < 1):
        raise Invalid("limit must be a positive integer", field="limit")
    query = SnapshotQuery(**{k: v for k, v in request.query.items()})
    return await _ask(request, subjects.SNAPSHOTS_LIST, msgspec.json.encode(query))


@requires(Scope.READ)
async def describe_snapshot(request: web.Request) -> web.Response:
    return await _ask(request, subjects.SNAPSHOTS_DESCRIBE, _snapshot_target(request))


@requires(Scope.ADMIN)
async def delete_snapshot(request: web.Request) -> web.Response:
    response = await _ask(request, subjects.SNAPSHOTS_DELETE, _snapshot_target(request))
    log.info("%s deleted snapshot %s", request[IDENTITY].name, request.match_info["id"])
    return response


@requires(Scope.ADMIN)
async def retain_snapshots(request: web.Request) -> web.Response:
    """Apply a retention policy (a RetentionQuery body) and prune what it frees."""
    body = await request.read()
    try:
        query = retention_decoder.decode(body or b"{}")
    except msgspec.ValidationError as e:
        raise Invalid(without_values(str(e)), field=json_path(e).removeprefix("$.")) from None
    except msgspec.DecodeError:
        raise Invalid("the body is not a JSON retention query") from None
    if query.keep_last is None and not query.keep_within:
        raise Invalid("say what to keep: keep_last and/or keep_within", field="keep_last")
    body = msgspec.json.encode(query)
    response = await _ask(request, subjects.SNAPSHOTS_RETAIN, body)
    log.info("%s applied retention %s", request[IDENTITY].name, body.decode())
    return response


# --- clusters -----------------------------------------------------------------------------------
@requires(Scope.READ)
async def list_clusters(request: web.Request) -> web.Response:
    """The gateway's kubeconfig contexts, each probed (``shared.kube.probing``)."""
    try:
        clusters = await probe_clusters(request.app[CONFIG].kubeconfig)
    except KubeconfigUnreadable as e:
        raise ServiceFailed(str(e), status=500) from None
    return json_response(clusters)


def add_routes(router: web.UrlDispatcher) -> None:
    router.add_get("/v1/snapshots", list_snapshots)
    router.add_post("/v1/snapshots/retention", retain_snapshots)
    router.add_get("/v1/snapshots/{id}", describe_snapshot)
    router.add_delete("/v1/snapshots/{id}", delete_snapshot)
    router.add_get("/v1/clusters", list_clusters)
