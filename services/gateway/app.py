"""The aiohttp application: routes, JSON errors, bearer-token scopes, the body limit, metrics.

Four middlewares wrap every handler, outermost first. ``observe`` counts calls per route pattern
and status for Prometheus. ``errors`` turns anything raised into a JSON body naming the
problem (``{"error", "field", "code"}``, one of the taxonomy's ``CodedError``s) and never lets an
internal detail out on a 500. ``auth`` reads the scopes a route needs (set with ``@requires``) and
answers 401 without a valid token, 403 when the token lacks the scope (before anything else: an
anonymous caller learns nothing). ``body_limit`` refuses bodies above ``max_body`` with 413 before
they are read, and aiohttp's ``client_max_size`` stops a chunked body that lies about its size.
What the route modules share (app keys, answers, ``requires``) is in ``web``.
"""

from __future__ import annotations

import logging
import time

from aiohttp import web
from prometheus_client import CollectorRegistry

from services.gateway import catalog, openapi, policies, requests
from services.gateway.config import ANONYMOUS_ADMIN, GatewayConfig, Identity, Scope
from services.gateway.console import setup_console
from services.gateway.web import (
    CLIENT,
    CONFIG,
    IDENTITY,
    METRICS,
    Handler,
    HttpMetrics,
    error_response,
    json_response,
    without_values,
)
from shared.bus.client import BusClient, RequestRejected
from shared.contracts.errors import (
    CodedError,
    FerryError,
    Forbidden,
    Internal,
    ServiceFailed,
    TemporaryError,
    TooLarge,
    Unauthorized,
    Unavailable,
    error_for,
    from_status,
)

log = logging.getLogger("ferry.gateway")


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
    """Whatever a handler raises, answered as a ``CodedError``: a bus rejection by its code, a
    temporary failure as 503 with Retry-After, any other Ferry error as 502, a bug as a bare 500."""
    try:
        return await handler(request)
    except web.HTTPRequestEntityTooLarge:
        limit = request.app[CONFIG].max_body
        return error_response(TooLarge(f"request body larger than {limit} bytes", field="$"))
    except web.HTTPException as e:  # aiohttp's own: 404 and 405 from the router, a bad body
        if e.status < 400:
            raise
        return error_response(from_status(e.status, e.reason))
    except RequestRejected as e:
        rejected = e.rejected
        return error_response(error_for(rejected.code, without_values(rejected.error), field=rejected.field))
    except CodedError as e:  # raised by the routes themselves
        return error_response(e)
    except TemporaryError as e:
        return error_response(Unavailable(str(e)), {"Retry-After": "2"})
    except FerryError as e:
        return error_response(ServiceFailed(str(e)))
    except Exception:
        log.exception("internal error on %s %s", request.method, request.path)
        return error_response(Internal("internal error (see the gateway log)"))


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
            raise Unauthorized("missing bearer token (Authorization: Bearer <token>)")
        identity = config.tokens.identify(token.strip())
        if identity is None:
            raise Unauthorized("unknown or revoked token")
    if not identity.allows(needed):
        wanted = " or ".join(sorted(s.value for s in needed | {Scope.ADMIN}))
        raise Forbidden(f"this token lacks the scope this call needs: {wanted}")
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
    app = web.Application(middlewares=[observe, errors, auth, body_limit], client_max_size=config.max_body)
    app[CLIENT] = client
    app[CONFIG] = config
    app[METRICS] = HttpMetrics(registry or CollectorRegistry())
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/v1/healthz", healthz)  # the same, under the API prefix for load balancers
    requests.add_routes(app.router)
    catalog.add_routes(app.router)
    policies.add_routes(app.router)
    openapi.add_routes(app.router)
    setup_console(app)
    return app
