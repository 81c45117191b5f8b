"""Ferry services as child processes of the demo, each with its own log file and health port.

They run exactly as in a cluster (``python -m services.<name>`` with ``FERRY_*`` settings), so the
demo exercises the same process boundaries and the same bus traffic as a deployment.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class ServiceProcess:
    module: str  # e.g. "services.intake"
    env: dict[str, str]
    log_dir: Path
    port: int = field(default_factory=free_port)
    proc: subprocess.Popen[bytes] | None = None

    @property
    def name(self) -> str:
        return self.module.rsplit(".", 1)[-1]

    @property
    def log_path(self) -> Path:
        return self.log_dir / f"{self.name}.log"

    def start(self) -> ServiceProcess:
        env = {**os.environ, **self.env, "FERRY_HTTP_PORT": str(self.port), "FERRY_HTTP_HOST": "127.0.0.1"}
        self.log_dir.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", self.module],
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        return self

    def ready(self) -> bool:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/readyz", timeout=1) as response:
                return int(response.status) == 200
        except OSError:
            return False

    def stop(self, grace: float = 10.0) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGTERM)
        try:
            self.proc.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()


def wait_ready(services: list[ServiceProcess], within: float = 60.0) -> None:
    deadline = time.monotonic() + within
    pending = list(services)
    delay = 0.05
    while pending:
        for service in list(pending):
            if service.proc is not None and service.proc.poll() is not None:
                tail = service.log_path.read_text(errors="replace")[-2000:]
                raise RuntimeError(f"{service.name} exited with {service.proc.returncode}:\n{tail}")
            if service.ready():
                pending.remove(service)
        if pending and time.monotonic() > deadline:
            raise RuntimeError(f"not ready after {within:.0f}s: {[s.name for s in pending]}")
        time.sleep(delay)
        delay = min(delay * 1.5, 0.5)
