"""A staged migration's restore: stages land only claims with their data, a cutover lands everything
at the replicas from before the source's quiesce and reports the downtime, both stamp the plan label.

The steps run on a real nats-server with a real repository and real ``ferry-mover`` processes; the
cluster is the in-memory one of tests/restore/fakes.py, whose volumes are directories. A stand-in
snapshot step plays the real one's part in a cutover: it names the snapshot and says when it
quiesced the source (``quiesced_at``), as the snapshot service does.
"""

from __future__ import annotations

import contextlib
import copy
import json
import os
import secrets
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import nats
import pytest

from sandbox.localstack import NatsServer
from services.intake.intake import IntakeService
from services.restore.conflicts import write
from services.restore.migrating import downtime_outputs, missing_storage_classes
from services.restore.restoring import prepare
from services.restore.selecting import select
from services.restore.service import RestoreOptions, RestoreService
from services.restore.sources import restore_labels, transforms_for
from services.verify.service import VerifyService
from shared.bus.client import BusClient
from shared.contracts.events import Quiesced
from shared.contracts.migrations import PLAN_LABEL, plan_key
from shared.contracts.requests import ConflictPolicy, MobilityRequest, RequestKind, Source, Target
from shared.contracts.states import Phase, RequestState
from shared.contracts.steps import StepName, StepResult
from shared.kube.comparing import without_ferry_labels
from shared.kube.objects import Manifest
from shared.repository import Repository, backup, put_blob
from shared.runtime import Settings, StepContext, StepService, load_settings
from shared.runtime.clusters import Cluster
from shared.runtime.outcomes import Outcome, Succeeded
from shared.runtime.quiescing import REPLICAS, SINCE, SUSPEND
from shared.store import LocalStore
from tests.repository.trees import file_hashes, random_files
from tests.restore.fakes import FakeCluster
from tests.store.conftest import FAST_SCRYPT, PASSWORD

QUIESCED = {REPLICAS: "3", SINCE: "1700000000.000"}
APP: list[dict[str, Any]] = [
    {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "shop"}},
    {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": "conf", "namespace": "shop"},
        "data": {"a": "1"},
    },
    {
        "apiVersion": "v1",
        "kind": "PersistentVolumeClaim",
        "metadata": {"name": "data", "namespace": "shop", "labels": {"app": "web"}},
        "spec": {"storageClassName": "gp2", "accessModes": ["ReadWriteOnce"], "volumeName": "pv-1"},
    },
    {
        "apiVersion": "v1",
        "kind": "PersistentVolume",
        "metadata": {"name": "pv-1"},
        "spec": {"claimRef": {"name": "data", "namespace": "shop"}},
    },
    {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "web", "namespace": "shop", "annotations": {"team": "shop", **QUIESCED}},
        "spec": {
            "replicas": 0,
            "template": {
                "spec": {
                    "volumes": [{"name": "d", "persistentVolumeClaim": {"claimName": "data"}}],
                    "containers": [{"name": "web", "image": "nginx"}],
                }
            },
        },
    },
    {
        "apiVersion": "batch/v1",
        "kind": "CronJob",
        "metadata": {"name": "report", "namespace": "shop", "annotations": {SUSPEND: "false", SINCE: "1"}},
        "spec": {
            "suspend": True,
            "schedule": "0 * * * *",
            "jobTemplate": {
                "spec": {
                    "template": {
                        "spec": {"containers": [{"name": "r", "image": "busybox"}], "restartPolicy": "Never"}
                    }
                }
            },
        },
    },
    {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": "web", "namespace": "shop"},
        "spec": {"ports": [{"port": 80}]},
    },
]
STANDARD = {
    "apiVersion": "storage.k8s.io/v1",
    "kind": "StorageClass",
    "metadata": {"name": "standard"},
    "provisioner": "example.com/disk",
}


def migrate(group: str, **changes: Any) -> MobilityRequest:
    """A stage or cutover of the shop into shop-west, from a snapshot already in repository west."""
    target = Target(
        cluster="west",
        repository="west",
        namespace_map={"shop": "shop-west"},
        storage_class_map={"gp2": "standard"},
    )
    source = Source(cluster="east", namespaces=["shop"], repository="west", snapshot=group)
    fields: dict[str, Any] = {"itinerary": ["restore", "verify"], **changes}
    return MobilityRequest(kind=RequestKind.MIGRATE, source=source, target=target, **fields)


