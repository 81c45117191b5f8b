"""Requests over HTTP: submit, list, get, cancel, roll back, their events as Server-Sent Events, and
the migration plans they add up to.

Each handler is a thin translation to the bus contract. A submission is decoded and checked here
first (the same ``decode_request`` intake uses), so a bad body is refused with the JSON path of the
bad field before anything reaches the bus, and the message sent back never quotes a value.

The event stream replays the request's history from the JetStream events stream and then follows
it live; each SSE ``id`` is the stream sequence, so a client that reconnects with ``Last-Event-ID``
(or ``?after=``) resumes exactly where it stopped. The stream ends after the request's final phase.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
import re
from collections.abc import AsyncGenerator, Iterator

import msgspec
from aiohttp import web

from services.gateway.config import Scope
from services.gateway.web import (
    CLIENT,
    CONFIG,
    IDENTITY,
    METRICS,
    json_response,
    path_part,
    requires,
    without_values,
)
from shared.bus.client import BusClient
from shared.contracts.errors import Conflict, Invalid, Unavailable, error_for
from shared.contracts.events import Event, event_encoder, event_kind
from shared.contracts.requests import RequestInvalid, RequestKind, decode_request, encode_request
from shared.contracts.states import MAX_LIST_LIMIT, Accepted, ListQuery, Phase

log = logging.getLogger("ferry.gateway")

REQUEST_ID = re.compile(r"^[A-Za-z0-9_-]{1,128}$")
KEEPALIVE = 15.0  # seconds between SSE comments while a request is quiet (proxies drop idle streams)
KEEPALIVE_FRAME = b": keep-alive\n\n"
SSE_HEADERS = {"Content-Type": "text/event-stream", "Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
MAX_LIMIT = MAX_LIST_LIMIT


def request_id(request: web.Request) -> str:
    return path_part(request, "id", REQUEST_ID, "no request with this id")


@requires(Scope.SUBMIT)
async def submit(request: web.Request) -> web.Response:
    body = await request.read()
    try:
        mobility = decode_request(body)
    except RequestInvalid as e:
        raise Invalid(without_values(e.reason), field=e.field) from None
    from_header = False
    if key := request.headers.get("Idempotency-Key", ""):  # the HTTP convention; the body's key wins
        if len(key) > 256:
            raise Invalid("at most 256 characters", field="Idempotency-Key")
        if not mobility.idempotency_key:
            mobility = msgspec.structs.replace(mobility, idempotency_key=key)
            from_header = True
    reply = await request.app[CLIENT].submit_raw(encode_request(mobility))
    if not isinstance(reply, Accepted):
        field = "Idempotency-Key" if from_header and reply.field == "$.idempotency_key" else reply.field
        # A conflict names the caller's own key and the request holding it: nothing to withhold.
        error = reply.error if reply.code == Conflict.code else without_values(reply.error)
        raise error_for(reply.code, error, field=field)
    log.info("%s submitted %s%s", request[IDENTITY].name, reply.id, " (duplicate)" if reply.duplicate else "")
    headers = {"Location": f"/v1/requests/{reply.id}"}
    return json_response(reply, 200 if reply.duplicate else 201, headers)


@requires(Scope.SUBMIT)
async def rollback_request(request: web.Request) -> web.Response:
    """Submit the rollback of a migrate, built from its stored state (404 for an unknown id, 400 when
    it is not a migrate); a second call answers the same rollback request with 200."""
    reply = await request.app[CLIENT].rollback(request_id(request))
    log.info("%s asked the rollback of %s: %s", request[IDENTITY].name, request.match_info["id"], reply.id)
    headers = {"Location": f"/v1/requests/{reply.id}"}
    return json_response(reply, 200 if reply.duplicate else 201, headers)


@requires(Scope.READ)
async def list_migrations(request: web.Request) -> web.Response:
    """Every application's migration plan (stages, cutover, rollback), the most recently active first."""
    return json_response(await request.app[CLIENT].migrations())


@requires(Scope.READ)
async def get_document(request: web.Request) -> web.Response:
    """A step's JSON document: the inventory, the restore report, a dry run's rendered objects, the
    verification report."""
    rid, name = request_id(request), request.match_info["document"]
    data = await request.app[CLIENT].document(rid, name)
    return web.Response(body=data, content_type="application/json")


