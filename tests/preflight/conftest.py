"""Fixtures for the preflight tests: three sandbox clusters with the shop app in east (plus a
kubeconfig context ``dead`` whose server does not answer), two local repositories, and Ferry's intake, preflight,
discovery and snapshot services on a fresh nats-server."""

from __future__ import annotations

import contextlib
import socket
from collections.abc import AsyncIterator
from pathlib import Path

import nats
import pytest

from sandbox import SandboxClusters, sandbox_clusters
from sandbox.apps import install_shop
from sandbox.cluster import write_kubeconfig
from sandbox.localstack import NatsServer
from services.discovery.discovering import DiscoveryService
from services.discovery.preflight import PreflightService
from services.intake.intake import IntakeService
from services.snapshot.snapshotting import SnapshotService
from shared.bus.client import BusClient
from shared.runtime import Settings, load_settings
from tests.store.conftest import PASSWORD


def closed_port() -> int:
    """A local port nothing listens on (bound, then released)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
async def clusters(tmp_path: Path) -> AsyncIterator[SandboxClusters]:
    """east (with the shop), west, and prod: a third cluster for the "wrong target cluster" case."""
    async with sandbox_clusters(tmp_path / "clusters", ("east", "west", "prod")) as running:
        await install_shop(running["east"].url)
        yield running


@pytest.fixture
def kubeconfig(clusters: SandboxClusters, tmp_path: Path) -> Path:
    """east, west, prod, and ``dead``: a cluster whose API server is gone."""
    servers = [(c.name, c.url) for c in clusters] + [("dead", f"http://127.0.0.1:{closed_port()}")]
    return write_kubeconfig(tmp_path / "kubeconfig", servers)


@pytest.fixture
def repositories(tmp_path: Path) -> dict[str, Path]:
    return {"east": tmp_path / "repo-east", "west": tmp_path / "repo-west"}


@pytest.fixture
def settings(nats_server: NatsServer, kubeconfig: Path, repositories: dict[str, Path]) -> Settings:
    return load_settings(
        {},
        nats={"url": nats_server.url},
        kubeconfig=str(kubeconfig),
        repositories={name: str(path) for name, path in repositories.items()},
        repo_password=PASSWORD.decode(),
        http_port=0,
        http_host="127.0.0.1",
        ack_wait=10.0,
        lease=10.0,
        max_attempts=2,
        drain_grace=2.0,
        concurrency=2,
    )


@contextlib.asynccontextmanager
async def ferry(settings: Settings) -> AsyncIterator[BusClient]:
    """Intake, preflight, discovery and snapshot: everything up to the first copy."""
    nc = await nats.connect(settings.nats.url)
    async with (
        IntakeService(settings),
        PreflightService(settings),
        DiscoveryService(settings),
        SnapshotService(settings),
    ):
        yield BusClient(nc, timeout=5)
    await nc.close()
