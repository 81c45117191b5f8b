"""How a mover run shows its progress: a bar on a terminal, events over NATS, one JSON line at the end.

- On a terminal (stderr is a TTY) a ``rich`` bar shows bytes, files, rate and ETA. In a Job log there
  is no bar, only the final summary, so the log stays short.
- With ``--nats-url`` and ``--request-id``, progress events also go to NATS (``publishing.py``).
- With ``--json`` the last line on stdout is a JSON summary a service parses from the Job log.
"""

from __future__ import annotations

import json
import sys
import threading
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from shared.mover.publishing import NatsProgress
    from shared.repository import Progress as RepoProgress


class Reporter:
    """Fans one progress callback out to the terminal bar and to NATS."""

    def __init__(self, label: str, *, bar: bool, nats: NatsProgress | None) -> None:
        self.nats = nats
        self._bar: Any = None
        self._task: Any = None
        self._lock = threading.Lock()
        if bar:  # rich is imported only for a terminal: a Job should not pay for it at start-up
            from rich.console import Console
            from rich.progress import (
                BarColumn,
                DownloadColumn,
                Progress,
                TextColumn,
                TimeRemainingColumn,
                TransferSpeedColumn,
            )

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
        from shared.repository import Progress as RepoProgress  # the engine's: loaded with it

        self.last = RepoProgress()

    @property
    def active(self) -> bool:
        """False when nothing shows progress (no terminal, no NATS): the repository can skip it."""
        return self._bar is not None or self.nats is not None

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