class App:
    """The source application: a directory for its volume, Ferry snapshots of it in repository west."""

    def __init__(self, root: Path) -> None:
        self.data = root / "src"
        self.repo = Repository.init(
            LocalStore(root / "west"), PASSWORD, scrypt_n=FAST_SCRYPT, pack_size=1 << 20
        )
        random_files(self.data, 5, 200_000)

    def snapshot(self) -> str:
        group = secrets.token_hex(8)
        backup(self.repo, self.data, name="shop/data", group=group)
        put_blob(
            self.repo, json.dumps({"kind": "List", "items": APP}).encode(), name="manifests", group=group
        )
        return group

    def change(self) -> None:
        """One file changed, one added, one deleted: what a stage after the first has to carry."""
        changed = self.data / "file-0001.bin"
        data = bytearray(changed.read_bytes())
        data[10_000:14_096] = os.urandom(4096)
        changed.write_bytes(bytes(data))
        (self.data / "new.txt").write_text("written while the source kept serving\n")
        (self.data / "file-0004.bin").unlink()


class SnapshotStandIn(StepService):
    """The snapshot step of a cutover as the restore sees it: the snapshot's id and when the source
    was quiesced."""

    name = "snapshot-stand-in"
    description = "Names a snapshot and a quiesce time, as the snapshot step of a cutover does"
    step = StepName.SNAPSHOT

    def __init__(self, settings: Settings, quiesced_at: float) -> None:
        super().__init__(settings)
        self.quiesced_at = quiesced_at

    async def handle(self, ctx: StepContext) -> Outcome:
        outputs = {"snapshot": ctx.request.source.snapshot, "quiesced_at": f"{self.quiesced_at:.3f}"}
        return Succeeded(StepResult(outputs=outputs))


@pytest.fixture
def settings(nats_server: NatsServer, tmp_path: Path) -> Settings:
    return load_settings(
        {},
        nats={"url": nats_server.url},
        http_port=0,
        http_host="127.0.0.1",
        ack_wait=10.0,
        lease=20.0,
        max_attempts=2,
        drain_grace=2.0,
        concurrency=2,
        repositories={"west": str(tmp_path / "west")},
        repo_password=PASSWORD.decode(),
    )


@pytest.fixture
def app(tmp_path: Path) -> App:
    return App(tmp_path)


@contextlib.asynccontextmanager
async def steps(
    settings: Settings, cluster: FakeCluster, quiesced_at: float = 0.0
) -> AsyncIterator[tuple[BusClient, RestoreService]]:
    async def clusters(_settings: Settings, _name: str) -> Cluster:
        return cluster

    restore = RestoreService(settings, clusters=clusters, options=RestoreOptions(timeout=5, mover_timeout=60))
    nc = await nats.connect(settings.nats.url)
    stand_in = SnapshotStandIn(settings, quiesced_at)
    async with IntakeService(settings), stand_in, restore, VerifyService(settings, clusters=clusters):
        yield BusClient(nc, timeout=5), restore
    await nc.close()


async def run(client: BusClient, request: MobilityRequest) -> RequestState:
    return await client.wait(await client.submit(request), within=120)


def target_cluster(tmp_path: Path) -> FakeCluster:
    cluster = FakeCluster(volumes=tmp_path / "volumes")
    cluster.put(STANDARD)
    return cluster


def labels(cluster: FakeCluster, key: str) -> dict[str, str]:
    return dict(cluster.objects[key]["metadata"].get("labels") or {})


# --- the pieces ---------------------------------------------------------------------------------


def test_a_stage_selects_only_the_claims_and_their_namespaces() -> None:
    captured = [Manifest(copy.deepcopy(o)) for o in APP]
    selection = select(captured, migrate("g", stage=True))
    assert [m.key for m in selection.items] == ["namespaces/shop", "persistentvolumeclaims/shop/data"]
    assert selection.left_out == len(APP) - 2


def test_a_stage_of_a_snapshot_without_claims_fails_saying_a_stage_takes_claims() -> None:
    captured = [Manifest(copy.deepcopy(o)) for o in APP if o["kind"] != "PersistentVolumeClaim"]
    with pytest.raises(Exception, match=r"stage \(PersistentVolumeClaims only\)"):
        select(captured, migrate("g", stage=True))


