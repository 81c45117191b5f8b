"""The sample app moved east → west through transfer, restore and verify: a namespace rename and a
storage-class mapping, real nats-server, two repositories (two regions), sandbox clusters whose
kubelet runs the mover Jobs as real ``ferry-mover`` processes.

The first test stands in for the snapshot step with ``capturing.snapshot`` (the real discovery code,
volume directories backed up directly) and drives transfer → restore → verify; the last one runs the
whole ``migrate`` itinerary with every real service, the snapshot service's mover Jobs included.
"""

from __future__ import annotations

import contextlib
import json
import os
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import msgspec
import nats
import pytest

from sandbox import SandboxClusters
from sandbox.localstack import LocalStack, NatsServer, SeaweedFS
from sandbox.seeding import seed
from services.discovery.preflight import PreflightService
from services.intake.intake import IntakeService
from services.restore import manifests
from services.restore.restoring import prepare
from services.restore.service import RestoreOptions, RestoreService
from services.restore.sources import restore_labels, transforms_for
from services.transfer.transferring import TransferOptions, TransferService
from services.verify.service import VerifyService
from shared.bus.client import BusClient
from shared.contracts.migrations import PLAN_LABEL, plan_key
from shared.contracts.requests import ConflictPolicy, MobilityRequest, RequestKind, Source, Target
from shared.contracts.states import Phase
from shared.contracts.steps import StepName
from shared.kube.comparing import differences, without_ferry_labels
from shared.repository import Repository
from shared.runtime import Settings, load_settings
from shared.runtime.clusters import KubeCluster
from shared.runtime.quiescing import REPLICAS, SINCE
from shared.store import LocalStore
from tests.repository.trees import file_hashes, random_files
from tests.restore.capturing import snapshot, volume_dir
from tests.restore.conftest import kube_cluster
from tests.store.conftest import FAST_SCRYPT, PASSWORD
from tests.waiting import eventually

SHOP = Path(__file__).resolve().parents[2] / "sandbox" / "apps" / "shop"
CLASSES = {"fast": "standard", "standard": "fast"}


@pytest.fixture
def settings(nats_server: NatsServer, tmp_path: Path, sandboxes: SandboxClusters) -> Settings:
    return load_settings({}, nats={"url": nats_server.url}, http_port=0, http_host="127.0.0.1", ack_wait=30.0,
                         lease=30.0, max_attempts=2, drain_grace=2.0, concurrency=1,
                         kubeconfig=str(sandboxes.kubeconfig_path), repo_password=PASSWORD.decode(),
                         repositories={"east": str(tmp_path / "east"), "west": str(tmp_path / "west")})  # fmt: skip


@contextlib.asynccontextmanager
async def ferry(settings: Settings) -> AsyncIterator[BusClient]:
    options = RestoreOptions(timeout=60, mover_timeout=120)
    nc = await nats.connect(settings.nats.url)
    async with (
        IntakeService(settings),
        PreflightService(settings),
        TransferService(settings, options=TransferOptions(threads=2)),
        RestoreService(settings, options=options),
        VerifyService(settings),
    ):
        yield BusClient(nc, timeout=5)
    await nc.close()


@pytest.fixture
async def east_shop(sandboxes: SandboxClusters, tmp_path: Path) -> AsyncIterator[tuple[str, str]]:
    """The sample app in east with data in its volumes, captured as a Ferry snapshot in repo east."""
    east = kube_cluster(sandboxes, "east")
    try:
        await seed(sandboxes["east"].url, [SHOP])
        for claim in ("web-uploads", "pgdata-db-0"):
            await east.wait_for("persistentvolumeclaims", claim, lambda o: (o or {}).get("status", {}).get("phase") == "Bound",
                                namespace="shop", within=30)  # fmt: skip
        uploads, pgdata = (
            await volume_dir(east, "shop", "web-uploads"),
            await volume_dir(east, "shop", "pgdata-db-0"),
        )
        random_files(uploads / "images", 6, 200_000, seed=3)
        random_files(pgdata / "base" / "16384", 4, 300_000, seed=4)
        (pgdata / "PG_VERSION").write_text("16\n")
        repo = Repository.init(LocalStore(tmp_path / "east"), PASSWORD, scrypt_n=FAST_SCRYPT)
        group, _items = await snapshot(east, "shop", repo)
        yield group, "shop"
    finally:
        await east.close()


