"""Pytest fixtures for any test folder that needs sandbox clusters.

Import them into a ``conftest.py`` (fixtures are found by name in the conftest's namespace)::

    from sandbox.testing import sandbox_pair_fixture  # noqa: F401  (provides ``sandbox_pair``)

    async def test_something(sandbox_pair):
        sandbox_pair.kubeconfig_path            # contexts "east" and "west"
        sandbox_pair["west"].url

``sandbox_pair`` is session-scoped: two clusters for the whole run (use a unique namespace per test).
The clusters run on their own threads, so they never count as tasks leaked by a test.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
import pytest_asyncio

from sandbox.cluster import SandboxClusters, sandbox_clusters
from sandbox.server.serving import SandboxOptions


@pytest_asyncio.fixture(scope="session", loop_scope="session", name="sandbox_pair")
async def sandbox_pair_fixture(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[SandboxClusters]:
    """Clusters "east" and "west" sharing one kubeconfig, started once per test session."""
    options = SandboxOptions(bookmark_interval=0.3)
    async with sandbox_clusters(tmp_path_factory.mktemp("sandbox"), options=options) as running:
        yield running
