"""Losing a NATS node mid-migration loses nothing: the sample app's whole itinerary through every real
service, on a three-node cluster with three copies of every stream, the node leading the steps
stream killed (SIGKILL) while the snapshot step runs.

The services and the client list all three servers (``FERRY_NATS_URL=nats://a,nats://b,nats://c``)
and reconnect to a survivor; JetStream elects a new leader for each stream the dead node led. The
request must still complete, every volume must arrive byte-identical, and every event and document
written before the kill must still be there after it.
"""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import time
from collections.abc import AsyncIterator
from datetime import datetime
from pathlib import Path

import pytest

from sandbox import SandboxClusters
from sandbox.localstack import NatsCluster
from services.discovery.discovering import DiscoveryService
from services.discovery.preflight import PreflightService
from services.intake.intake import IntakeService
from services.restore.service import RestoreOptions, RestoreService
from services.snapshot.snapshotting import SnapshotService
from services.transfer.transferring import TransferOptions, TransferService
from services.verify.service import VerifyService
from shared.bus.client import BusClient
from shared.bus.connecting import connect
from shared.bus.topology import ensure_topology
from shared.contracts import subjects
from shared.contracts.events import Event, PhaseChanged, StepCompleted, StepStarted
from shared.contracts.states import Phase, StepStatus
from shared.contracts.steps import StepName
from shared.runtime import Settings, load_settings
from tests.repository.trees import random_files
from tests.restore.capturing import volume_dir
from tests.restore.conftest import kube_cluster
from tests.restore.test_migration import assert_volumes_arrived, east_shop, migrate_request
from tests.store.conftest import PASSWORD

__all__ = ["east_shop"]  # the sample app in east with data in its volumes: the migration tests' fixture

ITINERARY = ["preflight", "discover", "snapshot", "transfer", "restore", "verify"]


@pytest.fixture
def settings(cluster: NatsCluster, tmp_path: Path, sandboxes: SandboxClusters) -> Settings:
    return load_settings({}, nats={"url": cluster.url, "replicas": 3}, http_port=0, http_host="127.0.0.1",
                         ack_wait=10.0, lease=15.0, max_attempts=5, drain_grace=2.0, concurrency=1,
                         kubeconfig=str(sandboxes.kubeconfig_path), repo_password=PASSWORD.decode(),
                         repositories={"east": str(tmp_path / "east"), "west": str(tmp_path / "west")})  # fmt: skip


@pytest.fixture
async def bigger_shop(east_shop: tuple[str, str], sandboxes: SandboxClusters) -> AsyncIterator[None]:
    """East's shop with 32 MB more in its uploads volume, so that its snapshot lasts long enough to
    be caught in the middle (the movers copy it in a few seconds); removed afterwards."""
    east = kube_cluster(sandboxes, "east")
    extra = await volume_dir(east, "shop", "web-uploads") / "ha-extra"
    try:
        random_files(extra, 8, 4 << 20, seed=7)
        yield
    finally:
        shutil.rmtree(extra, ignore_errors=True)
        await east.close()


@contextlib.asynccontextmanager
async def ferry(settings: Settings) -> AsyncIterator[BusClient]:
    """Every step service of the migrate itinerary, and a client, all on the cluster's server list."""
    nc = await connect(settings.nats)
    # What the first service to start does with the setting (FERRY_BUS_REPLICAS=3).
    await ensure_topology(nc.jetstream(), replicas=settings.nats.replicas)
    options = RestoreOptions(timeout=60, mover_timeout=120)
    try:
        async with (
            IntakeService(settings),
            PreflightService(settings),
            DiscoveryService(settings),
            SnapshotService(settings),
            TransferService(settings, options=TransferOptions(threads=2)),
            RestoreService(settings, options=options),
            VerifyService(settings),
        ):
            yield BusClient(nc, timeout=5)
    finally:
        await nc.close()


async def history(client: BusClient, request_id: str) -> list[tuple[int, Event]]:
    return [item async for item in client.events(request_id, follow=False)]


async def follow(client: BusClient, request_id: str, into: list[tuple[int, Event]]) -> None:
    async for item in client.events(request_id):
        into.append(item)


