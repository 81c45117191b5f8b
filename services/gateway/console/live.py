"""A request page's live updates: the request's event stream, turned into HTML fragments.

The API's ``/v1/requests/{id}/events`` sends JSON for programs; a browser page wants the parts it
shows, ready to swap in. This stream follows the same JetStream history-then-live events (through
the gateway's ``BusClient``, within the same per-replica limit of open streams) and sends, as
Server-Sent Events that htmx's ``sse`` extension swaps by name:

- ``steps``: the timeline, re-rendered from the stored state when a step starts, ends or fails;
- ``volumes``: the per-volume progress bars, with rate and time left, on each volume's progress;
- ``phase``: the request's phase badge;
- ``done``: after the final phase; the page then fetches its finished body (reports, buttons).

The fragments are rendered from the whole history each time the page connects, so a reconnect
simply starts over: no ``Last-Event-ID`` bookkeeping, and bars that are right from the first frame.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncGenerator

from aiohttp import web

from services.gateway.config import Scope
from services.gateway.console import views
from services.gateway.console.keys import TEMPLATES
from services.gateway.console.sessions import Session, page
from services.gateway.requests import KEEPALIVE_FRAME, SSE_HEADERS, followed, request_id, stream_slot
from services.gateway.web import CLIENT
from shared.bus.client import BusClient
from shared.contracts.errors import FerryError
from shared.contracts.events import Event, Failed, PhaseChanged, Progress, StepCompleted, StepStarted

log = logging.getLogger("ferry.gateway.console")
_STEP_EVENTS = (StepStarted, StepCompleted, Failed, PhaseChanged)


def frame(name: str, html: str) -> bytes:
    """One SSE frame; a fragment of several lines becomes several ``data:`` lines."""
    data = "\n".join(f"data: {line}" for line in html.strip().splitlines() or [""])
    return f"event: {name}\n{data}\n\n".encode()


class Renderer:
    """Turns one request's events into the fragments of its page."""

    def __init__(self, request: web.Request, client: BusClient, rid: str) -> None:
        self.request, self.client, self.rid = request, client, rid
        self.env = request.app[TEMPLATES]
        self.tracker = views.VolumeTracker()

    def _render(self, template: str, **context: object) -> str:
        return self.env.get_template(template).render(**context)

    async def frames(self, event: Event) -> list[bytes]:
        out = []
        if isinstance(event, Progress) and self.tracker.feed(event):
            out.append(frame("volumes", self._render("_volumes.html", bars=self.tracker.bars(), live=True)))
        if isinstance(event, _STEP_EVENTS):
            state = await self.client.get(self.rid)
            out.append(frame("steps", self._render("_steps.html", timeline=views.timeline(state))))
        if isinstance(event, PhaseChanged):
            tone = views.phase_tone(event.phase)
            out.append(frame("phase", self._render("_phase.html", phase=event.phase.value, tone=tone)))
            if event.phase.final:
                out.append(frame("done", event.phase.value))
        return out


async def _frames(renderer: Renderer) -> AsyncGenerator[bytes, None]:
    events = followed(renderer.client, renderer.rid, name=f"console:live:{renderer.rid}")
    async with contextlib.aclosing(events):
        async for item in events:
            if item is None:
                yield KEEPALIVE_FRAME
                continue
            for rendered in await renderer.frames(item[1]):
                yield rendered


@page(Scope.READ)
async def live(request: web.Request, session: Session) -> web.StreamResponse:
    """The live fragments of one request page (the signed-in cookie, read scope)."""
    client, rid = request.app[CLIENT], request_id(request)
    await client.get(rid)  # 404 before the stream starts
    with stream_slot(request.app):
        response = web.StreamResponse(headers=SSE_HEADERS)
        try:
            await response.prepare(request)
            await response.write(b"retry: 3000\n\n")
            async with contextlib.aclosing(_frames(Renderer(request, client, rid))) as frames:
                async for item in frames:  # aclosing: a browser gone mid-write still stops the pump
                    await response.write(item)
            await response.write_eof()
        except ConnectionResetError:
            log.info("console stream of %s closed by the browser", rid)
        except FerryError as e:  # the stream has started: too late for an error page; the page retries
            log.warning("console stream of %s stopped: %s", rid, e)
    return response


def add_routes(router: web.UrlDispatcher) -> None:
    router.add_get("/requests/{id}/live", live)