def request_for(group: str) -> MobilityRequest:
    return MobilityRequest(
        kind=RequestKind.RESTORE,
        source=Source(cluster="east", namespaces=["shop"], repository="east", snapshot=group),
        target=Target(cluster="west", repository="west", namespace_map={"shop": "shop-west"}, storage_class_map=CLASSES),
    )  # fmt: skip


async def test_the_sample_app_moves_east_to_west_renamed_and_remapped(
    settings: Settings, sandboxes: SandboxClusters, east_shop: tuple[str, str], tmp_path: Path
) -> None:
    group, _ = east_shop
    request = request_for(group)
    async with ferry(settings) as client:
        request_id = await client.submit(request)
        state = await client.wait(request_id, within=150)
    assert state.phase is Phase.COMPLETED, state.reason
    steps = {s.step.value: s.result for s in state.steps}
    assert steps["verify"] is not None and steps["verify"].counts["files_verified"] == 11
    assert steps["verify"].counts["volumes"] == 2 and steps["verify"].counts["volumes_failed"] == 0

    # Every object of the snapshot is in west, equal to the source after cleaning and transforms.
    captured = manifests.load(Repository.open(LocalStore(tmp_path / "west"), PASSWORD), group)
    plan = prepare(
        captured.items, transforms_for(request, restore_labels(request_id, group), captured.items), []
    )
    west = KubeCluster(kube_cluster(sandboxes, "west"))
    east = kube_cluster(sandboxes, "east")
    try:
        kinds = set()
        for item in plan.items:
            live = await west.get(item)
            assert live is not None, f"{item.key} is missing in west"
            assert differences(without_ferry_labels(item.obj), live) == [], item.key
            if item.namespace:  # cluster-scoped ones may have been there already (StorageClasses)
                assert live["metadata"]["labels"]["ferry.dev/request"] == request_id, item.key
            kinds.add(item.kind)
        assert {"Namespace", "CustomResourceDefinition", "Promotion", "Deployment", "StatefulSet", "Service",
                "Ingress", "RoleBinding", "NetworkPolicy", "CronJob", "Secret", "ConfigMap"} <= kinds  # fmt: skip
        # The renamed namespace is followed inside values: the ConfigMap's service address points to west's.
        config = await west.cluster.get("configmaps", "shop-config", "shop-west")
        assert config["data"]["DATABASE_HOST"] == "db.shop-west.svc.cluster.local"

        async def obj(gr: str, name: str, ns: str | None = "shop-west") -> dict[str, Any]:
            found = await west.cluster.find(gr, name, ns)
            assert found is not None, f"{gr} {ns}/{name} missing in west"
            return found

        # RoleBinding subjects renamed; storage classes mapped; references resolve in the new namespace.
        binding = await obj("rolebindings.rbac.authorization.k8s.io", "shop-web")
        assert [s["namespace"] for s in binding["subjects"]] == ["shop-west"]
        assert (await obj("persistentvolumeclaims", "pgdata-db-0"))["spec"]["storageClassName"] == "standard"
        assert (await obj("persistentvolumeclaims", "web-uploads"))["spec"]["storageClassName"] == "fast"
        web = (await obj("deployments.apps", "web"))["spec"]["template"]["spec"]
        assert await obj("serviceaccounts", web["serviceAccountName"])
        for volume in web["volumes"]:
            if "persistentVolumeClaim" in volume:
                await obj("persistentvolumeclaims", volume["persistentVolumeClaim"]["claimName"])
            if "configMap" in volume:
                await obj("configmaps", volume["configMap"]["name"])
        for container in web["containers"]:
            for source in container.get("envFrom") or []:
                await obj("configmaps", source["configMapRef"]["name"])
            for env in container.get("env") or []:
                await obj("secrets", env["valueFrom"]["secretKeyRef"]["name"])
        assert (await obj("secrets", "db-credentials"))["data"]["POSTGRES_PASSWORD"]

        # Volumes byte-identical.
        for claim in ("web-uploads", "pgdata-db-0"):
            assert file_hashes(await volume_dir(west.cluster, "shop-west", claim)) == file_hashes(
                await volume_dir(east, "shop", claim)
            ), claim
        await eventually(lambda: _ready(west), within=10, what="west workloads ready")
    finally:
        await west.close()
        await east.close()