def test_a_capture_of_a_quiesced_source_is_restored_as_before_the_quiesce() -> None:
    request = migrate("g", cutover=True)
    captured = [Manifest(copy.deepcopy(o)) for o in APP]
    plan = prepare(
        captured, transforms_for(request, restore_labels("r1", "g", plan_key(request)), captured), []
    )
    by_key = {m.key: m for m in plan.items}
    web = by_key["deployments.apps/shop-west/web"].obj
    assert web["spec"]["replicas"] == 3
    assert web["metadata"]["annotations"] == {"team": "shop"}  # Ferry's quiesce notes gone, the rest kept
    report = by_key["cronjobs.batch/shop-west/report"].obj
    assert report["spec"]["suspend"] is False and "annotations" not in report["metadata"]
    assert all(m.metadata["labels"][PLAN_LABEL] == plan_key(request) for m in plan.items)


def test_only_a_migrate_stamps_the_plan_label() -> None:
    assert PLAN_LABEL not in restore_labels("r1", "g", "")
    assert restore_labels("r1", "g", "m-0123")[PLAN_LABEL] == "m-0123"


async def test_an_object_equal_but_for_the_plan_label_is_unchanged() -> None:
    cluster = FakeCluster()
    cluster.put(
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": "c", "namespace": "n"},
            "data": {"a": "1"},
        }
    )
    stamped = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "data": {"a": "1"},
        "metadata": {"name": "c", "namespace": "n", "labels": {PLAN_LABEL: "m-1", "ferry.dev/request": "r"}},
    }
    result = await write(cluster, Manifest(stamped), ConflictPolicy.SKIP)
    assert result.outcome.value == "unchanged", result.diff
    assert "labels" not in without_ferry_labels(stamped)["metadata"]


def claim(name: str, storage_class: str | None) -> Manifest:
    spec = {} if storage_class is None else {"storageClassName": storage_class}
    return Manifest(
        {
            "apiVersion": "v1",
            "kind": "PersistentVolumeClaim",
            "metadata": {"name": name, "namespace": "n"},
            "spec": spec,
        }
    )


@pytest.mark.parametrize(
    ("claims", "extra", "expected"),
    [
        pytest.param([claim("a", "standard")], [], [], id="a class the target has"),
        pytest.param(
            [claim("a", "gone"), claim("b", "gone")],
            [],
            ["storage class gone does not exist in the target (it has standard; used by n/a, n/b)"],
            id="a class the target lost, with every claim that uses it",
        ),
        pytest.param(
            [claim("a", "fast")],
            [{**STANDARD, "metadata": {"name": "fast"}}],
            [],
            id="a class the restore writes itself",
        ),
        pytest.param(
            [claim("a", None)],
            [],
            ["the target has no default storage class (used by n/a)"],
            id="a claim without a class needs a default class",
        ),
        pytest.param([claim("a", "")], [], [], id="a claim with no class at all binds a volume by hand"),
    ],
)
async def test_storage_classes_a_stage_or_cutover_needs(
    claims: list[Manifest], extra: list[dict[str, Any]], expected: list[str]
) -> None:
    cluster = FakeCluster()
    cluster.put(STANDARD)
    assert (
        await missing_storage_classes(cluster, claims + [Manifest(copy.deepcopy(o)) for o in extra])
        == expected
    )


def test_downtime_is_from_the_quiesce_to_available_to_a_tenth_of_a_second() -> None:
    assert downtime_outputs({"quiesced_at": "100.000"}, 142.349) == {
        "available_at": "142.349",
        "downtime_seconds": "42.3",
    }
    assert downtime_outputs({}, 142.0) == {"available_at": "142.000"}


# --- the steps ----------------------------------------------------------------------------------


async def test_stages_land_only_claims_with_their_data_and_a_second_stage_rewrites_only_changes(
    settings: Settings, app: App, tmp_path: Path
) -> None:
    cluster = target_cluster(tmp_path)
    volume = tmp_path / "volumes" / "shop-west" / "data"
    async with steps(settings, cluster) as (client, restore):
        first = await run(client, migrate(app.snapshot(), stage=True))
        assert first.phase is Phase.COMPLETED, first.reason
        assert file_hashes(volume) == file_hashes(app.data)
        app.change()
        second = await run(client, migrate(app.snapshot(), stage=True))
        written = restore.metrics.registry.get_sample_value(
            "ferry_restore_bytes_written_total", {"mode": "stage"}
        )
    assert second.phase is Phase.COMPLETED, second.reason  # verify checked the claim and its data
    assert file_hashes(volume) == file_hashes(app.data)
    kept = sorted(k for k in cluster.objects if not k.startswith(("jobs.batch/", "secrets/")))
    assert kept == [
        "namespaces/shop-west",
        "persistentvolumeclaims/shop-west/data",
        "storageclasses.storage.k8s.io/standard",
    ]
    for key in ("namespaces/shop-west", "persistentvolumeclaims/shop-west/data"):
        assert labels(cluster, key)[PLAN_LABEL] == plan_key(migrate("", stage=True)), key

    before, after = (s.step_state(StepName.RESTORE).result for s in (first, second))
    assert before is not None and after is not None
    assert before.counts["volumes_created"] == 1 and before.counts["files_written"] == 5
    assert before.counts["not_selected"] == len(APP) - 2
    assert after.counts["volumes_refreshed"] == 1
    assert (after.counts["files_written"], after.counts["files_skipped"], after.counts["files_removed"]) == (
        2,
        3,
        1,
    )
    assert 0 < after.counts["bytes_written"] < before.counts["bytes_written"] / 2
    assert after.counts["bytes_skipped"] == 3 * 200_000
    assert written == before.counts["bytes_written"] + after.counts["bytes_written"]


