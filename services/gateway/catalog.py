"""Snapshots and clusters: what Ferry can restore from, and where it can move things to.

Snapshots are answered by the snapshot service on ``ferry.snapshots.list|describe|delete``
(request-reply, documents in shared/contracts/snapshots.py); the gateway checks the query against
``SnapshotQuery``, passes the service's JSON through unchanged and maps a ``rejected`` reply onto
an HTTP status, so it holds no state.

Clusters are the contexts of the gateway's kubeconfig. Reachability is a ``GET {server}/version``
with a short timeout, done with aiohttp: a probe needs no Kubernetes client, and a 401/403 still
proves the API server answers.
"""

from __future__ import annotations

import asyncio
import base64
import logging
import os
import ssl
import time
from pathlib import Path
from typing import Any

import aiohttp
import msgspec
import yaml
from aiohttp import web

from services.gateway.app import (
    CLIENT,
    CONFIG,
    IDENTITY,
    GatewayError,
    json_response,
    requires,
    without_values,
)
from services.gateway.config import Scope
from shared.bus.micro import NoRespondersError
from shared.bus.micro import ReplyTimeout as NatsTimeout
from shared.contracts import subjects
from shared.contracts.errors import http_status, json_path
from shared.contracts.snapshots import SnapshotQuery, retention_decoder

log = logging.getLogger("ferry.gateway")
PROBE_TIMEOUT = 2.0
_fields = msgspec.json.Decoder(dict[str, Any])


class ClusterInfo(msgspec.Struct, frozen=True, kw_only=True):
    """One kubeconfig context and whether its API server answers."""

    name: str
    cluster: str
    server: str
    namespace: str = ""
    current: bool = False
    reachable: bool = False
    status: int | None = None  # HTTP status of GET /version
    version: str = ""  # gitVersion when /version answered 200
    latency_ms: float | None = None
    error: str = ""


class ClusterList(msgspec.Struct, frozen=True, kw_only=True):
    items: list[ClusterInfo]
    kubeconfig: str = ""


# --- snapshots (pass-through to the snapshot service) ------------------------------------------
async def _ask(request: web.Request, subject: str, payload: bytes) -> web.Response:
    nc = request.app[CLIENT].nc
    try:
        reply = await nc.request(subject, payload, timeout=request.app[CLIENT].timeout)
    except NoRespondersError:
        raise GatewayError(503, f"no snapshot service answers on {subject}", code="unavailable") from None
    except (NatsTimeout, TimeoutError):
        raise GatewayError(503, f"no reply on {subject} in time", code="unavailable") from None
    try:
        doc = _fields.decode(reply.data)
    except msgspec.DecodeError:
        raise GatewayError(
            502, "the snapshot service answered with something that is not JSON", code="failed"
        ) from None
    if isinstance(doc, dict) and doc.get("type") == "rejected":
        code = str(doc.get("code", "invalid"))
        raise GatewayError(
            http_status(code),
            without_values(str(doc.get("error", "rejected"))),
            field=str(doc.get("field", "")),
            code=code,
        )
    return web.Response(body=reply.data, content_type="application/json")


SNAPSHOT_QUERY = frozenset(SnapshotQuery.__struct_fields__)  # cluster, namespace, app, repository, limit


def _snapshot_target(request: web.Request) -> bytes:
    """The describe/delete body: the raw id, or ``{"id", "repository"}`` with ``?repository=``."""
    value = request.match_info["id"]
    if not value or len(value) > 256 or any(c in value for c in " \t\r\n*>"):
        raise GatewayError(404, "no snapshot with this id", field="id", code="not-found")
    unknown = sorted(set(request.query) - {"repository"})
    if unknown:
        raise GatewayError(400, "unknown query parameter", field=unknown[0])
    if repository := request.query.get("repository", ""):
        return msgspec.json.encode({"id": value, "repository": repository})
    return value.encode()


@requires(Scope.READ)
async def list_snapshots(request: web.Request) -> web.Response:
    """The query string is a SnapshotQuery (shared/contracts/snapshots.py); unknown parameters are refused."""
    unknown = sorted(set(request.query) - SNAPSHOT_QUERY)
    if unknown:
        raise GatewayError(
            400, f"unknown query parameter (known: {', '.join(sorted(SNAPSHOT_QUERY))})", field=unknown[0]
        )
    limit = request.query.get("limit", "")
    if limit and (not limit.isdigit() or int(limit) < 1):
        raise GatewayError(400, "limit must be a positive integer", field="limit")
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
        raise GatewayError(400, without_values(str(e)), field=json_path(e).removeprefix("$.")) from None
    except msgspec.DecodeError:
        raise GatewayError(400, "the body is not a JSON retention query") from None
    if query.keep_last is None and not query.keep_within:
        raise GatewayError(400, "say what to keep: keep_last and/or keep_within", field="keep_last")
    body = msgspec.json.encode(query)
    response = await _ask(request, subjects.SNAPSHOTS_RETAIN, body)
    log.info("%s applied retention %s", request[IDENTITY].name, body.decode())
    return response