# A team's Velero resource modifiers, one rule per kind of patch, and a registry mirror in the west.
MODIFIERS = """\
version: v1
resourceModifierRules:
- conditions:
    groupResource: deployments.apps
    resourceNameRegex: "^web$"
    namespaces: [shop]
  patches:
  - operation: replace
    path: /spec/replicas
    value: "3"
- conditions:
    groupResource: configmaps
    namespaces: [shop]
  mergePatches:
  - patchData: '{"metadata": {"annotations": {"example.com/moved-by": "ferry"}}}'
- conditions:
    groupResource: statefulsets.apps
    labelSelector: {matchLabels: {app: db}}
  strategicPatches:
  - patchData: '{"spec": {"template": {"spec": {"containers": [{"name": "postgres", "env": [{"name": "REGION", "value": "west"}]}]}}}}'
"""
REGISTRIES = {"ghcr.io": "registry.west.example"}


async def test_resource_modifiers_and_a_registry_map_shape_the_objects_that_land_in_west(
    settings: Settings, sandboxes: SandboxClusters, east_shop: tuple[str, str]
) -> None:
    group, _ = east_shop
    base = request_for(group)
    target = msgspec.structs.replace(base.target, namespace_map={"shop": "shop-mod"}, resource_modifiers=MODIFIERS,
                                     registry_map=REGISTRIES)  # fmt: skip
    async with ferry(settings) as client:
        request_id = await client.submit(msgspec.structs.replace(base, target=target))
        state = await client.wait(request_id, within=150)
    assert state.phase is Phase.COMPLETED, state.reason  # verify found every object as the rules made it

    west, east = kube_cluster(sandboxes, "west"), kube_cluster(sandboxes, "east")
    try:

        async def pods(gr: str, name: str, cluster: Any = west, ns: str = "shop-mod") -> dict[str, Any]:
            obj = await cluster.get(gr, name, ns)
            spec = obj["spec"].get("jobTemplate", obj)["spec"]["template"]["spec"]
            return {"replicas": obj["spec"].get("replicas"), **{c["name"]: c for c in spec["containers"]}}

        # JSON patch: web runs 3 replicas in west (2 in east); its ghcr.io image comes from the mirror,
        # the Docker Hub one is left alone.
        web = await pods("deployments.apps", "web")
        assert web["replicas"] == 3
        assert web["web"]["image"] == "registry.west.example/example/shop-web:2.3.1"
        assert web["nginx"]["image"] == "nginx:1.27"
        report = await pods("cronjobs.batch", "nightly-report")
        assert report["report"]["image"] == "registry.west.example/example/shop-report:1.0.0"
        source = await pods("deployments.apps", "web", east, "shop")
        assert (source["replicas"], source["web"]["image"]) == (2, "ghcr.io/example/shop-web:2.3.1")

        # Merge patch: every ConfigMap of the app is annotated; nothing else is.
        async def annotations(gr: str, name: str) -> dict[str, str]:
            return (await west.get(gr, name, "shop-mod"))["metadata"].get("annotations") or {}

        for name in ("shop-config", "web-nginx"):
            assert (await annotations("configmaps", name)).get("example.com/moved-by") == "ferry", name
        assert "example.com/moved-by" not in await annotations("secrets", "db-credentials")

        # Strategic merge patch: the postgres container gained an env var and kept everything else.
        db = (await pods("statefulsets.apps", "db"))["postgres"]
        assert db["env"] == [{"name": "REGION", "value": "west"}]
        assert db["image"] == "postgres:16.4" and db["envFrom"] == [{"secretRef": {"name": "db-credentials"}}]

        async def three_available() -> bool:
            deploy = await west.find("deployments.apps", "web", "shop-mod")
            return bool(deploy and deploy.get("status", {}).get("availableReplicas") == 3)

        await eventually(three_available, within=10, what="west's web running 3 replicas")
    finally:
        await west.close()
        await east.close()


def migrate_request(namespace: str) -> MobilityRequest:
    """The sample app's whole itinerary, east's shop into ``namespace`` of west, storage classes swapped."""
    return MobilityRequest(kind=RequestKind.MIGRATE, source=Source(cluster="east", namespaces=["shop"],
                           repository="east"), target=Target(cluster="west", repository="west",
                           namespace_map={"shop": namespace}, storage_class_map=CLASSES))  # fmt: skip


