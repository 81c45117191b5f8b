"""Progress events over NATS, in Ferry's contract, from a mover that is not itself async.

``Progress`` events go to ``ferry.events.<request-id>.progress`` at most once a second (plus a last
one), published through ``shared.bus`` from a background thread that owns its own asyncio loop: the
data path never waits on the bus, and a bus outage only loses progress events, never fails a backup.
This module is imported only when ``--nats-url`` and ``--request-id`` are given.
"""

from __future__ import annotations

import asyncio
import logging
import os
import threading
import time
from collections.abc import Mapping
from concurrent.futures import Future
from typing import Any

import msgspec

from shared.bus import BusSettings, connect, publish_event
from shared.contracts.events import Progress as ProgressEvent
from shared.contracts.steps import StepName
from shared.repository import Progress as RepoProgress
from shared.retrying import RetryPolicy

log = logging.getLogger("ferry.mover")
# Progress is best effort and the next report supersedes this one: a short retry (inside the 5 s a
# forced, final report waits) rides out a brief stream leader election.
_PROGRESS_RETRY = RetryPolicy(attempts=4, initial=0.2, maximum=1.0, budget=3.0)


def bus_settings(url: str, env: Mapping[str, str] | None = None) -> BusSettings:
    """The bus settings a mover Job gets (``shared.runtime.movers``): FERRY_NATS_* env vars."""
    env = os.environ if env is None else env
    fields = {
        name: env[f"FERRY_NATS_{name.upper()}"]
        for name in BusSettings.__struct_fields__
        if env.get(f"FERRY_NATS_{name.upper()}")
    }
    return msgspec.convert({**fields, "url": url, "name": "ferry-mover"}, BusSettings, strict=False)


class NatsProgress:
    """Publishes progress events from a private event loop thread."""

    def __init__(self, url: str, request_id: str, volume: str, step: str | None) -> None:
        self.request_id, self.volume = request_id, volume
        self.step = StepName(step) if step else None
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="ferry-nats", daemon=True)
        self._thread.start()
        self._client: Any = None
        self._last = 0.0
        self._inflight: Future[None] | None = None
        try:
            self._client = asyncio.run_coroutine_threadsafe(
                connect(bus_settings(url), max_reconnects=5), self._loop
            ).result(timeout=10)
        except Exception as e:  # progress is best effort: the data path goes on without it
            log.warning("progress events disabled, cannot connect to NATS at %s: %s", url, e)

    def publish(self, progress: RepoProgress, *, force: bool = False, message: str = "") -> None:
        now = time.monotonic()
        if self._client is None or (not force and now - self._last < 1.0):
            return
        if not force and self._inflight is not None and not self._inflight.done():
            return
        self._last = now
        event = ProgressEvent(
            request_id=self.request_id,
            step=self.step,
            volume=self.volume,
            bytes_done=progress.bytes_done,
            bytes_total=progress.bytes_total,
            items_done=progress.files_done,
            items_total=progress.files_total,
            message=message,
        )
        js = self._client.jetstream()
        publishing = publish_event(js, event, policy=_PROGRESS_RETRY)
        self._inflight = asyncio.run_coroutine_threadsafe(publishing, self._loop)
        if force:
            try:
                self._inflight.result(timeout=5)
            except Exception as e:
                log.warning("last progress event not published: %s", e)

    def close(self) -> None:
        if self._client is not None:
            try:
                asyncio.run_coroutine_threadsafe(self._client.drain(), self._loop).result(timeout=5)
            except Exception as e:
                log.warning("closing the NATS connection: %s", e)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=5)
        self._loop.close()