async def step_reached(
    client: BusClient, request_id: str, step: StepName, status: StepStatus, within: float
) -> None:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        state = await client.get(request_id)
        assert not state.phase.final, (
            f"{request_id} ended before its {step} step was {status}: {state.reason}"
        )
        if any(s.step is step and s.status is status for s in state.steps):
            return
        await asyncio.sleep(0.02)
    raise TimeoutError(f"the {step} step of {request_id} was not {status} within {within}s")


async def new_leader(cluster: NatsCluster, stream: str, within: float) -> str:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if leader := await asyncio.to_thread(cluster.leader_of, stream):
            return leader
        await asyncio.sleep(0.05)
    raise TimeoutError(f"no new leader for {stream} within {within}s")


async def test_killing_the_steps_leader_mid_snapshot_loses_nothing(
    settings: Settings,
    cluster: NatsCluster,
    sandboxes: SandboxClusters,
    bigger_shop: None,
    record_property: pytest.RecordProperty,
) -> None:
    async with ferry(settings) as client:
        for name in (subjects.STEPS_STREAM, subjects.EVENTS_STREAM, f"KV_{subjects.REQUESTS_BUCKET}"):
            assert (await client.nc.jetstream().stream_info(name)).config.num_replicas == 3, name
        victim = await asyncio.to_thread(cluster.leader_of, subjects.STEPS_STREAM)
        assert victim is not None
        request_id = await client.submit(migrate_request("shop-ha"))
        seen: list[tuple[int, Event]] = []  # events stored before the kill, as they are delivered
        follower = asyncio.create_task(follow(client, request_id, seen), name="ha:events-before-kill")
        try:
            await step_reached(client, request_id, StepName.DISCOVER, StepStatus.SUCCEEDED, within=60)
            inventory = await client.document(request_id, "inventory")
            await step_reached(client, request_id, StepName.SNAPSHOT, StepStatus.RUNNING, within=60)
        finally:
            follower.cancel()
            await asyncio.gather(follower, return_exceptions=True)
        before = list(seen)

        killed_at, killed_wall = time.monotonic(), time.time()
        await asyncio.to_thread(cluster.kill, victim)
        leader = await new_leader(cluster, subjects.STEPS_STREAM, within=30)
        failover = time.monotonic() - killed_at
        state = await client.wait(request_id, within=180)
        finished = time.monotonic() - killed_at
        after = await history(client, request_id)
        inventory_after = await client.document(request_id, "inventory")

    snapshot = state.step_state(StepName.SNAPSHOT)
    snapshot_done = _epoch(snapshot.finished_at) - killed_wall if snapshot.finished_at else float("nan")
    record_property("failover_seconds", round(failover, 2))
    record_property("completed_seconds_after_kill", round(finished, 1))
    print(f"\nkilled {victim} (leader of {subjects.STEPS_STREAM}); {leader} leads it {failover:.2f}s later; "
          f"the snapshot step finished {snapshot_done:.1f}s after the kill (attempts: {snapshot.attempts}), "
          f"the request {finished:.1f}s after it")  # fmt: skip

    # The request completed, every step once, the snapshot step across the kill.
    assert leader != victim
    assert state.phase is Phase.COMPLETED, state.reason
    assert [s.step.value for s in state.steps] == ITINERARY
    assert all(s.status is StepStatus.SUCCEEDED and s.result is not None for s in state.steps)
    assert snapshot_done > 0, "the kill came after the snapshot"
    verified = state.steps[-1].result
    assert verified is not None and verified.counts["volumes"] == 2 and verified.counts["volumes_failed"] == 0

    # Every volume byte-identical in west.
    await assert_volumes_arrived(sandboxes, "shop-ha")

    # Nothing lost: every event from before the kill is still there, with its sequence, and the
    # trail is whole — each step started and completed, the request's final phase recorded.
    assert before and after[: len(before)] == before
    sequences = [seq for seq, _ in after]
    assert sequences == sorted(set(sequences))
    completed = [e.step.value for _, e in after if isinstance(e, StepCompleted) and e.step]
    started = {e.step.value for _, e in after if isinstance(e, StepStarted) and e.step}
    assert sorted(set(completed)) == sorted(ITINERARY) and started == set(ITINERARY)
    assert any(isinstance(e, PhaseChanged) and e.phase is Phase.COMPLETED for _, e in after)
    assert inventory_after == inventory and inventory  # the object store kept the discover document


def _epoch(iso: str) -> float:
    return datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp()
