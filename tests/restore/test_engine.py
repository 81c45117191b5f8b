"""The restore engine's logic on an in-memory cluster: volumes before workloads, failures reported
per object, conflict policies, dry run, and what is reported when something never comes up."""

from __future__ import annotations

import asyncio
import copy
from typing import Any

import pytest

from services.restore import modifiers
from services.restore.manifests import VolumeRecord
from services.restore.restoring import Restore, prepare, rendered
from services.restore.service import problems_of
from services.restore.transforming import Transforms
from shared.contracts.reports import Outcome, VolumeResult
from shared.contracts.requests import ConflictPolicy, ExistingVolumes
from shared.kube.objects import Manifest
from tests.restore.fakes import FakeCluster

APP: list[dict[str, Any]] = [
    {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "shop"}},
    {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "conf", "namespace": "shop"}, "data": {"a": "1"}},
    {"apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": {"name": "data", "namespace": "shop"},
     "spec": {"storageClassName": "gp2", "accessModes": ["ReadWriteOnce"], "volumeName": "pv-1"}},
    {"apiVersion": "v1", "kind": "PersistentVolume", "metadata": {"name": "pv-1"},
     "spec": {"claimRef": {"name": "data", "namespace": "shop"}}},
    {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web", "namespace": "shop"},
     "spec": {"replicas": 1, "template": {"spec": {
         "volumes": [{"name": "d", "persistentVolumeClaim": {"claimName": "data"}}],
         "containers": [{"name": "web", "image": "nginx", "envFrom": [{"configMapRef": {"name": "conf"}}]}]}}}},
    {"apiVersion": "apps/v1", "kind": "ReplicaSet", "metadata": {"name": "web-1", "namespace": "shop",
     "ownerReferences": [{"kind": "Deployment", "name": "web"}]}},
    {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "web", "namespace": "shop"},
     "spec": {"clusterIP": "10.0.0.1", "ports": [{"port": 80}]}},
]  # fmt: skip
VOLUMES = {("shop", "data"): VolumeRecord("snap-1", "shop", "data", 100)}
T = Transforms(namespace_map={"shop": "shop-west"}, storage_class_map={"gp2": "standard"},
               labels={"ferry.dev/request": "r1"})  # fmt: skip


def app() -> list[Manifest]:
    return [Manifest(copy.deepcopy(o)) for o in APP]


def engine(cluster: FakeCluster, *, policy: ConflictPolicy = ConflictPolicy.SKIP, dry_run: bool = False,
           fail_volume: str = "", rules: str = "", extra: list[dict[str, Any]] | None = None,
           existing: ExistingVolumes = ExistingVolumes.AUTO) -> Restore:  # fmt: skip
    async def fill(claim: Manifest, record: VolumeRecord, delta: bool) -> VolumeResult:
        cluster.journal.append(f"fill-start {claim.key}" + (" delta" if delta else ""))
        live = cluster.objects.get(WEB)
        if live is not None:  # what the workload that mounts the claim looked like during the copy
            cluster.journal.append(f"web replicas during the fill: {live['spec'].get('replicas')}")
        await asyncio.sleep(0.05)
        cluster.journal.append(f"fill-done {claim.key}")
        ok = claim.name != fail_volume
        return VolumeResult(claim=f"{claim.namespace}/{claim.name}", snapshot=record.snapshot_id, ok=ok,
                            reason="" if ok else "mover Job failed: exit 15 (damaged)")  # fmt: skip

    plan = prepare(app() + [Manifest(copy.deepcopy(o)) for o in extra or []], T, modifiers.parse(rules))
    return Restore(cluster, plan, policy=policy, dry_run=dry_run, volumes=VOLUMES, fill=fill,
                   source_namespace=lambda ns: {"shop-west": "shop"}.get(ns, ns), timeout=2,
                   existing=existing)  # fmt: skip


def outcome_of(report: Any, key: str) -> Any:
    return next(r for r in report.objects if r.target == key or r.key == key)