async def test_a_cutover_lands_the_app_at_its_replicas_from_before_the_quiesce_and_reports_downtime(
    settings: Settings, app: App, tmp_path: Path
) -> None:
    cluster = target_cluster(tmp_path)
    quiesced = time.time() - 7.0
    async with steps(settings, cluster, quiesced) as (client, restore):
        staged = await run(client, migrate(app.snapshot(), stage=True))
        app.change()
        request = migrate(app.snapshot(), cutover=True, itinerary=["snapshot", "restore", "verify"])
        state = await run(client, request)
        events = [e async for _, e in client.events(state.id, follow=False)]
        gauge = restore.metrics.registry.get_sample_value("ferry_cutover_downtime_seconds")
    assert staged.phase is Phase.COMPLETED and state.phase is Phase.COMPLETED, state.reason
    web = cluster.objects["deployments.apps/shop-west/web"]
    assert web["spec"]["replicas"] == 3 and web["metadata"]["annotations"] == {"team": "shop"}
    assert cluster.objects["cronjobs.batch/shop-west/report"]["spec"]["suspend"] is False
    assert file_hashes(tmp_path / "volumes" / "shop-west" / "data") == file_hashes(app.data)
    assert labels(cluster, "deployments.apps/shop-west/web")[PLAN_LABEL] == plan_key(request)

    restored = state.step_state(StepName.RESTORE).result
    assert restored is not None and restored.counts["volumes_refreshed"] == 1  # the stage's claim, refreshed
    available, downtime = float(state.outputs["available_at"]), float(state.outputs["downtime_seconds"])
    assert downtime == pytest.approx(available - quiesced, abs=0.06) and 7.0 <= downtime < 60
    assert gauge == downtime and f"downtime {state.outputs['downtime_seconds']}s" in restored.message
    clock = [e for e in events if isinstance(e, Quiesced)]
    assert len(clock) == 1 and clock[0].available_at == available  # the CLI stops its downtime clock
    assert clock[0].since == pytest.approx(quiesced, abs=1e-3)


async def test_a_cutover_whose_target_lost_a_storage_class_fails_before_writing(
    settings: Settings, app: App, tmp_path: Path
) -> None:
    cluster = FakeCluster(volumes=tmp_path / "volumes")  # no "standard" class: the claim could never bind
    async with steps(settings, cluster) as (client, _):
        state = await run(client, migrate(app.snapshot(), cutover=True))
    assert state.phase is Phase.FAILED
    assert "cutover: claims could never bind, nothing was written: storage class standard does not exist" in (
        state.reason
    )
    assert "shop-west/data" in state.reason and cluster.objects == {}


async def test_a_cutover_whose_target_is_not_fully_up_fails_so_that_it_is_rolled_back(
    settings: Settings, app: App, tmp_path: Path
) -> None:
    cluster = target_cluster(tmp_path)
    cluster.stuck["deployments.apps/shop-west/web"] = {"replicas": 3, "availableReplicas": 1}
    async with steps(settings, cluster) as (client, _):
        state = await run(client, migrate(app.snapshot(), cutover=True))
    assert state.phase is Phase.FAILED
    assert (
        "restore failed after 1 attempt(s): cutover: the target is not fully up (1 problem(s): "
        in state.reason
    )
    assert "1/3 replicas available" in state.reason and "available_at" not in state.outputs
    assert state.rollback_request and "rolling back" in state.reason  # the runtime's automatic rollback
    assert cluster.objects["deployments.apps/shop-west/web"]["spec"]["replicas"] == 3
