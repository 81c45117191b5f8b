"""Watch streams: line-delimited JSON events, resourceVersion replay, bookmarks, 410 and timeouts.

A watch subscribes to the store *before* it snapshots, on the single event loop, so nothing falls in
between. ``resourceVersion`` absent or "0" starts with synthetic ADDED events for what exists;
``N`` replays the log after N, or answers one ERROR event carrying a 410 ``Expired`` Status when N
is older than the log's window. ``sendInitialEvents`` ends its initial burst with the
``k8s.io/initial-events-end`` bookmark. The stream closes cleanly after ``timeoutSeconds``.
"""

from __future__ import annotations

import asyncio
import random
import time
from typing import TYPE_CHECKING, Any

from aiohttp import web

from sandbox.server import errors, tables
from sandbox.server.selectors import Matcher
from sandbox.server.storage import Event, clone
from sandbox.types import ResourceType

if TYPE_CHECKING:
    from sandbox.server.app import ApiServer

TRUE = {"1", "t", "T", "TRUE", "true", "True"}


def parse_bool(value: str | None) -> bool:
    """Go's strconv.ParseBool: kubernetes-asyncio sends ``True``, kubectl sends ``true``."""
    return value in TRUE


async def serve_watch(
    request: web.Request,
    server: ApiServer,
    rt: ResourceType,
    namespace: str | None,
    match: Matcher,
) -> web.StreamResponse:
    q = request.query
    store = server.store
    bookmarks = parse_bool(q.get("allowWatchBookmarks"))
    send_initial = parse_bool(q.get("sendInitialEvents"))
    timeout = float(q.get("timeoutSeconds") or server.options.watch_timeout * (1 + random.random()))
    deadline = time.monotonic() + timeout
    rv_param = q.get("resourceVersion") or ""
    as_table = tables.wants_table(request.headers.get("Accept", ""))
    include = q.get("includeObject", "Metadata")

    def render(kind: str, obj: dict[str, Any]) -> dict[str, Any]:
        shown = server.objects.present(rt, obj)
        if as_table:
            meta = {"resourceVersion": shown["metadata"]["resourceVersion"]}
            return {"type": kind, "object": tables.table(rt, [shown], meta, include)}
        return {"type": kind, "object": shown}

    def relevant(ev: Event) -> bool:
        if ev.resource != rt.resource:
            return False
        return namespace is None or ev.obj["metadata"].get("namespace") == namespace

    queue: asyncio.Queue[Event | None] = asyncio.Queue()

    def on_event(ev: Event) -> None:
        if relevant(ev):
            queue.put_nowait(ev)

    store.subscribe(on_event)
    server.watch_queues.add(queue)
    try:
        first: list[dict[str, Any]] = []
        last_rv = store.rv
        if rv_param in ("", "0") or send_initial:
            for obj in store.items(rt.resource, namespace):
                if match(obj):
                    first.append(render("ADDED", obj))
            if send_initial and bookmarks:
                first.append(_bookmark(rt, store.rv, initial_end=True))
        else:
            try:
                since = int(rv_param)
            except ValueError:
                raise errors.bad_request(f"invalid resource version: {rv_param!r}") from None
            if since < store.oldest_rv:
                first.append(
                    {
                        "type": "ERROR",
                        "object": errors.too_old_resource_version(since, store.oldest_rv + 1).status(),
                    }
                )
                timeout = 0
            else:
                for past in store.events_after(since):
                    kind = _transition(past, match) if relevant(past) else None
                    if kind:
                        first.append(render(kind, past.obj))
        resp = web.StreamResponse(status=200, headers={"Content-Type": "application/json"})
        resp.enable_chunked_encoding()
        await resp.prepare(request)
        for event in first:
            await resp.write(server.encode(event) + b"\n")
        if timeout == 0:
            await resp.write_eof()
            return resp
        interval = server.options.bookmark_interval
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            try:
                ev = await asyncio.wait_for(queue.get(), timeout=min(remaining, interval))
            except TimeoutError:
                if bookmarks and time.monotonic() < deadline:
                    await resp.write(server.encode(_bookmark(rt, store.rv)) + b"\n")
                continue
            if ev is None:  # the server is stopping
                break
            if ev.rv <= last_rv:
                continue
            kind = _transition(ev, match)
            if kind is None:
                continue
            await resp.write(
                server.encode({"type": kind, "object": server.objects.present(rt, ev.obj)}) + b"\n"
            )
        await resp.write_eof()
        return resp
    except ConnectionResetError:  # the client went away: nothing left to tell it
        return web.StreamResponse()
    finally:
        store.unsubscribe(on_event)
        server.watch_queues.discard(queue)


def _transition(ev: Event, match: Matcher) -> str | None:
    """The event a filtered watch sees: an object entering the selector is ADDED, leaving it DELETED."""
    now_matches = match(ev.obj)
    if ev.type != "MODIFIED":
        return ev.type if now_matches else None
    before = ev.old is not None and match(ev.old)
    if now_matches:
        return "MODIFIED" if before else "ADDED"
    return "DELETED" if before else None


def _bookmark(rt: ResourceType, rv: int, initial_end: bool = False) -> dict[str, Any]:
    meta: dict[str, Any] = {"resourceVersion": str(rv)}
    if initial_end:
        meta["annotations"] = {"k8s.io/initial-events-end": "true"}
    return {
        "type": "BOOKMARK",
        "object": clone({"kind": rt.kind, "apiVersion": rt.group_version, "metadata": meta}),
    }
