"""Fixtures for hook tests: fresh sandbox clusters per test with the ledger app (a SQLite writer with
Velero hook annotations), a fresh nats-server, two local repositories (two regions), settings, and
every service a migrate needs — each the real one.

The sandbox runs no ordinary containers: its ``pods/exec`` runs a hook as a local process with the
pod's ``/data`` mapped to the claim's PV directory, and the ledger's writer is a process the test
starts against that directory (``writer``).
"""

from __future__ import annotations

import asyncio
import contextlib
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from sandbox import SandboxClusters, SandboxOptions, sandbox_clusters
from sandbox.localstack import NatsServer
from sandbox.seeding import seed
from services.discovery.discovering import DiscoveryService
from services.intake.intake import IntakeService
from services.restore.service import RestoreOptions, RestoreService
from services.snapshot.snapshotting import SnapshotService
from services.transfer.transferring import TransferOptions, TransferService
from shared.kube import Cluster
from shared.repository import Repository
from shared.runtime import Settings
from shared.store import LocalStore
from tests.fixtures import region_settings
from tests.store.conftest import FAST_SCRYPT, PASSWORD
from tests.waiting import eventually

LEDGER = Path(__file__).parents[2] / "sandbox" / "apps" / "sqlite-writer"


@pytest.fixture
async def clusters(tmp_path: Path, cluster_options: SandboxOptions) -> AsyncIterator[SandboxClusters]:
    async with sandbox_clusters(tmp_path / "clusters", options=cluster_options) as running:
        await seed(running["east"].url, [LEDGER])
        yield running


@pytest.fixture
def settings(nats_server: NatsServer, tmp_path: Path, clusters: SandboxClusters) -> Settings:
    for region in ("east", "west"):
        Repository.init(LocalStore(tmp_path / region), PASSWORD, scrypt_n=FAST_SCRYPT).close()
    changes = {"ack_wait": 3.0, "lease": 3.0, "max_attempts": 3, "repository": str(tmp_path / "east")}
    return region_settings(nats_server, tmp_path, clusters, **changes)


@contextlib.asynccontextmanager
async def services(settings: Settings, *, snapshot: bool = True) -> AsyncIterator[None]:
    """Intake, discovery, snapshot (unless told otherwise), transfer and restore, in this process."""
    async with contextlib.AsyncExitStack() as stack:
        await stack.enter_async_context(IntakeService(settings))
        await stack.enter_async_context(DiscoveryService(settings))
        if snapshot:
            await stack.enter_async_context(SnapshotService(settings))
        await stack.enter_async_context(TransferService(settings, options=TransferOptions(threads=2)))
        await stack.enter_async_context(
            RestoreService(settings, options=RestoreOptions(timeout=60, mover_timeout=120))
        )
        yield


async def ledger_volume(clusters: SandboxClusters, kube: dict[str, Cluster], name: str = "east") -> Path:
    """The PV directory of the ledger's claim in cluster ``name``, once it is bound."""

    async def bound() -> bool:
        claim = await kube[name].find("persistentvolumeclaims", "ledger-data", "ledger")
        return bool(claim and claim["spec"].get("volumeName"))

    await eventually(bound, within=30, what="the ledger's claim is bound")
    claim = await kube[name].get("persistentvolumeclaims", "ledger-data", "ledger")
    return clusters[name].volume_path(claim["spec"]["volumeName"])


async def running_pod(kube: Cluster, namespace: str, selector: str) -> dict[str, object]:
    """The one Running pod of a workload (after a template change, the new one)."""
    found: list[dict[str, object]] = []

    async def one() -> bool:
        pods = await kube.list("pods", namespace, label_selector=selector)
        found[:] = [p for p in pods if (p.get("status") or {}).get("phase") == "Running"]
        return len(found) == 1 and len(pods) == 1

    await eventually(one, within=30, what=f"one running pod of {selector} in {namespace}")
    return found[0]


@contextlib.asynccontextmanager
async def writer(data: Path, log: Path) -> AsyncIterator[asyncio.subprocess.Process]:
    """The ledger's writer committing into ``data``, stopped (by its stop file) at the end."""
    script = LEDGER / "writer.py"
    proc = await asyncio.create_subprocess_exec(sys.executable, str(script), str(data), str(log))
    try:
        yield proc
    finally:
        (data / ".stop").touch()
        try:
            await asyncio.wait_for(proc.wait(), 10)
        except TimeoutError:
            proc.kill()
            await proc.wait()
