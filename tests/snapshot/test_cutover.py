"""The snapshot step of a cutover leaves the source down — at its end, and at the start of a retry —
and keeps the first quiesce's time; a stage never touches the source.

Replicas are followed with a watch on the source while the step runs, so a workload brought up for a
moment and down again (what an un-quiesce at the start of a retry would do) is seen, not missed
between two polls.
"""

from __future__ import annotations

import asyncio
import signal
import subprocess
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import msgspec
import pytest

from sandbox import SandboxClusters, SandboxOptions
from services.snapshot import catalog
from services.snapshot.snapshotting import SnapshotService
from shared.bus.client import BusClient
from shared.contracts import subjects
from shared.contracts.events import Quiesced
from shared.contracts.migrations import QUIESCED_AT
from shared.contracts.snapshots import SnapshotDetail
from shared.contracts.states import Phase, RequestState
from shared.kube import Cluster, Clusters
from shared.repository import Repository
from shared.runtime import Settings
from shared.runtime.quiescing import REPLICAS, SINCE, SUSPEND
from shared.store import LocalStore
from tests.snapshot.conftest import PASSWORD, pipeline
from tests.snapshot.helpers import migrate_step_request, workload_state
from tests.waiting import eventually

WORKLOADS = ["cronjobs.batch/shop/nightly-report", "deployments.apps/shop/web", "statefulsets.apps/shop/db"]


@pytest.fixture
def cluster_options() -> SandboxOptions:
    return SandboxOptions(snapshot_ready_delay=2.0)  # a window in which the step is surely mid-way


@asynccontextmanager
async def replicas_seen(east: Cluster) -> AsyncIterator[list[tuple[str, int]]]:
    """Every (workload, spec.replicas) the source's Deployments and StatefulSets take meanwhile."""
    seen: list[tuple[str, int]] = []

    async def follow(resource: str) -> None:
        async for event in east.watch(await east.resource(resource), "shop"):
            seen.append((event.name, int(event.object["spec"].get("replicas", 1))))

    tasks = [
        asyncio.create_task(follow(r), name=f"watch:{r}") for r in ("deployments.apps", "statefulsets.apps")
    ]
    try:
        yield seen
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


async def quiesced_events(client: BusClient, request_id: str) -> list[Quiesced]:
    return [e async for _, e in client.events(request_id, follow=False, idle=0.3) if isinstance(e, Quiesced)]


async def consistency(client: BusClient, request_id: str) -> str:
    reply = await client.nc.request(
        subjects.SNAPSHOTS_DESCRIBE, catalog.snapshot_id_for(request_id).encode(), timeout=10
    )
    return msgspec.json.decode(reply.data, type=SnapshotDetail).summary.consistency


def quiesced_at(state: RequestState) -> float:
    return float(state.outputs[QUIESCED_AT])


async def test_a_cutover_leaves_the_source_down_even_when_a_retry_finishes_the_step(
    settings: Settings,
    client: BusClient,
    clusters: SandboxClusters,
    snapshot_process: subprocess.Popen[bytes],
) -> None:
    """The first attempt dies mid-copy with the source quiesced; the attempt that takes over quiesces
    again instead of bringing the source back, and reports the first attempt's quiesce time."""
    repo = Repository.open(LocalStore(Path(settings.repository)), PASSWORD.encode())
    async with Clusters(settings.kubeconfig) as kube:
        east = await kube.get("east")
        await east.patch("deployments.apps", "web", {"spec": {"replicas": 3}}, namespace="shop")
        async with pipeline(settings, snapshot=False):
            rid = await client.submit(migrate_step_request(cutover=True, parallel=1))

            async def one_copied() -> bool:
                return len(await asyncio.to_thread(repo.snapshots, group=catalog.snapshot_id_for(rid))) == 1

            await eventually(one_copied, within=60, what="one volume copied, the next one pending")
            snapshot_process.send_signal(signal.SIGKILL)
            snapshot_process.wait(10)
            first = (await east.get("deployments.apps", "web", "shop"))["metadata"]["annotations"][SINCE]
            async with replicas_seen(east) as seen, SnapshotService(settings, instance="survivor"):
                state = await client.wait(rid, within=120)
                said = await consistency(client, rid)
            events = await quiesced_events(client, rid)
        assert state.phase is Phase.COMPLETED, state.reason
        assert seen and all(replicas == 0 for _, replicas in seen), seen
        after = await workload_state(east)
    assert (after["web"], after["db"], after["suspend"]) == (0, 0, True)
    assert after["annotations"] == {
        "web": {REPLICAS: "3", SINCE: first},
        "db": {REPLICAS: "1", SINCE: first},
        "cron": {SUSPEND: "false", SINCE: first},
    }
    assert quiesced_at(state) == float(first)
    assert [(e.since, e.workloads) for e in events] == [(float(first), WORKLOADS)] * 2  # once per attempt
    assert said == "quiesced"


async def test_a_partly_quiesced_source_ends_fully_quiesced_keeping_the_first_values_and_time(
    settings: Settings, client: BusClient, clusters: SandboxClusters
) -> None:
    """A crashed attempt left web quiesced (3 replicas saved) and db running: the cutover quiesces
    db too and never brings web up; web keeps its saved 3 and its earlier quiesce time."""
    async with Clusters(settings.kubeconfig) as kube:
        east = await kube.get("east")
        earlier = "1700000000.000"
        crashed = {"metadata": {"annotations": {REPLICAS: "3", SINCE: earlier}}, "spec": {"replicas": 0}}
        await east.patch("deployments.apps", "web", crashed, namespace="shop")
        async with replicas_seen(east) as seen, pipeline(settings):
            rid = await client.submit(migrate_step_request(cutover=True))
            state = await client.wait(rid, within=90)
            events = await quiesced_events(client, rid)
        assert state.phase is Phase.COMPLETED, state.reason
        after = await workload_state(east)
    assert all(replicas == 0 for name, replicas in seen if name == "web"), seen
    assert (after["web"], after["db"], after["suspend"]) == (0, 0, True)
    db_since = after["annotations"]["db"][SINCE]
    assert after["annotations"] == {
        "web": {REPLICAS: "3", SINCE: earlier},
        "db": {REPLICAS: "1", SINCE: db_since},
        "cron": {SUSPEND: "false", SINCE: db_since},
    }
    assert float(db_since) > float(earlier)
    assert quiesced_at(state) == float(earlier)  # the downtime began with the crashed attempt
    assert [(e.since, e.workloads) for e in events] == [(float(earlier), WORKLOADS)]


async def test_a_stage_never_quiesces_the_source(
    settings: Settings, client: BusClient, clusters: SandboxClusters
) -> None:
    async with Clusters(settings.kubeconfig) as kube:
        east = await kube.get("east")
        before = await workload_state(east)
        async with replicas_seen(east) as seen, pipeline(settings):
            rid = await client.submit(migrate_step_request(stage=True))
            state = await client.wait(rid, within=90)
            events = await quiesced_events(client, rid)
            said = await consistency(client, rid)
        assert state.phase is Phase.COMPLETED, state.reason
        assert await workload_state(east) == before
    assert all(replicas > 0 for _, replicas in seen), seen
    assert QUIESCED_AT not in state.outputs and events == []
    assert said != "quiesced"
