"""The aiohttp application: routes, JSON errors, bearer-token scopes, the body limit, metrics.

Four middlewares wrap every handler, outermost first. ``observe`` counts calls per route pattern
and status for Prometheus. ``errors`` turns anything raised into a JSON body naming the
problem (``{"error", "field", "code"}``) and never lets an internal detail out on a 500. ``auth``
reads the scopes a route needs (set with ``@requires``) and answers 401 without a valid token,
403 when the token lacks the scope (before anything else: an anonymous caller learns nothing).
``body_limit`` refuses bodies above ``max_body`` with 413 before they are read, and aiohttp's ``client_max_size`` stops a chunked body that lies about its size.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Awaitable, Callable
from typing import Any

import msgspec
from aiohttp import web
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from services.gateway.config import ANONYMOUS_ADMIN, GatewayConfig, Identity, Scope
from shared.bus.client import BusClient, RequestRejected
from shared.contracts.errors import FerryError, TemporaryError, http_status

log = logging.getLogger("ferry.gateway")

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

CLIENT = web.AppKey("client", BusClient)
CONFIG = web.AppKey("config", GatewayConfig)
IDENTITY = web.RequestKey("identity", Identity)


class HttpMetrics:
    """The API's Prometheus series, on the service's registry (served on FERRY_HTTP_PORT/metrics)."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.requests = Counter(
            "ferry_gateway_http_requests_total",
            "API calls by route and status",
            ["method", "route", "status"],
            registry=registry,
        )
        self.seconds = Histogram(
            "ferry_gateway_http_request_duration_seconds",
            "Time to answer an API call (event streams excluded)",
            ["method", "route"],
            registry=registry,
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 10),
        )
        self.streams = Gauge("ferry_gateway_event_streams", "Event streams open now", registry=registry)
        self.open_streams = 0


METRICS = web.AppKey("metrics", HttpMetrics)

_encoder = msgspec.json.Encoder()


class ErrorBody(msgspec.Struct, frozen=True):
    """Every error the gateway returns: what is wrong, where (a JSON path or a parameter), a code."""

    error: str
    field: str = ""
    code: str = "invalid"


class GatewayError(Exception):
    def __init__(self, status: int, error: str, *, field: str = "", code: str = "invalid") -> None:
        super().__init__(error)
        self.status, self.body = status, ErrorBody(error=error, field=field, code=code)


def json_response(data: Any, status: int = 200, headers: dict[str, str] | None = None) -> web.Response:
    return web.Response(
        body=_encoder.encode(data), status=status, content_type="application/json", headers=headers
    )


_QUOTED = re.compile(r"'[^']*'|\"[^\"]*\"|\[[^\]]*\]")


def without_values(message: str) -> str:
    """A validation message with every quoted value and list removed: paths and types only.

    msgspec and the contract checks quote offending values (``Invalid enum value 'x'``, a repr of a
    list); a value may be a secret pasted in the wrong field, so none is ever sent back.
    """
    return _QUOTED.sub("(value withheld)", message)


def requires(*scopes: Scope) -> Callable[[Handler], Handler]:
    """Mark the scopes a route accepts (any one of them; admin is always accepted)."""

    def mark(handler: Handler) -> Handler:
        handler.ferry_scopes = frozenset(scopes)  # type: ignore[attr-defined]
        return handler

    return mark


@web.middleware
async def observe(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Count every call by its route pattern (never the raw path: ids would explode the series)."""
    metrics = request.app[METRICS]
    resource = request.match_info.route.resource
    route = resource.canonical if resource is not None else "unmatched"
    started = time.monotonic()
    status = 500
    try:
        response = await handler(request)
        status = response.status
        return response
    finally:
        metrics.requests.labels(request.method, route, str(status)).inc()
        if not route.endswith("/events"):
            metrics.seconds.labels(request.method, route).observe(time.monotonic() - started)


@web.middleware
async def errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except GatewayError as e:
        return json_response(e.body, e.status, _challenge(e.status))
    except web.HTTPRequestEntityTooLarge:
        limit = request.app[CONFIG].max_body
        body = ErrorBody(error=f"request body larger than {limit} bytes", field="$", code="too-large")
        return json_response(body, 413)
    except web.HTTPException as e:
        if e.status < 400:
            raise
        return json_response(ErrorBody(error=e.reason, code=_code(e.status)), e.status)
    except RequestRejected as e:
        status = http_status(e.rejected.code)
        body = ErrorBody(without_values(e.rejected.error), e.rejected.field, e.rejected.code)
        return json_response(body, status)
    except TemporaryError as e:
        return json_response(ErrorBody(error=str(e), code="unavailable"), 503, {"Retry-After": "2"})
    except FerryError as e:
        return json_response(ErrorBody(error=str(e), code="failed"), 502)
    except Exception:
        log.exception("internal error on %s %s", request.method, request.path)
        return json_response(ErrorBody(error="internal error (see the gateway log)", code="internal"), 500)


def _code(status: int) -> str:
    return {404: "not-found", 405: "method-not-allowed", 413: "too-large"}.get(status, "invalid")


def _challenge(status: int) -> dict[str, str] | None:
    return {"WWW-Authenticate": 'Bearer realm="ferry"'} if status == 401 else None


@web.middleware
async def auth(request: web.Request, handler: Handler) -> web.StreamResponse:
    route_handler = request.match_info.route.handler
    needed: frozenset[Scope] | None = getattr(route_handler, "ferry_scopes", None)
    if needed is None:  # health, and unknown paths (404)
        return await handler(request)
    config = request.app[CONFIG]
    identity: Identity | None
    if config.insecure:
        identity = ANONYMOUS_ADMIN
    else:
        header = request.headers.get("Authorization", "")
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise GatewayError(
                401, "missing bearer token (Authorization: Bearer <token>)", code="unauthorized"
            )
        identity = config.tokens.identify(token.strip())
        if identity is None:
            raise GatewayError(401, "unknown or revoked token", code="unauthorized")
    if not identity.allows(needed):
        wanted = " or ".join(sorted(s.value for s in needed | {Scope.ADMIN}))
        raise GatewayError(403, f"this token lacks the scope this call needs: {wanted}", code="forbidden")
    request[IDENTITY] = identity
    return await handler(request)


@web.middleware
async def body_limit(request: web.Request, handler: Handler) -> web.StreamResponse:
    limit = request.app[CONFIG].max_body
    if request.content_length is not None and request.content_length > limit:
        raise web.HTTPRequestEntityTooLarge(max_size=limit, actual_size=request.content_length)
    return await handler(request)


async def healthz(_: web.Request) -> web.Response:
    return json_response({"status": "ok"})


def build_app(
    client: BusClient, config: GatewayConfig, registry: CollectorRegistry | None = None
) -> web.Application:
    """The whole REST API; ``client`` is the gateway's only way to state (the bus)."""
    from services.gateway import catalog, openapi, requests

    app = web.Application(middlewares=[observe, errors, auth, body_limit], client_max_size=config.max_body)
    app[CLIENT] = client
    app[CONFIG] = config
    app[METRICS] = HttpMetrics(registry or CollectorRegistry())
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/v1/healthz", healthz)  # the same, under the API prefix for load balancers
    requests.add_routes(app.router)
    catalog.add_routes(app.router)
    openapi.add_routes(app.router)
    return app
