"""Fixtures for discovery tests: a fresh nats-server and fresh sandbox clusters (the shop app in east)
per test, settings pointing a DiscoveryService at both, and a BusClient to submit requests."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from sandbox import SandboxClusters, sandbox_clusters
from sandbox.apps import install_shop
from sandbox.localstack import NatsServer
from shared.runtime import Settings, load_settings


@pytest.fixture
async def clusters(tmp_path: Path) -> AsyncIterator[SandboxClusters]:
    async with sandbox_clusters(tmp_path / "clusters") as running:
        await install_shop(running["east"].url)
        yield running


@pytest.fixture
def settings(nats_server: NatsServer, clusters: SandboxClusters) -> Settings:
    return load_settings(
        {},
        nats={"url": nats_server.url},
        kubeconfig=str(clusters.kubeconfig_path),
        http_port=0,
        http_host="127.0.0.1",
        ack_wait=5.0,
        lease=5.0,
        max_attempts=2,
        drain_grace=2.0,
        concurrency=2,
    )
