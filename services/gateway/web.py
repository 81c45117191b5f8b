"""What every part of the gateway's API shares: app keys, JSON answers, error answers, scopes.

A leaf module: ``app`` (middlewares, the application) and the route modules (``requests``,
``catalog``, ``openapi``) all import it and it imports none of them, so the gateway has no import
circle. An error answer is one of the taxonomy's ``CodedError``s (``shared.contracts.errors``):
its ``code`` and ``status`` come from its class, so every route answers a kind of problem alike.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from typing import Any

import msgspec
from aiohttp import web
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from services.gateway.config import GatewayConfig, Identity, Scope
from shared.bus.client import BusClient
from shared.contracts.errors import CodedError, NotFound

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


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


CLIENT = web.AppKey("client", BusClient)
CONFIG = web.AppKey("config", GatewayConfig)
METRICS = web.AppKey("metrics", HttpMetrics)
IDENTITY = web.RequestKey("identity", Identity)

_encoder = msgspec.json.Encoder()


class ErrorBody(msgspec.Struct, frozen=True):
    """Every error the gateway returns: what is wrong, where (a JSON path or a parameter), a code."""

    error: str
    field: str = ""
    code: str = "invalid"


def json_response(data: Any, status: int = 200, headers: dict[str, str] | None = None) -> web.Response:
    return web.Response(
        body=_encoder.encode(data), status=status, content_type="application/json", headers=headers
    )


def error_response(error: CodedError, headers: dict[str, str] | None = None) -> web.Response:
    """The JSON answer to ``error``: its message, field and code, with its status (and, on a 401,
    the ``WWW-Authenticate`` challenge HTTP asks for)."""
    if error.status == 401:
        headers = {**(headers or {}), "WWW-Authenticate": 'Bearer realm="ferry"'}
    body = ErrorBody(error=str(error), field=error.field, code=error.code)
    return json_response(body, error.status, headers)


_QUOTED = re.compile(r"'[^']*'|\"[^\"]*\"|\[[^\]]*\]")


def without_values(message: str) -> str:
    """A validation message with every quoted value and list removed: paths and types only.

    msgspec and the contract checks quote offending values (``Invalid enum value 'x'``, a repr of a
    list); a value may be a secret pasted in the wrong field, so none is ever sent back.
    """
    return _QUOTED.sub("(value withheld)", message)


def path_part(request: web.Request, key: str, pattern: re.Pattern[str], missing: str) -> str:
    """The ``{key}`` part of the route's path; ``NotFound`` saying ``missing`` when it does not match
    ``pattern`` (a name that cannot exist is answered without a call on the bus)."""
    value = request.match_info[key]
    if not pattern.match(value):
        raise NotFound(missing, field=key)
    return value


def requires(*scopes: Scope) -> Callable[[Handler], Handler]:
    """Mark the scopes a route accepts (any one of them; admin is always accepted)."""

    def mark(handler: Handler) -> Handler:
        handler.ferry_scopes = frozenset(scopes)  # type: ignore[attr-defined]
        return handler

    return mark
