"""Start and stop step replicas as real processes (``tests.bus.worker``), for kill and drain tests."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


class Workers:
    """Replicas of the ECHO step, each in its own process group; all killed when the test ends."""

    def __init__(self, nats_url: str, markers: Path) -> None:
        self.nats_url, self.markers = nats_url, markers
        self.processes: dict[str, subprocess.Popen[bytes]] = {}
        markers.mkdir(parents=True, exist_ok=True)

    def start(self, instance: str, *options: str) -> subprocess.Popen[bytes]:
        log = open(self.markers / f"{instance}.log", "wb")  # noqa: SIM115 - the child owns it
        with log:
            process = subprocess.Popen(
                [sys.executable, "-m", "tests.bus.worker", self.nats_url, str(self.markers)]
                + ["--instance", instance, *options],
                cwd=ROOT,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        self.processes[instance] = process
        return process

    def kill(self, instance: str) -> None:
        os.killpg(self.processes[instance].pid, signal.SIGKILL)
        self.processes[instance].wait(10)

    def starts(self, request_id: str) -> list[tuple[str, int, float]]:
        """Every start of the request's step: (instance, attempt, unix time), in order."""
        found = []
        for path in self.markers.glob(f"{request_id}.*.*.started"):
            instance, attempt = path.name[len(request_id) + 1 :].split(".")[:2]
            found.append((instance, int(attempt), float(path.read_text() or 0)))
        return sorted(found, key=lambda start: start[2])

    def log(self, instance: str) -> str:
        return (self.markers / f"{instance}.log").read_text(errors="replace")[-3000:]

    def stop_all(self) -> None:
        for process in self.processes.values():
            if process.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(process.pid, signal.SIGKILL)
                process.wait(10)


@contextlib.contextmanager
def workers(nats_url: str, markers: Path) -> Iterator[Workers]:
    running = Workers(nats_url, markers)
    try:
        yield running
    finally:
        running.stop_all()