async def assert_volumes_arrived(sandboxes: SandboxClusters, namespace: str) -> None:
    """Both of the sample app's volumes in west's ``namespace`` are byte-identical to east's."""
    west, east = kube_cluster(sandboxes, "west"), kube_cluster(sandboxes, "east")
    try:
        for claim in ("web-uploads", "pgdata-db-0"):
            assert file_hashes(await volume_dir(west, namespace, claim)) == file_hashes(
                await volume_dir(east, "shop", claim)
            ), claim
    finally:
        await west.close()
        await east.close()


async def _ready(west: KubeCluster) -> bool:
    deploy = await west.cluster.find("deployments.apps", "web", "shop-west")
    return bool(deploy and deploy.get("status", {}).get("availableReplicas") == 2)


async def test_a_migrate_request_runs_the_whole_itinerary(
    settings: Settings, sandboxes: SandboxClusters, east_shop: tuple[str, str], tmp_path: Path
) -> None:
    """discover → snapshot → transfer → restore → verify, every step the real service."""
    from services.discovery.discovering import DiscoveryService
    from services.snapshot.snapshotting import SnapshotService

    async with DiscoveryService(settings), SnapshotService(settings), ferry(settings) as client:
        request_id = await client.submit(migrate_request("shop-mig"))
        state = await client.wait(request_id, within=120)
    assert state.phase is Phase.COMPLETED, state.reason
    steps = ["preflight", "discover", "snapshot", "transfer", "restore", "verify"]
    assert [s.step.value for s in state.steps] == steps
    verified = state.steps[-1].result
    assert (
        verified is not None and verified.counts["volumes"] == 2 and verified.counts["files_verified"] == 11
    )
    await assert_volumes_arrived(sandboxes, "shop-mig")
    west = kube_cluster(sandboxes, "west")
    try:
        binding = await west.get("rolebindings.rbac.authorization.k8s.io", "shop-web", "shop-mig")
        assert [s["namespace"] for s in binding["subjects"]] == ["shop-mig"]
    finally:
        await west.close()


async def test_a_dry_run_of_the_sample_app_writes_nothing_anywhere(
    settings: Settings, sandboxes: SandboxClusters, east_shop: tuple[str, str], tmp_path: Path
) -> None:
    group, _ = east_shop
    request = msgspec.structs.replace(request_for(group), dry_run=True,
                                      target=msgspec.structs.replace(request_for(group).target,
                                                                     namespace_map={"shop": "shop-dry"}))  # fmt: skip
    async with ferry(settings) as client:
        request_id = await client.submit(request)
        state = await client.wait(request_id, within=60)
        stored = await client.nc.jetstream().object_store("ferry-inventories")
        docs = json.loads((await stored.get(f"{request_id}/rendered.json")).data or b"[]")
    assert state.phase is Phase.COMPLETED, state.reason
    restored = state.step_state(StepName.RESTORE).result
    assert (
        restored is not None and restored.counts["planned"] >= 15 and restored.counts.get("created", 0) == 0
    )
    assert not (tmp_path / "west").exists(), "the dry run wrote the target repository"
    west = kube_cluster(sandboxes, "west")
    try:
        assert await west.find("namespaces", "shop-dry") is None
        assert not [j for j in await west.list("jobs.batch") if j["metadata"]["namespace"] == "shop-dry"]
    finally:
        await west.close()
    kinds = [d["kind"] for d in docs]
    assert kinds[:2] == ["CustomResourceDefinition", "Namespace"] and "Promotion" in kinds
    assert all(d["metadata"].get("namespace") in (None, "shop-dry") for d in docs)


