"""The restore and verify steps on a real nats-server, a real repository and real ferry-mover processes;
the cluster is the in-memory one (tests/restore/fakes.py) — the sandbox versions are in test_cluster.py."""

from __future__ import annotations

import contextlib
import json
import secrets
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import nats
import pytest

from sandbox.localstack import NatsServer
from services.intake.intake import IntakeService
from services.restore.service import RestoreOptions, RestoreService
from services.verify.service import VerifyService
from shared.bus.client import BusClient
from shared.contracts.events import Report
from shared.contracts.reports import restore_report_decoder, verification_decoder
from shared.contracts.requests import ConflictPolicy, MobilityRequest, RequestKind, Source, Target
from shared.contracts.states import Phase
from shared.repository import Repository, backup, put_blob
from shared.runtime import Settings, load_settings
from shared.runtime.clusters import Cluster
from shared.store import LocalStore
from tests.repository.trees import file_hashes, random_files
from tests.restore.fakes import FakeCluster
from tests.restore.test_engine import APP
from tests.store.conftest import FAST_SCRYPT, PASSWORD


@pytest.fixture
def settings(nats_server: NatsServer, tmp_path: Path) -> Settings:
    return load_settings({}, nats={"url": nats_server.url}, http_port=0, http_host="127.0.0.1", ack_wait=10.0,
                         lease=10.0, max_attempts=2, drain_grace=2.0, concurrency=1,
                         repositories={"west": str(tmp_path / "west")}, repo_password=PASSWORD.decode())  # fmt: skip


@pytest.fixture
def snapshot(tmp_path: Path) -> str:
    repo = Repository.init(LocalStore(tmp_path / "west"), PASSWORD, scrypt_n=FAST_SCRYPT, pack_size=1 << 20)
    group = secrets.token_hex(8)
    random_files(tmp_path / "src", 5, 30_000)
    backup(repo, tmp_path / "src", name="shop/data", group=group)
    put_blob(repo, json.dumps({"kind": "List", "items": APP}).encode(), name="manifests", group=group)
    return group


@contextlib.asynccontextmanager
async def steps(settings: Settings, cluster: FakeCluster) -> AsyncIterator[BusClient]:
    async def clusters(_settings: Settings, _name: str) -> Cluster:
        return cluster

    options = RestoreOptions(timeout=5, mover_timeout=60)
    nc = await nats.connect(settings.nats.url)
    async with (
        IntakeService(settings),
        RestoreService(settings, clusters=clusters, options=options),
        VerifyService(settings, clusters=clusters),
    ):
        yield BusClient(nc, timeout=5)
    await nc.close()


def restore_request(group: str, **changes: Any) -> MobilityRequest:
    target = Target(cluster="west", repository="west", namespace_map={"shop": "shop-west"},
                    storage_class_map={"gp2": "standard"})  # fmt: skip
    return MobilityRequest(kind=RequestKind.RESTORE, source=Source(cluster="east", repository="west", snapshot=group),
                           target=target, **{"itinerary": ["restore", "verify"], **changes})  # fmt: skip


async def reports(client: BusClient, request_id: str) -> dict[str, Report]:
    return {
        e.title: e
        async for _, e in client.events(request_id, follow=False, idle=0.3)
        if isinstance(e, Report)
    }


async def test_restore_then_verify_lands_objects_and_identical_volumes(
    settings: Settings, snapshot: str, tmp_path: Path
) -> None:
    cluster = FakeCluster(volumes=tmp_path / "volumes")
    async with steps(settings, cluster) as client:
        request_id = await client.submit(restore_request(snapshot))
        state = await client.wait(request_id, within=90)
        seen = await reports(client, request_id)
    assert state.phase is Phase.COMPLETED, state.reason
    assert file_hashes(tmp_path / "volumes" / "shop-west" / "data") == file_hashes(tmp_path / "src")
    restored, verified = (s.result for s in state.steps)
    assert restored is not None and verified is not None
    assert restored.counts["created"] == 5 and restored.counts["volumes"] == 1  # ns, cm, pvc, deploy, svc
    assert verified.counts["files_verified"] == 5 and verified.counts["objects_failed"] == 0
    assert verified.counts["objects_accounted"] == verified.counts["objects_expected"] == 7
    assert seen["verification"].body["volumes"][0]["ok"] is True
    assert not [k for k in cluster.objects if k.startswith(("jobs.batch/", "secrets/"))], "movers left behind"


