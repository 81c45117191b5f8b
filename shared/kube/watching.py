"""Watching a collection, resumed where it broke: the loop kubernetes-asyncio's ``Watch`` half does.

A watch without a starting version lists first (the items come as ADDED events) and watches from
the list's resourceVersion, as informers do. The watch itself is a long GET answered with one JSON
event per line. Streams end (``timeoutSeconds``, a proxy, a restarted API server); the watch then
reconnects from the last ``resourceVersion`` it saw — from an event or a bookmark (asked for with
``allowWatchBookmarks``) — so no event is lost or repeated. An ``ERROR`` event carrying a 410
``Expired`` Status (the server no longer keeps that version) raises ``Expired``: the caller lists
again and watches from the list's version. Other ``ERROR`` events raise the matching Ferry error.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from shared.kube.errors import Unreachable, error_for

if TYPE_CHECKING:
    from shared.kube.requesting import Transport
    from shared.kube.resources import Resource

STREAM_SECONDS = 290  # one connection's server-side timeout; the watch reconnects after it


@dataclass(frozen=True)
class WatchEvent:
    type: str  # ADDED | MODIFIED | DELETED
    object: dict[str, Any]

    @property
    def name(self) -> str:
        return str((self.object.get("metadata") or {}).get("name", ""))


async def watch(
    transport: Transport,
    resource: Resource,
    namespace: str | None = None,
    *,
    label_selector: str = "",
    field_selector: str = "",
    resource_version: str | None = None,
    within: float | None = None,
) -> AsyncIterator[WatchEvent]:
    deadline = None if within is None else time.monotonic() + within
    version = resource_version
    if version is None:  # list first: the list's version is a safe point to resume from, object RVs are not
        selectors = {"labelSelector": label_selector or None, "fieldSelector": field_selector or None}
        listing = await transport.request(
            "GET", resource.path(namespace), query=selectors, what=resource.name
        )
        for obj in listing.get("items") or []:
            obj.setdefault("apiVersion", resource.api_version)
            obj.setdefault("kind", resource.kind)
            yield WatchEvent("ADDED", obj)
        version = str((listing.get("metadata") or {}).get("resourceVersion") or "") or None
    failures = 0
    while True:
        remaining = STREAM_SECONDS if deadline is None else int(deadline - time.monotonic())
        if remaining <= 0:
            return
        query: dict[str, str | int | None] = {
            "watch": "true",
            "allowWatchBookmarks": "true",
            "timeoutSeconds": min(remaining, STREAM_SECONDS),
            "resourceVersion": version,
            "labelSelector": label_selector or None,
            "fieldSelector": field_selector or None,
        }
        try:
            async for line in transport.lines(
                resource.path(namespace), query=query, read_timeout=min(remaining, STREAM_SECONDS) + 10
            ):
                if not line.strip():
                    continue
                event = json.loads(line)
                kind, obj = event.get("type"), event.get("object") or {}
                if kind == "ERROR":
                    raise error_for(int(obj.get("code") or 500), obj, cluster=transport.cluster)
                rv = (obj.get("metadata") or {}).get("resourceVersion")
                if rv:
                    version = rv
                failures = 0
                if kind == "BOOKMARK":
                    continue
                obj.setdefault("apiVersion", resource.api_version)
                obj.setdefault("kind", resource.kind)
                yield WatchEvent(str(kind), obj)
        except Unreachable:
            failures += 1
            if failures >= 5:
                raise
            await asyncio.sleep(min(0.2 * 2**failures, 5.0))
