"""Fixtures and helpers several test packages share; a conftest imports the ones it uses.

``region_settings``: a Ferry on the sandbox clusters with two local repositories (east and west);
``kube``: Ferry's own clients of both clusters; ``cluster_options``: the sandbox's defaults (a test
module overrides it); ``snapshot_process``: the snapshot service as a process of its own, for tests
that kill it mid-step.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest

from sandbox import SandboxClusters, SandboxOptions
from sandbox.localstack import NatsServer
from shared.kube import Cluster, Clusters
from shared.runtime import Settings, load_settings
from tests.store.conftest import PASSWORD


def region_settings(
    nats_server: NatsServer, tmp_path: Path, clusters: SandboxClusters, **changes: Any
) -> Settings:
    """Settings for the services in this process: the sandbox clusters' kubeconfig, the repositories
    ``tmp_path/east`` and ``tmp_path/west`` (not initialized here), generous leases; ``changes`` win."""
    values: dict[str, Any] = {
        "nats": {"url": nats_server.url},
        "http_port": 0,
        "http_host": "127.0.0.1",
        "ack_wait": 30.0,
        "lease": 30.0,
        "max_attempts": 2,
        "drain_grace": 2.0,
        "concurrency": 1,
        "kubeconfig": str(clusters.kubeconfig_path),
        "repo_password": PASSWORD.decode(),
        "repositories": {"east": str(tmp_path / "east"), "west": str(tmp_path / "west")},
    }
    return load_settings({}, **(values | changes))


@pytest.fixture
def cluster_options() -> SandboxOptions:
    return SandboxOptions()


@pytest.fixture
async def kube(settings: Settings) -> AsyncIterator[dict[str, Cluster]]:
    """Ferry's own clients of both clusters (what the tests set up and look at)."""
    async with Clusters(settings.kubeconfig) as opened:
        yield {"east": await opened.get("east"), "west": await opened.get("west")}


@pytest.fixture
def snapshot_process(settings: Settings, tmp_path: Path) -> Iterator[subprocess.Popen[bytes]]:
    """``python -m services.snapshot`` with the test's settings, its output in ``snapshot.log``."""
    env = {
        **os.environ,
        "FERRY_NATS_URL": settings.nats.url,
        "FERRY_KUBECONFIG": settings.kubeconfig,
        "FERRY_REPOSITORY": settings.repository,
        "FERRY_REPO_PASSWORD": settings.repo_password,
        "FERRY_HTTP_PORT": "0",
        "FERRY_HTTP_HOST": "127.0.0.1",
        "FERRY_ACK_WAIT": str(settings.ack_wait),
        "FERRY_LEASE": str(settings.lease),
        "FERRY_LOG_FORMAT": "text",
    }
    if settings.repositories:
        env["FERRY_REPOSITORIES"] = json.dumps(settings.repositories)
    log = (tmp_path / "snapshot.log").open("wb")
    proc = subprocess.Popen(
        [sys.executable, "-m", "services.snapshot"], env=env, stdout=log, stderr=subprocess.STDOUT
    )
    yield proc
    if proc.poll() is None:
        proc.kill()
    proc.wait(10)
    log.close()