async def test_a_refused_object_makes_the_request_partially_failed_with_its_reason(
    settings: Settings, snapshot: str, tmp_path: Path
) -> None:
    cluster = FakeCluster(
        volumes=tmp_path / "volumes", refuse={"services/shop-west/web": "quota exceeded: services=0"}
    )
    async with steps(settings, cluster) as client:
        request_id = await client.submit(restore_request(snapshot))
        state = await client.wait(request_id, within=90)
        stored = await client.nc.jetstream().object_store("ferry-inventories")
        report = restore_report_decoder.decode(
            (await stored.get(f"{request_id}/restore-report.json")).data or b""
        )
        verification = verification_decoder.decode(
            (await stored.get(f"{request_id}/verification.json")).data or b""
        )
    assert state.phase is Phase.PARTIALLY_FAILED
    assert "services/shop-west/web: quota exceeded" in state.reason
    assert [r.reason for r in report.objects if r.failed] == ["quota exceeded: services=0"]
    assert [(p.target, p.reason) for p in verification.objects] == [
        ("services/shop-west/web", "missing in the target (quota exceeded: services=0)")
    ]


async def test_dry_run_writes_nothing_and_stores_the_rendered_objects(
    settings: Settings, snapshot: str, tmp_path: Path
) -> None:
    cluster = FakeCluster(volumes=tmp_path / "volumes")
    cluster.put({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "conf", "namespace": "shop-west"},
                 "data": {"a": "old"}})  # fmt: skip
    async with steps(settings, cluster) as client:
        request_id = await client.submit(
            restore_request(snapshot, dry_run=True, conflict_policy=ConflictPolicy.UPDATE)
        )
        state = await client.wait(request_id, within=60)
        seen = await reports(client, request_id)
        stored = await client.nc.jetstream().object_store("ferry-inventories")
        docs = json.loads((await stored.get(f"{request_id}/rendered.json")).data or b"[]")
    assert state.phase is Phase.COMPLETED, state.reason
    assert cluster.writes == [] and not (tmp_path / "volumes").exists()
    assert [d["kind"] for d in docs] == [
        "Namespace",
        "PersistentVolumeClaim",
        "ConfigMap",
        "Deployment",
        "Service",
    ]
    objects = {o["target"]: o for o in seen["dry run"].body["objects"]}
    assert objects["configmaps/shop-west/conf"]["diff"] == [
        "data.a: 'old' in the target, '1' in the snapshot"
    ]
    assert state.steps[1].result is not None and "dry run" in state.steps[1].result.message


async def test_a_workload_that_never_comes_up_makes_the_request_partially_failed_with_why(
    settings: Settings, snapshot: str, tmp_path: Path
) -> None:
    stuck = {"replicas": 1, "availableReplicas": 0, "unavailableReplicas": 1}
    cluster = FakeCluster(volumes=tmp_path / "volumes", stuck={"deployments.apps/shop-west/web": stuck})
    async with steps(settings, cluster) as client:
        request_id = await client.submit(restore_request(snapshot, itinerary=["restore"]))
        state = await client.wait(request_id, within=90)
        seen = await reports(client, request_id)
    assert state.phase is Phase.PARTIALLY_FAILED, state.reason
    why = "not ready after 5s: 0/1 replicas available"
    assert f"deployments.apps/shop-west/web: {why}" in state.reason
    assert seen["restore"].body["not_ready"] == {"deployments.apps/shop-west/web": why}
    restored = state.steps[0].result
    assert restored is not None and restored.partial and restored.counts["created"] == 5
