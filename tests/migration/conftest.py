"""Fixtures for staged-migration tests: fresh sandbox clusters per test (a test quiesces east's shop
and may take a storage class from west), a fresh nats-server, two local repositories (two regions),
and the services a rollback — or a whole cutover — needs, each the real one.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from pathlib import Path

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
from shared.repository import Repository
from shared.runtime import Settings
from shared.store import LocalStore
from tests.fixtures import region_settings
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
    return region_settings(nats_server, tmp_path, clusters)


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
