"""Quiesce, crashes and failures: the application always comes back as it was, and nothing Ferry made
for the step survives it."""

from __future__ import annotations

import asyncio
import signal
import subprocess
from pathlib import Path

import msgspec
import pytest

from sandbox import SandboxClusters, SandboxOptions
from services.snapshot import catalog
from services.snapshot.snapshotting import SnapshotService
from shared.bus.client import BusClient
from shared.contracts import subjects
from shared.contracts.events import Warning
from shared.contracts.requests import SnapshotMethod, VolumePolicy
from shared.contracts.snapshots import SnapshotDetail, SnapshotList
from shared.contracts.states import Phase
from shared.contracts.steps import StepName
from shared.kube import Clusters
from shared.repository import Repository
from shared.runtime import Settings
from shared.runtime.quiescing import SINCE
from shared.store import LocalStore
from tests.snapshot.conftest import PASSWORD, pipeline
from tests.snapshot.helpers import leftovers, snapshot_request, workload_state
from tests.waiting import eventually

ORIGINAL = {"web": 3, "db": 1, "suspend": False, "annotations": {}}


@pytest.fixture
def cluster_options() -> SandboxOptions:
    return SandboxOptions(snapshot_ready_delay=2.0)  # a window in which the step is surely mid-way


async def test_quiesce_then_unquiesce_restores_replicas_exactly_even_after_the_service_is_killed_mid_step(
    settings: Settings,
    client: BusClient,
    clusters: SandboxClusters,
    snapshot_process: subprocess.Popen[bytes],
) -> None:
    """The first attempt copies one volume, then dies while the second one's CSI snapshot is pending;
    the second attempt un-quiesces from the annotations, reuses the finished volume, and cleans up."""
    repo = Repository.open(LocalStore(Path(settings.repository)), PASSWORD.encode())
    async with Clusters(settings.kubeconfig) as kube:
        east = await kube.get("east")
        await east.patch("deployments.apps", "web", {"spec": {"replicas": 3}}, namespace="shop")
        assert await workload_state(east) == ORIGINAL
        async with pipeline(settings, snapshot=False):
            rid = await client.submit(snapshot_request(quiesce=True, parallel=1))
            group = catalog.snapshot_id_for(rid)

            async def one_copied_and_the_next_pending() -> bool:
                records = await asyncio.to_thread(repo.snapshots, group=group)
                snaps = await east.list("volumesnapshots.snapshot.storage.k8s.io", "shop")
                return (
                    len(records) == 1 and len(snaps) == 1 and not snaps[0].get("status", {}).get("readyToUse")
                )

            await eventually(
                one_copied_and_the_next_pending, within=60, what="one volume copied, the next one pending"
            )
            snapshot_process.send_signal(signal.SIGKILL)
            snapshot_process.wait(10)
            killed = await workload_state(east)
            assert (killed["web"], killed["db"], killed["suspend"]) == (0, 0, True)
            since = {name: notes.pop(SINCE) for name, notes in killed["annotations"].items()}
            assert killed["annotations"] == {
                "web": {"ferry.dev/pre-quiesce-replicas": "3"},
                "db": {"ferry.dev/pre-quiesce-replicas": "1"},
                "cron": {"ferry.dev/pre-quiesce-suspend": "false"},
            }
            assert len(set(since.values())) == 1, "one quiesce, one time"
            first_record = (await asyncio.to_thread(repo.snapshots, group=group))[0]
            async with SnapshotService(settings, instance="survivor"):
                state = await client.wait(rid, within=120)
                assert state.phase is Phase.COMPLETED, state.reason
                detail = msgspec.json.decode(
                    (await client.nc.request(subjects.SNAPSHOTS_DESCRIBE, group.encode(), timeout=10)).data,
                    type=SnapshotDetail,
                )  # fmt: skip
        assert state.step_state(StepName.SNAPSHOT).attempts == 2
        assert await workload_state(east) == ORIGINAL
        await eventually(lambda: _none_left(east), within=20, what="temporary objects to be deleted")
    assert detail.summary.consistency == "quiesced" and detail.summary.volumes == 2
    assert first_record[0] in {v.record for v in detail.volume_records}, (
        "the finished volume was copied again"
    )


