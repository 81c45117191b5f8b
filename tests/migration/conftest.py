"""Fixtures for staged-migration tests: fresh sandbox clusters per test (a test quiesces east's shop
and may take a storage class from west), a fresh nats-server, two local repositories (two regions),
and the services a rollback — or a whole cutover — needs, each the real one.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from pathlib import Path

import nats
import pytest

from sandbox import SandboxClusters, sandbox_clusters
from sandbox.apps import fill, install_shop
from sandbox.localstack import NatsServer
from services.discovery.discovering import DiscoveryService
from services.discovery.preflight import PreflightService
from services.intake.intake import IntakeService
from services.restore.rollingback import RollbackService
from services.restore.service import RestoreOptions, RestoreService
from services.snapshot.snapshotting import SnapshotService
from services.transfer.transferring import TransferOptions, TransferService
from services.verify.service import VerifyService
from shared.bus.client import BusClient
from shared.kube import Cluster, Clusters
from shared.repository import Repository
from shared.runtime import Settings, load_settings
from shared.store import LocalStore
from tests.store.conftest import FAST_SCRYPT, PASSWORD


@pytest.fixture
async def clusters(tmp_path: Path) -> AsyncIterator[SandboxClusters]:
    async with sandbox_clusters(tmp_path / "clusters") as running:
        await install_shop(running["east"].url)
        await fill(running["east"].url, "shop", "2MB", seed=5)
        yield running


@pytest.fixture
def settings(nats_server: NatsServer, tmp_path: Path, clusters: SandboxClusters) -> Settings:
    Repository.init(LocalStore(tmp_path / "east"), PASSWORD, scrypt_n=FAST_SCRYPT).close()
    return load_settings(
        {},
        nats={"url": nats_server.url},
        http_port=0,
        http_host="127.0.0.1",
        ack_wait=30.0,
        lease=30.0,
        max_attempts=2,
        drain_grace=2.0,
        concurrency=1,
        kubeconfig=str(clusters.kubeconfig_path),
        repo_password=PASSWORD.decode(),
        repositories={"east": str(tmp_path / "east"), "west": str(tmp_path / "west")},
    )


@pytest.fixture
async def client(nats_server: NatsServer) -> AsyncIterator[BusClient]:
    nc = await nats.connect(nats_server.url)
    yield BusClient(nc, timeout=5)
    await nc.close()


@pytest.fixture
async def kube(settings: Settings) -> AsyncIterator[dict[str, Cluster]]:
    """Ferry's own clients of both clusters (what the tests set up and look at)."""
    async with Clusters(settings.kubeconfig) as opened:
        yield {"east": await opened.get("east"), "west": await opened.get("west")}


@contextlib.asynccontextmanager
async def every_service(settings: Settings) -> AsyncIterator[None]:
    """Every step of a migrate and the rollback, each the real service, in this process."""
    async with (
        IntakeService(settings),
        PreflightService(settings),
        DiscoveryService(settings),
        SnapshotService(settings),
        TransferService(settings, options=TransferOptions(threads=2)),
        RestoreService(settings, options=RestoreOptions(timeout=60, mover_timeout=120)),
        VerifyService(settings),
        RollbackService(settings),
    ):
        yield
