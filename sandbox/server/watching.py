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
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from sandbox.server import errors, tables
from sandbox.server.selectors import Matcher
from sandbox.server.serving import Server
from sandbox.server.storage import Event, clone
from sandbox.types import ResourceType

TRUE = {"1", "t", "T", "TRUE", "true", "True"}


def parse_bool(value: str | None) -> bool:
    """Go's strconv.ParseBool: kubernetes-asyncio sends ``True``, kubectl sends ``true``."""
    return value in TRUE


@dataclass
class _Watch:
    """One watch request's parameters, and the events it sends (initial burst, then live)."""

    server: Server
    rt: ResourceType
    namespace: str | None
    match: Matcher
    bookmarks: bool
    send_initial: bool
    rv_param: str
    as_table: bool
    include: str
    deadline: float

    @classmethod
    def of(
        cls, request: web.Request, server: Server, rt: ResourceType, namespace: str | None, match: Matcher
    ) -> _Watch:
        q = request.query
        timeout = float(q.get("timeoutSeconds") or server.options.watch_timeout * (1 + random.random()))
        return cls(
            server=server,
            rt=rt,
            namespace=namespace,
            match=match,
            bookmarks=parse_bool(q.get("allowWatchBookmarks")),
            send_initial=parse_bool(q.get("sendInitialEvents")),
            rv_param=q.get("resourceVersion") or "",
            as_table=tables.wants_table(request.headers.get("Accept", "")),
            include=q.get("includeObject", "Metadata"),
            deadline=time.monotonic() + timeout,
        )

    def relevant(self, ev: Event) -> bool:
        if ev.resource != self.rt.resource:
            return False
        return self.namespace is None or ev.obj["metadata"].get("namespace") == self.namespace

    def render(self, kind: str, obj: dict[str, Any]) -> dict[str, Any]:
        shown = self.server.objects.present(self.rt, obj)
        if self.as_table:
            meta = {"resourceVersion": shown["metadata"]["resourceVersion"]}
            return {"type": kind, "object": tables.table(self.rt, [shown], meta, self.include)}
        return {"type": kind, "object": shown}

    def first_events(self) -> tuple[list[dict[str, Any]], bool]:
        """The events sent before following the store, and whether the watch ends right after (410)."""
        store, first = self.server.store, []
        if self.rv_param in ("", "0") or self.send_initial:
            first = [
                self.render("ADDED", obj)
                for obj in store.items(self.rt.resource, self.namespace)
                if self.match(obj)
            ]
            if self.send_initial and self.bookmarks:
                first.append(_bookmark(self.rt, store.rv, initial_end=True))
            return first, False
        try:
            since = int(self.rv_param)
        except ValueError:
            raise errors.bad_request(f"invalid resource version: {self.rv_param!r}") from None
        if since < store.oldest_rv:
            status = errors.too_old_resource_version(since, store.oldest_rv + 1).status()
            return [{"type": "ERROR", "object": status}], True
        for past in store.events_after(since):
            kind = _transition(past, self.match) if self.relevant(past) else None
            if kind:
                first.append(self.render(kind, past.obj))
        return first, False

    async def follow(
        self, resp: web.StreamResponse, queue: asyncio.Queue[Event | None], last_rv: int
    ) -> None:
        """Live events after ``last_rv`` until the deadline, with bookmarks while it is quiet."""
        server, interval = self.server, self.server.options.bookmark_interval
        while True:
            remaining = self.deadline - time.monotonic()
            if remaining <= 0:
                return
            try:
                ev = await asyncio.wait_for(queue.get(), timeout=min(remaining, interval))
            except TimeoutError:
                if self.bookmarks and time.monotonic() < self.deadline:
                    await resp.write(server.encode(_bookmark(self.rt, server.store.rv)) + b"\n")
                continue
            if ev is None:  # the server is stopping
                return
            if ev.rv <= last_rv:
                continue
            kind = _transition(ev, self.match)
            if kind is None:
                continue
            event = {"type": kind, "object": server.objects.present(self.rt, ev.obj)}
            await resp.write(server.encode(event) + b"\n")


async def serve_watch(
    request: web.Request,
    server: Server,
    rt: ResourceType,
    namespace: str | None,
    match: Matcher,
) -> web.StreamResponse:
    watch = _Watch.of(request, server, rt, namespace, match)
    store = server.store
    queue: asyncio.Queue[Event | None] = asyncio.Queue()

    def on_event(ev: Event) -> None:
        if watch.relevant(ev):
            queue.put_nowait(ev)

    store.subscribe(on_event)  # before the snapshot, on the one loop: nothing falls in between
    server.watch_queues.add(queue)
    try:
        last_rv = store.rv
        first, expired = watch.first_events()
        resp = web.StreamResponse(status=200, headers={"Content-Type": "application/json"})
        resp.enable_chunked_encoding()
        await resp.prepare(request)
        for event in first:
            await resp.write(server.encode(event) + b"\n")
        if not expired:
            await watch.follow(resp, queue, last_rv)
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