# --- clusters -----------------------------------------------------------------------------------
def kubeconfig_path(configured: str) -> Path | None:
    candidates = [configured] if configured else []
    candidates += [p for p in os.environ.get("KUBECONFIG", "").split(os.pathsep) if p]
    candidates.append(str(Path.home() / ".kube" / "config"))
    for candidate in candidates:
        if Path(candidate).is_file():
            return Path(candidate)
    return None


def _ssl_for(cluster: dict[str, Any]) -> ssl.SSLContext | bool | None:
    if cluster.get("insecure-skip-tls-verify"):
        return False
    if data := cluster.get("certificate-authority-data"):
        return ssl.create_default_context(cadata=base64.b64decode(data).decode())
    if path := cluster.get("certificate-authority"):
        return ssl.create_default_context(cafile=path)
    return None


async def probe(
    session: aiohttp.ClientSession, info: ClusterInfo, cluster: dict[str, Any], user: dict[str, Any]
) -> ClusterInfo:
    headers = {"Authorization": f"Bearer {user['token']}"} if user.get("token") else {}
    started = time.monotonic()
    try:
        ssl_option = _ssl_for(cluster)
        async with session.get(
            f"{info.server.rstrip('/')}/version",
            headers=headers,
            ssl=ssl_option if ssl_option is not None else True,
            timeout=aiohttp.ClientTimeout(total=PROBE_TIMEOUT),
        ) as response:
            version = ""
            if response.status == 200:
                with_version = await response.json(content_type=None)
                version = str(with_version.get("gitVersion", "")) if isinstance(with_version, dict) else ""
            return msgspec.structs.replace(
                info,
                reachable=response.status < 500,
                status=response.status,
                version=version,
                latency_ms=round((time.monotonic() - started) * 1000, 1),
            )
    except TimeoutError:
        return msgspec.structs.replace(info, error=f"no answer within {PROBE_TIMEOUT}s")
    except (aiohttp.ClientError, ssl.SSLError, OSError, ValueError) as e:
        return msgspec.structs.replace(info, error=f"{type(e).__name__}: {e}")


async def clusters_of(path: Path | None) -> ClusterList:
    if path is None:
        return ClusterList(items=[])
    try:
        config = yaml.safe_load(await asyncio.to_thread(path.read_text)) or {}
    except (OSError, yaml.YAMLError) as e:
        raise GatewayError(500, f"cannot read the kubeconfig: {type(e).__name__}", code="failed") from None
    named = {
        kind: {e["name"]: e.get(kind[:-1], {}) for e in config.get(kind) or []}
        for kind in ("clusters", "users")
    }
    probes = []
    async with aiohttp.ClientSession() as session:
        for entry in config.get("contexts") or []:
            context = entry.get("context") or {}
            cluster = named["clusters"].get(context.get("cluster", ""), {})
            info = ClusterInfo(
                name=entry["name"],
                cluster=context.get("cluster", ""),
                server=cluster.get("server", ""),
                namespace=context.get("namespace", ""),
                current=entry["name"] == config.get("current-context"),
            )
            if not info.server:
                probes.append(
                    _done(msgspec.structs.replace(info, error="the context's cluster has no server"))
                )
                continue
            probes.append(probe(session, info, cluster, named["users"].get(context.get("user", ""), {})))
        items = await asyncio.gather(*probes)
    return ClusterList(items=list(items), kubeconfig=str(path))


async def _done(info: ClusterInfo) -> ClusterInfo:
    return info


@requires(Scope.READ)
async def list_clusters(request: web.Request) -> web.Response:
    return json_response(await clusters_of(kubeconfig_path(request.app[CONFIG].kubeconfig)))


def add_routes(router: web.UrlDispatcher) -> None:
    router.add_get("/v1/snapshots", list_snapshots)
    router.add_post("/v1/snapshots/retention", retain_snapshots)
    router.add_get("/v1/snapshots/{id}", describe_snapshot)
    router.add_delete("/v1/snapshots/{id}", delete_snapshot)
    router.add_get("/v1/clusters", list_clusters)