async def test_a_migration_crosses_two_object_stores_each_with_its_own_endpoint_and_credentials(
    settings: Settings,
    sandboxes: SandboxClusters,
    east_shop: tuple[str, str],
    tmp_path: Path,
    stack: LocalStack,
) -> None:
    """Another region on another cloud: the west repository is on a second S3 service that only its
    own credentials open. Snapshot movers write east's store, transfer copies between the two, and
    restore and verify movers read west's store with west's endpoint and keys."""
    from services.discovery.discovering import DiscoveryService
    from services.snapshot.snapshotting import SnapshotService

    other = SeaweedFS(tmp_path / "other-cloud", access_key="west-cloud").start()
    try:
        west_repo = {"url": "s3://ferry-west-cloud/apps", "endpoint": other.s3.endpoint,
                     "access_key": other.access_key, "secret_key": other.secret_key}  # fmt: skip
        crossing = load_settings(
            {}, **{f: getattr(settings, f) for f in ("nats", "http_port", "http_host", "ack_wait", "lease",
                                                     "max_attempts", "drain_grace", "concurrency", "kubeconfig",
                                                     "repo_password")},
            s3={"endpoint": stack.s3.endpoint, "access_key": stack.s3.access_key, "secret_key": stack.s3.secret_key},
            repositories={"east": "s3://ferry-east-cloud/apps", "west": west_repo},
        )  # fmt: skip
        async with DiscoveryService(crossing), SnapshotService(crossing), ferry(crossing) as client:
            request_id = await client.submit(migrate_request("shop-cloud"))
            state = await client.wait(request_id, within=150)
        assert state.phase is Phase.COMPLETED, state.reason
        transferred = state.step_state(StepName.TRANSFER).result
        assert transferred is not None and transferred.counts["bytes_sent"] > 0
        assert state.steps[-1].result is not None and state.steps[-1].result.counts["volumes_failed"] == 0
        await assert_volumes_arrived(sandboxes, "shop-cloud")
        # The packs are in the other cloud's bucket; east's store never held a west bucket.
        keys = boto3_keys(other.s3, "ferry-west-cloud")
        assert any(k.startswith("apps/") for k in keys)
        assert "ferry-west-cloud" not in buckets(stack.s3)
    finally:
        other.stop()


def boto3_keys(s3: Any, bucket: str) -> list[str]:
    import boto3

    client = boto3.client("s3", endpoint_url=s3.endpoint, aws_access_key_id=s3.access_key,
                          aws_secret_access_key=s3.secret_key, region_name="us-east-1")  # fmt: skip
    return [o["Key"] for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket)
            for o in page.get("Contents", [])]  # fmt: skip


def buckets(s3: Any) -> set[str]:
    import boto3

    client = boto3.client("s3", endpoint_url=s3.endpoint, aws_access_key_id=s3.access_key,
                          aws_secret_access_key=s3.secret_key, region_name="us-east-1")  # fmt: skip
    return {b["Name"] for b in client.list_buckets().get("Buckets", [])}


def overwrite(path: Path, offset: int, data: bytes) -> None:
    with open(path, "r+b") as f:
        f.seek(offset)
        f.write(data)


async def test_a_second_migration_refreshes_changed_volumes_and_verifies_them(
    settings: Settings, sandboxes: SandboxClusters, east_shop: tuple[str, str], tmp_path: Path
) -> None:
    from services.discovery.discovering import DiscoveryService
    from services.snapshot.snapshotting import SnapshotService

    east = kube_cluster(sandboxes, "east")
    uploads = await volume_dir(east, "shop", "web-uploads")
    changed, added, deleted = uploads / "images" / "file-0001.bin", uploads / "images" / "new.png", uploads / "images" / "file-0005.bin"  # fmt: skip
    original, gone = changed.read_bytes(), deleted.read_bytes()
    config = await east.get("configmaps", "shop-config", "shop")
    request = msgspec.structs.replace(migrate_request("shop-again"), conflict_policy=ConflictPolicy.UPDATE)
    try:
        async with DiscoveryService(settings), SnapshotService(settings), ferry(settings) as client:
            first = await client.wait(await client.submit(request), within=120)
            assert first.phase is Phase.COMPLETED, first.reason
            overwrite(changed, 50_000, os.urandom(4096))
            added.write_bytes(os.urandom(10_000))
            deleted.unlink()
            await east.patch("configmaps", "shop-config", {"data": {"CURRENCY": "USD"}}, namespace="shop")
            second = await client.wait(await client.submit(request), within=120)
        assert second.phase is Phase.COMPLETED, second.reason
        await assert_volumes_arrived(sandboxes, "shop-again")
        west = kube_cluster(sandboxes, "west")
        try:
            assert (await west.get("configmaps", "shop-config", "shop-again"))["data"]["CURRENCY"] == "USD"
        finally:
            await west.close()
        steps = {s.step.value: s.result for s in second.steps}
        restored, verified = steps["restore"], steps["verify"]
        assert restored is not None and verified is not None
        assert restored.counts["volumes_refreshed"] == 2
        assert restored.counts["files_written"] == 2  # the changed file and the new one, nothing else
        assert verified.counts["volumes_failed"] == 0 and verified.counts["objects_failed"] == 0
        assert "verified" in verified.message
    finally:
        changed.write_bytes(original)
        deleted.write_bytes(gone)
        added.unlink(missing_ok=True)
        await east.patch(
            "configmaps", "shop-config", {"data": {"CURRENCY": config["data"]["CURRENCY"]}}, namespace="shop"
        )
        await east.close()


