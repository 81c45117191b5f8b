"""Fixtures for the high-availability tests: a three-node NATS cluster per test (stream names are
global, so each test gets its own cluster; it forms in about a second), and the session's sandbox
clusters from the restore tests."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from sandbox.localstack import NatsCluster, nats_cluster
from tests.restore.conftest import sandboxes

__all__ = ["cluster", "sandboxes"]


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[NatsCluster]:
    with nats_cluster(tmp_path / "nats-cluster") as running:
        yield running
