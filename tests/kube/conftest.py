"""Fixtures for shared.kube: two sandbox clusters for the module, a ``Clusters`` per test.

Each test works in its own namespace, so tests share the servers without sharing state.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from sandbox import SandboxClusters, SandboxOptions, sandbox_clusters
from shared.kube import Cluster, Clusters


@pytest.fixture(scope="module")
async def clusters(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[SandboxClusters]:
    options = SandboxOptions(bookmark_interval=0.3)
    async with sandbox_clusters(tmp_path_factory.mktemp("kube"), options=options) as running:
        yield running


@pytest.fixture
async def kube(clusters: SandboxClusters) -> AsyncIterator[Clusters]:
    async with Clusters(str(clusters.kubeconfig_path)) as opened:
        yield opened


@pytest.fixture
async def east(kube: Clusters) -> Cluster:
    return await kube.get("east")


@pytest.fixture
async def ns(east: Cluster, unique: str) -> str:
    name = f"k-{unique}"
    await east.create({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}})
    return name