async def test_volumes_are_filled_before_the_workloads_that_mount_them() -> None:
    cluster = FakeCluster()
    report = await engine(cluster).run()
    journal = cluster.journal
    claim, web = "persistentvolumeclaims/shop-west/data", "deployments.apps/shop-west/web"
    assert journal.index(f"fill-done {claim}") < journal.index(f"create {web}")
    assert journal.index("create namespaces/shop-west") == 0
    assert outcome_of(report, web).outcome is Outcome.CREATED
    assert report.volumes[0].ok and report.waited[web] == "ready"
    pvc = cluster.objects[claim]
    assert pvc["spec"]["storageClassName"] == "standard" and "volumeName" not in pvc["spec"]
    assert pvc["metadata"]["labels"]["ferry.dev/request"] == "r1"
    skipped = {r.key: r.reason for r in report.objects if r.outcome is Outcome.SKIPPED}
    assert "owned by Deployment/web" in skipped["replicasets.apps/shop/web-1"]
    assert "new volume" in skipped["persistentvolumes/pv-1"]


async def test_a_failed_volume_keeps_its_workload_from_starting_and_says_why() -> None:
    cluster = FakeCluster()
    report = await engine(cluster, fail_volume="data").run()
    web = outcome_of(report, "deployments.apps/shop-west/web")
    assert web.outcome is Outcome.FAILED
    assert "volume shop-west/data was not restored: mover Job failed" in web.reason
    assert "deployments.apps/shop-west/web" not in cluster.objects
    assert outcome_of(report, "services/shop-west/web").outcome is Outcome.CREATED  # the rest still lands


async def test_an_api_refusal_fails_that_object_with_the_message() -> None:
    cluster = FakeCluster(
        refuse={"configmaps/shop-west/conf": 'admission webhook "policy" denied the request'}
    )
    report = await engine(cluster).run()
    conf = outcome_of(report, "configmaps/shop-west/conf")
    assert conf.outcome is Outcome.FAILED and "denied the request" in conf.reason


async def test_a_modifier_error_fails_only_that_object() -> None:
    rules = """version: v1
resourceModifierRules:
- conditions: {groupResource: configmaps}
  patches: [{operation: replace, path: /data/missing/deep, value: x}]
"""
    report = await engine(FakeCluster(), rules=rules).run()
    assert outcome_of(report, "configmaps/shop/conf").outcome is Outcome.FAILED
    assert outcome_of(report, "services/shop-west/web").outcome is Outcome.CREATED


async def test_dry_run_renders_and_diffs_without_writing() -> None:
    cluster = FakeCluster()
    cluster.put({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "conf", "namespace": "shop-west"},
                 "data": {"a": "2"}})  # fmt: skip
    run = engine(cluster, dry_run=True, policy=ConflictPolicy.UPDATE)
    report = await run.run()
    assert cluster.writes == [], "a dry run wrote to the cluster"
    conf = outcome_of(report, "configmaps/shop-west/conf")
    assert conf.outcome is Outcome.PLANNED and conf.reason == "would be updated"
    assert conf.diff == ["data.a: '2' in the target, '1' in the snapshot"]
    assert outcome_of(report, "deployments.apps/shop-west/web").reason == "would be created"
    docs = rendered(run.plan)
    assert docs[0]["metadata"]["name"] == "shop-west"
    assert all("status" not in d for d in docs)


@pytest.mark.parametrize(
    ("policy", "outcome", "data"),
    [
        (ConflictPolicy.SKIP, Outcome.SKIPPED, {"a": "2"}),
        (ConflictPolicy.UPDATE, Outcome.UPDATED, {"a": "1"}),
        (ConflictPolicy.RECREATE, Outcome.RECREATED, {"a": "1"}),
        (ConflictPolicy.FAIL, Outcome.FAILED, {"a": "2"}),
    ],
    ids=["skip leaves it", "update patches it", "recreate replaces it", "fail fails it"],
)
async def test_conflict_policies(policy: ConflictPolicy, outcome: Outcome, data: dict[str, str]) -> None:
    cluster = FakeCluster()
    cluster.put({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "conf", "namespace": "shop-west"},
                 "data": {"a": "2"}})  # fmt: skip
    report = await engine(cluster, policy=policy).run()
    conf = outcome_of(report, "configmaps/shop-west/conf")
    assert conf.outcome is outcome
    assert cluster.objects["configmaps/shop-west/conf"]["data"] == data
    if outcome in (Outcome.SKIPPED, Outcome.FAILED):
        assert "already exists and differs" in conf.reason and conf.diff


