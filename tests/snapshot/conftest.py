"""Fixtures for snapshot tests: per test, a fresh nats-server, fresh sandbox clusters with the shop app
installed and its volumes filled, a local-directory repository, and settings for the services.

The sandbox kubelet runs the mover Jobs as local processes (``ferry-mover`` from this venv), with
the claims' mount paths mapped to the PV directories, so the bytes really go through the mover.
"""

from __future__ import annotations

import contextlib
import secrets
from collections.abc import AsyncIterator
from pathlib import Path

import nats
import pytest

from sandbox import SandboxClusters, SandboxOptions, sandbox_clusters
from sandbox.apps import fill, install_shop
from sandbox.localstack import LocalStack, NatsServer
from services.discovery.discovering import DiscoveryService
from services.intake.intake import IntakeService
from services.snapshot.snapshotting import SnapshotService
from shared.bus.client import BusClient
from shared.repository import Repository
from shared.runtime import Settings, load_settings
from shared.store import LocalStore, S3Store
from tests.store.conftest import s3_settings

PASSWORD = "correct horse battery staple"
FILL = "3MB"


@pytest.fixture
async def clusters(tmp_path: Path, cluster_options: SandboxOptions) -> AsyncIterator[SandboxClusters]:
    async with sandbox_clusters(tmp_path / "clusters", options=cluster_options) as running:
        await install_shop(running["east"].url)
        await fill(running["east"].url, "shop", FILL, seed=7)
        yield running


@pytest.fixture
def repository(tmp_path: Path) -> Path:
    path = tmp_path / "repository"
    Repository.init(LocalStore(path), PASSWORD.encode(), scrypt_n=2**10, pack_size=1024 * 1024).close()
    return path


@pytest.fixture
def settings(nats_server: NatsServer, clusters: SandboxClusters, repository: Path) -> Settings:
    return load_settings(
        {},
        nats={"url": nats_server.url},
        kubeconfig=str(clusters.kubeconfig_path),
        repository=str(repository),
        repo_password=PASSWORD,
        http_port=0,
        http_host="127.0.0.1",
        ack_wait=3.0,
        lease=3.0,
        max_attempts=3,
        drain_grace=2.0,
        concurrency=2,
    )


@pytest.fixture
async def client(nats_server: NatsServer) -> AsyncIterator[BusClient]:
    nc = await nats.connect(nats_server.url)
    yield BusClient(nc, timeout=10)
    await nc.close()


@contextlib.asynccontextmanager
async def pipeline(settings: Settings, *, snapshot: bool = True) -> AsyncIterator[None]:
    """Intake, discovery and (unless told otherwise) snapshot services, in this process."""
    async with contextlib.AsyncExitStack() as stack:
        await stack.enter_async_context(IntakeService(settings))
        await stack.enter_async_context(DiscoveryService(settings))
        if snapshot:
            await stack.enter_async_context(SnapshotService(settings))
        yield


@pytest.fixture(scope="session")
def snapshot_bucket(stack: LocalStack) -> str:
    """One bucket on the session's SeaweedFS for the snapshot tests, a prefix per test."""
    bucket = f"ferry-snapshots-{secrets.token_hex(3)}"
    store = S3Store(s3_settings(stack, bucket))
    store.create_bucket()
    store.close()
    return bucket


@pytest.fixture
def s3_repository(stack: LocalStack, snapshot_bucket: str, unique: str) -> str:
    store = S3Store(s3_settings(stack, snapshot_bucket, f"snapshots-{unique}"))
    Repository.init(store, PASSWORD.encode(), scrypt_n=2**10, pack_size=1024 * 1024).close()
    return f"s3://{snapshot_bucket}/snapshots-{unique}"