async def _none_left(east: object) -> bool:
    return await leftovers(east) == []  # type: ignore[arg-type]


async def test_a_failed_step_leaves_no_temporary_object_and_the_application_running(
    settings: Settings, client: BusClient, clusters: SandboxClusters
) -> None:
    broken = msgspec.structs.replace(settings, image="docker.io/library/busybox:1.36")  # not a mover
    async with Clusters(settings.kubeconfig) as kube:
        east = await kube.get("east")
        await east.patch("deployments.apps", "web", {"spec": {"replicas": 3}}, namespace="shop")
        async with pipeline(broken):
            rid = await client.submit(snapshot_request(quiesce=True))
            state = await client.wait(rid, within=90)
            listed = msgspec.json.decode(
                (await client.nc.request(subjects.SNAPSHOTS_LIST, b"{}", timeout=10)).data, type=SnapshotList
            )
        assert state.phase is Phase.FAILED
        assert (
            "finished but stored no snapshot record (is docker.io/library/busybox:1.36 Ferry's image?)"
            in state.reason
        )
        assert await workload_state(east) == ORIGINAL
        await eventually(lambda: _none_left(east), within=20, what="temporary objects to be deleted")
    assert listed.items == [], "an interrupted snapshot must not be listed"


async def test_live_copies_and_excluded_classes_are_warned_about(
    settings: Settings, client: BusClient, clusters: SandboxClusters
) -> None:
    request = msgspec.structs.replace(
        snapshot_request(method="live"),
        volumes=VolumePolicy(method=SnapshotMethod.LIVE, exclude_storage_classes=["fast"]),
    )
    async with pipeline(settings):
        rid = await client.submit(request)
        state = await client.wait(rid, within=90)
        warnings = [
            e.message async for _, e in client.events(rid, follow=False, idle=0.3) if isinstance(e, Warning)
        ]
        detail = msgspec.json.decode(
            (await client.nc.request(subjects.SNAPSHOTS_DESCRIBE, catalog.snapshot_id_for(rid).encode(), timeout=10)).data,
            type=SnapshotDetail,
        )  # fmt: skip
    assert state.phase is Phase.COMPLETED, state.reason
    assert warnings == [
        "volume shop/pgdata-db-0 not copied: storage class fast is excluded",
        "volume shop/web-uploads is copied live (the request asks for volumes.method=live): crash-consistent only",
    ]
    assert detail.summary.consistency == "live"
    assert [(v.claim, v.consistency) for v in detail.volume_records] == [("web-uploads", "live")]
    assert detail.counts["persistentvolumeclaims"] == 2  # the claim's manifest is kept, its data is not


async def test_a_cancelled_snapshot_stops_brings_the_application_back_and_removes_its_temporaries(
    settings: Settings, client: BusClient, clusters: SandboxClusters
) -> None:
    async with Clusters(settings.kubeconfig) as kube:
        east = await kube.get("east")
        await east.patch("deployments.apps", "web", {"spec": {"replicas": 3}}, namespace="shop")
        async with pipeline(settings):
            rid = await client.submit(snapshot_request(quiesce=True))

            async def pending() -> bool:
                return bool(await east.list("volumesnapshots.snapshot.storage.k8s.io", "shop"))

            await eventually(pending, within=60, what="the snapshot step to start copying")
            await client.cancel(rid)
            state = await client.wait(rid, within=60)
            assert state.phase is Phase.CANCELLED

            async def back() -> bool:
                return await workload_state(east) == ORIGINAL

            await eventually(back, within=20, what="the application to be un-quiesced")
            await eventually(lambda: _none_left(east), within=20, what="temporary objects to be deleted")
            listed = msgspec.json.decode(
                (await client.nc.request(subjects.SNAPSHOTS_LIST, b"{}", timeout=10)).data, type=SnapshotList
            )
    assert listed.items == []