def list_query(request: web.Request) -> ListQuery:
    """Filters from the query string; each bad one is named (the parameter is the field)."""
    params = request.query
    unknown = sorted(set(params) - {"phase", "kind", "label", "since", "limit", "cursor"})
    if unknown:
        raise Invalid("unknown query parameter", field=unknown[0])
    phase, kind = params.get("phase", ""), params.get("kind", "")
    if phase and phase not in {p.value for p in Phase}:
        raise Invalid(f"phase must be one of {', '.join(p.value for p in Phase)}", field="phase")
    if kind and kind not in {k.value for k in RequestKind}:
        raise Invalid(f"kind must be one of {', '.join(k.value for k in RequestKind)}", field="kind")
    label = params.get("label", "")
    if label and "=" not in label:
        raise Invalid("label must be key=value", field="label")
    since = params.get("since", "")
    if since:
        try:
            when = dt.datetime.fromisoformat(since.replace("Z", "+00:00"))
        except ValueError:
            raise Invalid("since must be an ISO 8601 time", field="since") from None
        if when.tzinfo is None:
            when = when.replace(tzinfo=dt.UTC)
        since = when.astimezone(dt.UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    try:
        limit = int(params.get("limit", "100"))
    except ValueError:
        raise Invalid("limit must be an integer", field="limit") from None
    if not 1 <= limit <= MAX_LIMIT:
        raise Invalid(f"limit must be between 1 and {MAX_LIMIT}", field="limit")
    cursor = params.get("cursor", "")
    if len(cursor) > 512 or (cursor and "|" not in cursor):
        raise Invalid("not a cursor of this list (a page's `next`)", field="cursor")
    return ListQuery(phase=phase, kind=kind, label=label, since=since, limit=limit, cursor=cursor)


@requires(Scope.READ)
async def list_requests(request: web.Request) -> web.Response:
    """One page, newest first; ``next`` is the ``cursor`` of the page after it, and ``skipped``
    names stored requests that could not be read (a list never fails because of one)."""
    return json_response(await request.app[CLIENT].list_page(list_query(request)))


@requires(Scope.READ)
async def get_request(request: web.Request) -> web.Response:
    return json_response(await request.app[CLIENT].get(request_id(request)))


@requires(Scope.SUBMIT)
async def cancel_request(request: web.Request) -> web.Response:
    state = await request.app[CLIENT].cancel(request_id(request))
    log.info("%s cancelled %s", request[IDENTITY].name, state.id)
    return json_response(state, 202)


def resume_after(request: web.Request) -> int:
    raw = request.headers.get("Last-Event-ID", "") or request.query.get("after", "")
    name = "Last-Event-ID" if request.headers.get("Last-Event-ID") else "after"
    if not raw:
        return 0
    if not raw.isdigit():
        raise Invalid("must be an event id (a stream sequence number)", field=name)
    return int(raw)


def sse_frame(seq: int, event: Event) -> bytes:
    data = event_encoder.encode(event).decode()
    return f"id: {seq}\nevent: {event_kind(event)}\ndata: {data}\n\n".encode()


async def _pump(
    client: BusClient, rid: str, after: int, follow: bool, queue: asyncio.Queue[tuple[int, Event] | None]
) -> None:
    try:
        async for item in client.events(rid, after=after, follow=follow, idle=0.5):
            await queue.put(item)
    finally:
        queue.put_nowait(None)  # the queue is unbounded: never blocks, even while cancelled


async def followed(
    client: BusClient, rid: str, *, name: str, after: int = 0, follow: bool = True
) -> AsyncGenerator[tuple[int, Event] | None, None]:
    """The events of ``rid`` as ``(sequence, event)``, and ``None`` after ``KEEPALIVE`` quiet seconds
    (the caller sends an SSE comment, so proxies keep the stream). A task named ``name`` reads the
    subscription; close this generator (``contextlib.aclosing``) so a client gone stops it too.
    Both event streams use it: the API's JSON one and the console's HTML fragments."""
    queue: asyncio.Queue[tuple[int, Event] | None] = asyncio.Queue()
    pump = asyncio.create_task(_pump(client, rid, after, follow, queue), name=name)
    try:
        while True:
            try:
                item = await asyncio.wait_for(queue.get(), timeout=KEEPALIVE)
            except TimeoutError:
                yield None
                continue
            if item is None:
                break
            yield item
        await pump  # surfaces an error of the subscription
    finally:
        if not pump.done():
            pump.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await pump


async def _frames(client: BusClient, rid: str, after: int, follow: bool) -> AsyncGenerator[bytes, None]:
    events = followed(client, rid, name=f"gateway:sse:{rid}", after=after, follow=follow)
    async with contextlib.aclosing(events):
        async for item in events:
            yield KEEPALIVE_FRAME if item is None else sse_frame(*item)


@requires(Scope.READ)
async def stream_events(request: web.Request) -> web.StreamResponse:
    client = request.app[CLIENT]
    rid = request_id(request)
    after = resume_after(request)
    state = await client.get(rid)  # 404 before the stream starts
    follow = not state.phase.final  # a finished request: its history, then the end
    with stream_slot(request.app):
        return await _stream(request, client, rid, after, follow)


@contextlib.contextmanager
def stream_slot(app: web.Application) -> Iterator[None]:
    """One of this replica's open event streams (the API's and the console's count together, up to
    ``max_streams``); ``Unavailable`` when they are all taken."""
    metrics = app[METRICS]
    if metrics.open_streams >= app[CONFIG].max_streams:
        raise Unavailable("too many event streams open on this gateway; retry later")
    metrics.open_streams += 1
    metrics.streams.inc()
    try:
        yield
    finally:
        metrics.open_streams -= 1
        metrics.streams.dec()


async def _stream(
    request: web.Request, client: BusClient, rid: str, after: int, follow: bool
) -> web.StreamResponse:
    response = web.StreamResponse(headers=SSE_HEADERS)
    await response.prepare(request)
    await response.write(b"retry: 2000\n\n")
    try:
        async with contextlib.aclosing(_frames(client, rid, after, follow)) as frames:
            async for frame in frames:  # aclosing: a client gone mid-write still stops the pump
                await response.write(frame)
        await response.write_eof()
    except ConnectionResetError:  # the client went away: nothing to answer, nothing to log as an error
        log.info("event stream of %s closed by the client", rid)
    return response


def add_routes(router: web.UrlDispatcher) -> None:
    router.add_post("/v1/requests", submit)
    router.add_get("/v1/requests", list_requests)
    router.add_get("/v1/requests/{id}", get_request)
    router.add_post("/v1/requests/{id}/cancel", cancel_request)
    router.add_post("/v1/requests/{id}/rollback", rollback_request)
    router.add_get("/v1/requests/{id}/events", stream_events)
    router.add_get("/v1/requests/{id}/documents/{document}", get_document)
    router.add_get("/v1/migrations", list_migrations)