async def test_an_identical_object_is_unchanged_under_every_policy() -> None:
    for policy in ConflictPolicy:
        cluster = FakeCluster()
        await engine(cluster).run()
        again = await engine(cluster, policy=policy).run()
        conf = outcome_of(again, "configmaps/shop-west/conf")
        assert conf.outcome is Outcome.UNCHANGED, policy


async def test_a_retried_restore_fills_the_claims_it_created_before_and_only_those() -> None:
    cluster = FakeCluster()
    await engine(cluster).run()  # the first attempt (its fills may not have finished)
    again = await engine(cluster).run()  # redelivery: same request id, same labels
    assert again.volumes[0].ok and again.volumes[0].reason == ""  # filled again: it is ours
    assert cluster.journal.count("fill-start persistentvolumeclaims/shop-west/data") == 2


def existing_claim(cluster: FakeCluster, labels: dict[str, str]) -> None:
    cluster.put({"apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": {"name": "data", "namespace": "shop-west",
                 "labels": labels}, "spec": {"storageClassName": "standard", "accessModes": ["ReadWriteOnce"]},
                 "status": {"phase": "Bound"}})  # fmt: skip


@pytest.mark.parametrize(
    ("labels", "existing", "action", "ok", "reason"),
    [
        pytest.param({"ferry.dev/request": "an-earlier-run"}, ExistingVolumes.AUTO, "refreshed", True, "",
                     id="a claim an earlier Ferry run made is refreshed by default"),
        pytest.param({}, ExistingVolumes.AUTO, "kept", True, "not made by Ferry",
                     id="a claim Ferry did not make is kept by default"),
        pytest.param({}, ExistingVolumes.REFRESH, "refreshed", True, "",
                     id="a claim Ferry did not make is refreshed when the request says refresh"),
        pytest.param({"ferry.dev/request": "an-earlier-run"}, ExistingVolumes.KEEP, "kept", True, "kept by policy",
                     id="keep leaves even a claim Ferry made"),
        pytest.param({"ferry.dev/request": "an-earlier-run"}, ExistingVolumes.FAIL, "failed", False, "already exists",
                     id="fail writes nothing into an existing claim"),
    ],
)  # fmt: skip
async def test_an_existing_claim_follows_the_volume_policy(
    labels: dict[str, str], existing: ExistingVolumes, action: str, ok: bool, reason: str
) -> None:
    cluster = FakeCluster()
    existing_claim(cluster, labels)
    report = await engine(cluster, existing=existing).run()
    volume = report.volumes[0]
    assert (volume.action, volume.ok) == (action, ok) and reason in volume.reason
    fills = [line for line in cluster.journal if line.startswith("fill-start")]
    assert fills == (
        ["fill-start persistentvolumeclaims/shop-west/data delta"] if action == "refreshed" else []
    )
    if not ok:  # a workload is never started on a claim that was not filled
        assert outcome_of(report, WEB).outcome is Outcome.FAILED