def staged_request(group: str, namespace: str, **flags: bool) -> MobilityRequest:
    """A stage or cutover of east's shop into ``namespace`` of west, from a Ferry snapshot in repo east."""
    request = migrate_request(namespace)
    source = msgspec.structs.replace(request.source, snapshot=group)
    return msgspec.structs.replace(
        request, source=source, itinerary=["transfer", "restore", "verify"], **flags
    )


async def quiesced_capture(sandboxes: SandboxClusters, tmp_path: Path) -> str:
    """East's shop captured as a cutover's retry sees it: web scaled to zero by an earlier cutover,
    its replicas saved in Ferry's annotation (then put back as it was, for the other tests)."""
    east = kube_cluster(sandboxes, "east")
    notes = {REPLICAS: "2", SINCE: f"{time.time():.3f}"}
    try:
        quiesce = {"metadata": {"annotations": notes}, "spec": {"replicas": 0}}
        await east.patch("deployments.apps", "web", quiesce, namespace="shop")
        group, _ = await snapshot(east, "shop", Repository.open(LocalStore(tmp_path / "east"), PASSWORD))
        return group
    finally:
        back = {"metadata": {"annotations": {k: None for k in notes}}, "spec": {"replicas": 2}}
        await east.patch("deployments.apps", "web", back, namespace="shop")
        await east.close()


async def test_a_stage_lands_only_the_claims_then_a_cutover_lands_the_app_at_its_replicas(
    settings: Settings, sandboxes: SandboxClusters, east_shop: tuple[str, str], tmp_path: Path
) -> None:
    """A stage of the sample app: claims and their data in west, no workload; the cutover, from a
    capture of a quiesced source, refreshes the claims and lands web at its 2 replicas, not 0."""
    group, _ = east_shop
    stage = staged_request(group, "shop-staged", stage=True)
    async with ferry(settings) as client:
        staged = await client.wait(await client.submit(stage), within=150)
        assert staged.phase is Phase.COMPLETED, staged.reason
        west = kube_cluster(sandboxes, "west")
        try:
            claims = await west.list("persistentvolumeclaims", "shop-staged")
            assert sorted(c["metadata"]["name"] for c in claims) == ["pgdata-db-0", "web-uploads"]
            assert {c["metadata"]["labels"][PLAN_LABEL] for c in claims} == {plan_key(stage)}
            assert not await west.list("deployments.apps", "shop-staged")
            assert not await west.list("statefulsets.apps", "shop-staged")
            assert not await west.list("configmaps", "shop-staged", label_selector="ferry.dev/request")
            await assert_volumes_arrived(sandboxes, "shop-staged")
            cutover = staged_request(await quiesced_capture(sandboxes, tmp_path), "shop-staged", cutover=True)
            state = await client.wait(await client.submit(cutover), within=150)
            assert state.phase is Phase.COMPLETED, state.reason
            web = await west.get("deployments.apps", "web", "shop-staged")
            assert web["spec"]["replicas"] == 2 and REPLICAS not in (web["metadata"].get("annotations") or {})
            assert web["metadata"]["labels"][PLAN_LABEL] == plan_key(stage)
        finally:
            await west.close()
    restored = state.step_state(StepName.RESTORE).result
    assert restored is not None and restored.counts["volumes_refreshed"] == 2
    assert restored.counts["files_written"] == 0 and restored.counts["files_skipped"] == 11
    assert float(state.outputs["available_at"]) > 0
    assert "downtime_seconds" not in state.outputs  # no snapshot step said when it quiesced the source
    stage_result = staged.step_state(StepName.RESTORE).result
    assert stage_result is not None and stage_result.counts["volumes_created"] == 2
