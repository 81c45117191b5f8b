"""Fixtures for restore tests: two sandbox clusters for the session, and Ferry's client to one of them.

The unit tests need none of this. Cluster tests get ``west`` — the restore engine's ``KubeCluster``
over ``shared.kube`` — and a fresh namespace name each.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from kubernetes_asyncio import client

from sandbox import SandboxClusters, sandbox_clusters
from shared.kube.cluster import Cluster
from shared.kube.requesting import Transport
from shared.runtime.clusters import KubeCluster


@pytest.fixture(scope="session")
async def sandboxes(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[SandboxClusters]:
    async with sandbox_clusters(tmp_path_factory.mktemp("restore-clusters")) as running:
        yield running


def kube_cluster(clusters: SandboxClusters, name: str) -> Cluster:
    api = client.ApiClient(client.Configuration(host=clusters[name].url))
    return Cluster(name, Transport(api, name))


@pytest.fixture
async def west(sandboxes: SandboxClusters) -> AsyncIterator[KubeCluster]:
    cluster = KubeCluster(kube_cluster(sandboxes, "west"))
    yield cluster
    await cluster.close()


@pytest.fixture
def namespace(unique: str) -> str:
    return f"r-{unique}"


@pytest.fixture
def volumes_root(tmp_path: Path) -> Path:
    return tmp_path / "volumes"