@pytest.mark.parametrize(
    ("annotations", "replicas", "back_to"),
    [
        pytest.param({}, 3, 3, id="a running workload is scaled to zero for the refresh and back to 3"),
        pytest.param({"ferry.dev/replicas-before-refresh": "5"}, 0, 5,
                     id="after a crash mid-refresh the replicas come from the annotation, not the zero"),
    ],
)  # fmt: skip
async def test_workloads_that_mount_a_refreshed_claim_are_quiet_during_the_copy(
    annotations: dict[str, str], replicas: int, back_to: int
) -> None:
    cluster = FakeCluster()
    existing_claim(cluster, {"ferry.dev/request": "an-earlier-run"})
    web = copy.deepcopy(APP[4])
    web["metadata"] = {"name": "web", "namespace": "shop-west", "annotations": annotations}
    web["spec"]["replicas"] = replicas
    cluster.put(web)
    report = await engine(cluster).run()
    assert report.volumes[0].action == "refreshed"
    assert "web replicas during the fill: 0" in cluster.journal
    live = cluster.objects[WEB]
    assert live["spec"]["replicas"] == back_to
    assert "ferry.dev/replicas-before-refresh" not in (live["metadata"].get("annotations") or {})


WEB = "deployments.apps/shop-west/web"
CRD = "customresourcedefinitions.apiextensions.k8s.io/promotions.shop.example.com"
PROMOTIONS: list[dict[str, Any]] = [
    {"apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
     "metadata": {"name": "promotions.shop.example.com"},
     "spec": {"group": "shop.example.com", "scope": "Namespaced",
              "names": {"plural": "promotions", "singular": "promotion", "kind": "Promotion"},
              "versions": [{"name": "v1", "served": True, "storage": True}]}},
    {"apiVersion": "shop.example.com/v1", "kind": "Promotion", "metadata": {"name": "spring", "namespace": "shop"},
     "spec": {"discount": 10}},
    {"apiVersion": "shop.example.com/v1", "kind": "Promotion", "metadata": {"name": "summer", "namespace": "shop"},
     "spec": {"discount": 20}},
]  # fmt: skip


async def test_a_workload_that_never_becomes_available_is_reported_not_ready_with_its_status() -> None:
    stuck = {"replicas": 1, "availableReplicas": 0, "conditions": [
        {"type": "Progressing", "status": "False", "reason": "ProgressDeadlineExceeded",
         "message": 'ReplicaSet "web-1" has timed out progressing.'}]}  # fmt: skip
    cluster = FakeCluster(stuck={WEB: stuck})
    report = await asyncio.wait_for(engine(cluster).run(), timeout=30)
    assert outcome_of(report, WEB).outcome is Outcome.CREATED  # the API took it; it never came up
    why = 'not ready after 2s: 0/1 replicas available; ReplicaSet "web-1" has timed out progressing.'
    assert report.waited[WEB] == why
    assert report.waited["persistentvolumeclaims/shop-west/data"] == "ready"
    assert problems_of(report) == [f"{WEB}: {why}"]  # what makes the step PartiallyFailed


async def test_a_crd_never_established_fails_its_custom_resources_and_blocks_nothing_else() -> None:
    names_conflict = {"conditions": [
        {"type": "NamesAccepted", "status": "False", "reason": "AllNamesConflict"},
        {"type": "Established", "status": "False", "reason": "NotAccepted"}]}  # fmt: skip
    cluster = FakeCluster(stuck={CRD: names_conflict})
    report = await asyncio.wait_for(engine(cluster, extra=PROMOTIONS).run(), timeout=30)
    why = "its CRD promotions.shop.example.com is not established: not established yet"
    for name in ("spring", "summer"):
        promotion = outcome_of(report, f"promotions.shop.example.com/shop-west/{name}")
        assert (promotion.outcome, promotion.reason) == (Outcome.FAILED, why)
        assert f"promotions.shop.example.com/shop-west/{name}" not in cluster.objects, "written anyway"
    assert outcome_of(report, CRD).outcome is Outcome.CREATED
    assert report.waited[CRD] == "not ready after 2s: not established yet"
    for other in ("configmaps/shop-west/conf", WEB, "services/shop-west/web"):
        assert outcome_of(report, other).outcome is Outcome.CREATED, other  # the rest still lands
    assert report.waited[WEB] == "ready" and report.volumes[0].ok
    assert sorted(problems_of(report)) == sorted(
        [f"promotions.shop.example.com/shop-west/{n}: {why}" for n in ("spring", "summer")]
        + [f"{CRD}: not ready after 2s: not established yet"]
    )
