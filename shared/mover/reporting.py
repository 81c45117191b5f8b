"""How a mover run shows its progress: a bar on a terminal, events over NATS, one JSON line at the end.

- On a terminal (stderr is a TTY) a ``rich`` bar shows bytes, files, rate and ETA. In a Job log there
  is no bar, only the final summary, so the log stays short.
- With ``--nats-url`` and ``--request-id``, ``Progress`` events of Ferry's contract go to
  ``ferry.events.<request-id>.progress`` at most once a second (plus a last one), published from a
  background thread that owns its own asyncio loop: the data path never waits on the bus, and a bus
  outage only loses progress events, never fails the backup.
- With ``--json`` the last line on stdout is a JSON summary a service parses from the Job log.
"""

from __future__ import annotations

import asyncio
import json
import logging
import sys
import threading
import time
from concurrent.futures import Future
from typing import Any

from rich.console import Console
from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    TextColumn,
    TimeRemainingColumn,
    TransferSpeedColumn,
)

from shared.bus import BusSettings, connect, publish_event
from shared.contracts.events import Progress as ProgressEvent
from shared.contracts.steps import StepName
from shared.repository import Progress as RepoProgress

log = logging.getLogger("ferry.mover")


class NatsProgress:
    """Publishes progress events from a private event loop thread."""

    def __init__(self, url: str, request_id: str, volume: str, step: StepName | None) -> None:
        self.request_id, self.volume, self.step = request_id, volume, step
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="ferry-nats", daemon=True)
        self._thread.start()
        self._client: Any = None
        self._last = 0.0
        self._inflight: Future[None] | None = None
        try:
            self._client = asyncio.run_coroutine_threadsafe(
                connect(BusSettings(url=url, name="ferry-mover"), max_reconnects=5), self._loop
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
        self._inflight = asyncio.run_coroutine_threadsafe(publish_event(js, event), self._loop)
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


class Reporter:
    """Fans one progress callback out to the terminal bar and to NATS."""

    def __init__(self, label: str, *, bar: bool, nats: NatsProgress | None) -> None:
        self.nats = nats
        self._bar: Progress | None = None
        self._task: Any = None
        self._lock = threading.Lock()
        if bar:
            self._bar = Progress(
                TextColumn(f"[bold]{label}"),
                BarColumn(),
                DownloadColumn(),
                TransferSpeedColumn(),
                TextColumn("{task.fields[files]} files"),
                TimeRemainingColumn(),
                console=Console(file=sys.stderr),
                transient=False,
            )
            self._bar.start()
            self._task = self._bar.add_task(label, total=None, files="0")
        self.last = RepoProgress()

    def __call__(self, progress: RepoProgress) -> None:
        self.last = progress
        with self._lock:
            if self._bar is not None:
                files = (
                    f"{progress.files_done}/{progress.files_total}"
                    if progress.files_total
                    else str(progress.files_done)
                )
                self._bar.update(
                    self._task, completed=progress.bytes_done, total=progress.bytes_total or None, files=files
                )
        if self.nats is not None:
            self.nats.publish(progress)

    def close(self, message: str = "") -> None:
        if self._bar is not None:
            self._bar.stop()
        if self.nats is not None:
            self.nats.publish(self.last, force=True, message=message)
            self.nats.close()


def summary(doc: dict[str, Any]) -> None:
    """The one JSON line a service parses from the Job log (always the last line on stdout)."""
    sys.stdout.write(json.dumps(doc, sort_keys=True, default=str) + "\n")
    sys.stdout.flush()
