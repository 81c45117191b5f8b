"""Local-path volumes: PVC binding, pre-bound PVs, reclaim, VolumeSnapshots and restores with the same bytes."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Any

import pytest
from kubernetes_asyncio import client

from sandbox import SandboxClusters
from tests.sandbox.conftest import eventually

SNAP = ("snapshot.storage.k8s.io", "v1")


def claim(name: str, size: str = "1Gi", **spec: Any) -> dict[str, Any]:
    return {
        "metadata": {"name": name},
        "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": size}}, **spec},
    }


async def bound(core: client.CoreV1Api, ns: str, name: str) -> Any:
    async def check() -> Any:
        pvc = await core.read_namespaced_persistent_volume_claim(name, ns)
        return pvc if pvc.status.phase == "Bound" else None

    return await eventually(check)


def digest(root: Path) -> dict[str, str]:
    out = {}
    for dirpath, _dirs, files in os.walk(root):
        for f in files:
            p = Path(dirpath) / f
            out[str(p.relative_to(root))] = hashlib.sha256(p.read_bytes()).hexdigest()
    return out


async def test_storage_classes_standard_is_the_default_and_fast_exists(api: client.ApiClient) -> None:
    classes = {c.metadata.name: c for c in (await client.StorageV1Api(api).list_storage_class()).items}
    assert classes["standard"].metadata.annotations["storageclass.kubernetes.io/is-default-class"] == "true"
    assert classes["fast"].provisioner == classes["standard"].provisioner == "sandbox.ferry.dev/local-path"


async def test_a_claim_is_provisioned_and_bound_like_the_pv_controller_does(
    api: client.ApiClient, ns: str, clusters: SandboxClusters
) -> None:
    core = client.CoreV1Api(api)
    await core.create_namespaced_persistent_volume_claim(ns, claim("data", "2Gi"))
    pvc = await bound(core, ns, "data")
    assert pvc.spec.storage_class_name == "standard"  # the default class was filled in
    assert pvc.metadata.annotations["pv.kubernetes.io/bind-completed"] == "yes"
    assert (
        pvc.metadata.annotations["volume.kubernetes.io/storage-provisioner"] == "sandbox.ferry.dev/local-path"
    )
    assert pvc.metadata.finalizers == ["kubernetes.io/pvc-protection"]
    assert pvc.status.capacity == {"storage": "2Gi"}
    pv = await core.read_persistent_volume(pvc.spec.volume_name)
    assert pv.status.phase == "Bound" and pv.spec.claim_ref.uid == pvc.metadata.uid
    assert pv.spec.persistent_volume_reclaim_policy == "Delete"
    assert "kubernetes.io/pv-protection" in pv.metadata.finalizers
    directory = clusters["east"].volume_path(pv.metadata.name)
    assert directory.is_dir()
    events = await core.list_namespaced_event(ns, field_selector="involvedObject.name=data")
    assert [e.reason for e in events.items] == ["ProvisioningSucceeded"]
    await core.delete_namespaced_persistent_volume_claim("data", ns)

    async def reclaimed() -> bool:
        names = [p.metadata.name for p in (await core.list_persistent_volume()).items]
        return pv.metadata.name not in names

    await eventually(reclaimed)
    assert not directory.exists()


async def test_a_pre_bound_volume_binds_to_the_claim_it_names(
    api: client.ApiClient, ns: str, tmp_path: Path
) -> None:
    core = client.CoreV1Api(api)
    pv_name = f"static-{ns}"
    await core.create_persistent_volume(
        {
            "metadata": {"name": pv_name},
            "spec": {
                "capacity": {"storage": "1Gi"},
                "accessModes": ["ReadWriteOnce"],
                "storageClassName": "",
                "hostPath": {"path": str(tmp_path)},
                "claimRef": {"namespace": ns, "name": "restored"},
            },
        }
    )
    await core.create_namespaced_persistent_volume_claim(ns, claim("restored", storageClassName=""))
    pvc = await bound(core, ns, "restored")
    assert pvc.spec.volume_name == pv_name
    pv = await core.read_persistent_volume(pv_name)
    assert pv.spec.claim_ref.uid == pvc.metadata.uid


async def _ready(custom: client.CustomObjectsApi, ns: str, name: str) -> dict[str, Any]:
    async def check() -> Any:
        vs = await custom.get_namespaced_custom_object(*SNAP, ns, "volumesnapshots", name)
        return vs if (vs.get("status") or {}).get("readyToUse") else None

    return await eventually(check)  # type: ignore[no-any-return]


async def test_a_snapshot_becomes_ready_and_a_claim_restored_from_it_has_the_same_bytes(
    api: client.ApiClient, ns: str, clusters: SandboxClusters
) -> None:
    core, custom = client.CoreV1Api(api), client.CustomObjectsApi(api)
    await core.create_namespaced_persistent_volume_claim(ns, claim("source"))
    source = await bound(core, ns, "source")
    src_dir = clusters["east"].volume_path(source.spec.volume_name)
    (src_dir / "sub").mkdir()
    (src_dir / "sub" / "blob.bin").write_bytes(os.urandom(100_000))
    (src_dir / "note.txt").write_text("hello\n")
    snapshot = {
        "apiVersion": "snapshot.storage.k8s.io/v1",
        "kind": "VolumeSnapshot",
        "metadata": {"name": "snap"},
        "spec": {"source": {"persistentVolumeClaimName": "source"}},
    }
    await custom.create_namespaced_custom_object(*SNAP, ns, "volumesnapshots", snapshot)
    vs = await _ready(custom, ns, "snap")
    assert vs["spec"]["volumeSnapshotClassName"] == "sandbox-snapclass"
    assert vs["status"]["restoreSize"] == "1Gi"
    content = await custom.get_cluster_custom_object(
        *SNAP, "volumesnapshotcontents", vs["status"]["boundVolumeSnapshotContentName"]
    )
    assert (
        content["status"]["readyToUse"] is True
        and content["spec"]["volumeSnapshotRef"]["uid"] == vs["metadata"]["uid"]
    )
    (src_dir / "note.txt").write_text("changed after the snapshot\n")
    source_ref = {"apiGroup": "snapshot.storage.k8s.io", "kind": "VolumeSnapshot", "name": "snap"}
    await core.create_namespaced_persistent_volume_claim(
        ns, claim("copy", storageClassName="fast", dataSource=source_ref)
    )
    restored = await bound(core, ns, "copy")
    copy_dir = clusters["east"].volume_path(restored.spec.volume_name)
    files = digest(copy_dir)
    assert files["sub/blob.bin"] == hashlib.sha256((src_dir / "sub" / "blob.bin").read_bytes()).hexdigest()
    assert (copy_dir / "note.txt").read_text() == "hello\n"


async def test_a_claim_cloned_from_another_claim_copies_its_data(
    api: client.ApiClient, ns: str, clusters: SandboxClusters
) -> None:
    core = client.CoreV1Api(api)
    await core.create_namespaced_persistent_volume_claim(ns, claim("origin"))
    origin = await bound(core, ns, "origin")
    (clusters["east"].volume_path(origin.spec.volume_name) / "data.txt").write_text("cloned")
    ref = {"kind": "PersistentVolumeClaim", "name": "origin"}
    await core.create_namespaced_persistent_volume_claim(ns, claim("clone", dataSourceRef=ref))
    clone = await bound(core, ns, "clone")
    assert (clusters["east"].volume_path(clone.spec.volume_name) / "data.txt").read_text() == "cloned"


KNOBS = [
    pytest.param(
        {"sandbox.ferry.dev/fail-snapshot": "disk on fire"},
        "disk on fire",
        id="a fail annotation makes the snapshot report that error",
    ),
    pytest.param({}, "is not bound", id="a snapshot of a missing claim reports an error"),
]


@pytest.mark.parametrize(("annotations", "error"), KNOBS)
async def test_snapshot_errors_are_reported_in_status(
    api: client.ApiClient, ns: str, annotations: dict[str, str], error: str
) -> None:
    custom = client.CustomObjectsApi(api)
    body = {
        "apiVersion": "snapshot.storage.k8s.io/v1",
        "kind": "VolumeSnapshot",
        "metadata": {"name": "bad", "annotations": annotations},
        "spec": {"source": {"persistentVolumeClaimName": "absent"}},
    }
    await custom.create_namespaced_custom_object(*SNAP, ns, "volumesnapshots", body)

    async def failed() -> Any:
        vs = await custom.get_namespaced_custom_object(*SNAP, ns, "volumesnapshots", "bad")
        return (vs.get("status") or {}).get("error")

    err = await eventually(failed)
    assert error in err["message"]


async def test_a_delayed_snapshot_is_not_ready_at_first(api: client.ApiClient, ns: str) -> None:
    core, custom = client.CoreV1Api(api), client.CustomObjectsApi(api)
    await core.create_namespaced_persistent_volume_claim(ns, claim("slow"))
    await bound(core, ns, "slow")
    body = {
        "apiVersion": "snapshot.storage.k8s.io/v1",
        "kind": "VolumeSnapshot",
        "metadata": {"name": "later", "annotations": {"sandbox.ferry.dev/ready-after-seconds": "0.5"}},
        "spec": {"source": {"persistentVolumeClaimName": "slow"}},
    }
    await custom.create_namespaced_custom_object(*SNAP, ns, "volumesnapshots", body)

    async def bound_not_ready() -> Any:
        vs = await custom.get_namespaced_custom_object(*SNAP, ns, "volumesnapshots", "later")
        status = vs.get("status") or {}
        return status.get("boundVolumeSnapshotContentName") and status.get("readyToUse") is False

    await eventually(bound_not_ready)
    await _ready(custom, ns, "later")


async def test_deleting_a_snapshot_deletes_its_content_and_data(
    api: client.ApiClient, ns: str, clusters: SandboxClusters
) -> None:
    core, custom = client.CoreV1Api(api), client.CustomObjectsApi(api)
    await core.create_namespaced_persistent_volume_claim(ns, claim("vol"))
    await bound(core, ns, "vol")
    body = {
        "apiVersion": "snapshot.storage.k8s.io/v1",
        "kind": "VolumeSnapshot",
        "metadata": {"name": "gone"},
        "spec": {"source": {"persistentVolumeClaimName": "vol"}},
    }
    await custom.create_namespaced_custom_object(*SNAP, ns, "volumesnapshots", body)
    vs = await _ready(custom, ns, "gone")
    content_name = vs["status"]["boundVolumeSnapshotContentName"]
    content = await custom.get_cluster_custom_object(*SNAP, "volumesnapshotcontents", content_name)
    data = clusters["east"].data_dir / "snapshots" / content["status"]["snapshotHandle"]
    assert data.is_dir()
    await custom.delete_namespaced_custom_object(*SNAP, ns, "volumesnapshots", "gone")

    async def all_gone() -> bool:
        names = [
            c["metadata"]["name"]
            for c in (await custom.list_cluster_custom_object(*SNAP, "volumesnapshotcontents"))["items"]
        ]
        snaps = (await custom.list_namespaced_custom_object(*SNAP, ns, "volumesnapshots"))["items"]
        return content_name not in names and not snaps

    await eventually(all_gone)
    assert not data.exists()


async def test_a_claim_restored_verbatim_with_its_binding_annotation_is_lost(
    api: client.ApiClient, ns: str
) -> None:
    core = client.CoreV1Api(api)
    body = claim("verbatim", volumeName="pvc-from-the-source-cluster")
    body["metadata"]["annotations"] = {"pv.kubernetes.io/bind-completed": "yes"}
    await core.create_namespaced_persistent_volume_claim(ns, body)

    async def lost() -> bool:
        pvc = await core.read_namespaced_persistent_volume_claim("verbatim", ns)
        return pvc.status.phase == "Lost"

    await eventually(lost)


async def test_a_pre_provisioned_snapshot_binds_and_restores_its_data(
    api: client.ApiClient, ns: str, clusters: SandboxClusters, unique: str
) -> None:
    core, custom = client.CoreV1Api(api), client.CustomObjectsApi(api)
    handle = f"imported-{unique}"
    data = clusters["east"].data_dir / "snapshots" / handle
    data.mkdir(parents=True)
    (data / "payload.bin").write_bytes(b"\x00\x01imported")
    content = {
        "apiVersion": "snapshot.storage.k8s.io/v1",
        "kind": "VolumeSnapshotContent",
        "metadata": {"name": f"content-{unique}"},
        "spec": {
            "deletionPolicy": "Retain",
            "driver": "sandbox.ferry.dev/local-path",
            "source": {"snapshotHandle": handle},
            "volumeSnapshotRef": {"name": "imported", "namespace": ns},
        },
    }
    await custom.create_cluster_custom_object(*SNAP, "volumesnapshotcontents", content)
    snapshot = {
        "apiVersion": "snapshot.storage.k8s.io/v1",
        "kind": "VolumeSnapshot",
        "metadata": {"name": "imported"},
        "spec": {"source": {"volumeSnapshotContentName": f"content-{unique}"}},
    }
    await custom.create_namespaced_custom_object(*SNAP, ns, "volumesnapshots", snapshot)
    vs = await _ready(custom, ns, "imported")
    assert vs["status"]["boundVolumeSnapshotContentName"] == f"content-{unique}"
    bound_content = await custom.get_cluster_custom_object(
        *SNAP, "volumesnapshotcontents", f"content-{unique}"
    )
    assert bound_content["spec"]["volumeSnapshotRef"]["uid"] == vs["metadata"]["uid"]
    ref = {"apiGroup": "snapshot.storage.k8s.io", "kind": "VolumeSnapshot", "name": "imported"}
    await core.create_namespaced_persistent_volume_claim(ns, claim("from-import", dataSourceRef=ref))
    restored = await bound(core, ns, "from-import")
    assert (
        clusters["east"].volume_path(restored.spec.volume_name) / "payload.bin"
    ).read_bytes() == b"\x00\x01imported"


async def test_a_retained_volume_is_released_and_kept_with_its_data_when_its_claim_goes(
    api: client.ApiClient, ns: str, clusters: SandboxClusters, unique: str
) -> None:
    core, storage = client.CoreV1Api(api), client.StorageV1Api(api)
    keep = f"keep-{unique}"
    await storage.create_storage_class(
        {
            "metadata": {"name": keep},
            "provisioner": "sandbox.ferry.dev/local-path",
            "reclaimPolicy": "Retain",
            "volumeBindingMode": "Immediate",
        }
    )
    await core.create_namespaced_persistent_volume_claim(ns, claim("kept", storageClassName=keep))
    await core.create_namespaced_persistent_volume_claim(ns, claim("dropped"))
    kept_pv = (await bound(core, ns, "kept")).spec.volume_name
    dropped_pv = (await bound(core, ns, "dropped")).spec.volume_name
    assert (await core.read_persistent_volume(kept_pv)).spec.persistent_volume_reclaim_policy == "Retain"
    directory = clusters["east"].volume_path(kept_pv)
    (directory / "precious.txt").write_text("keep me")
    await core.delete_namespaced_persistent_volume_claim("kept", ns)
    await core.delete_namespaced_persistent_volume_claim("dropped", ns)

    async def delete_policy_reclaimed() -> bool:  # the same controller has handled both by then
        names = [p.metadata.name for p in (await core.list_persistent_volume()).items]
        return dropped_pv not in names

    async def released() -> Any:
        pv = await core.read_persistent_volume(kept_pv)
        return pv if pv.status.phase == "Released" else None

    await eventually(delete_policy_reclaimed)
    pv = await eventually(released)
    assert pv.metadata.deletion_timestamp is None
    assert pv.spec.claim_ref.name == "kept"  # still names the claim that is gone, as on a real cluster
    assert (directory / "precious.txt").read_text() == "keep me"
    await core.delete_persistent_volume(kept_pv)
    await storage.delete_storage_class(keep)

    async def pv_gone() -> bool:
        return kept_pv not in [p.metadata.name for p in (await core.list_persistent_volume()).items]

    await eventually(pv_gone)
    assert (directory / "precious.txt").read_text() == "keep me"  # deleting a Retain PV keeps the data


async def test_a_retained_snapshot_content_outlives_its_snapshot_with_its_data(
    api: client.ApiClient, ns: str, clusters: SandboxClusters, unique: str
) -> None:
    core, custom = client.CoreV1Api(api), client.CustomObjectsApi(api)
    keep = f"keep-{unique}"
    snap_class = {
        "apiVersion": "snapshot.storage.k8s.io/v1",
        "kind": "VolumeSnapshotClass",
        "metadata": {"name": keep},
        "driver": "sandbox.ferry.dev/local-path",
        "deletionPolicy": "Retain",
    }
    await custom.create_cluster_custom_object(*SNAP, "volumesnapshotclasses", snap_class)
    await core.create_namespaced_persistent_volume_claim(ns, claim("vol"))
    await bound(core, ns, "vol")
    body = {
        "apiVersion": "snapshot.storage.k8s.io/v1",
        "kind": "VolumeSnapshot",
        "metadata": {"name": "kept"},
        "spec": {"volumeSnapshotClassName": keep, "source": {"persistentVolumeClaimName": "vol"}},
    }
    await custom.create_namespaced_custom_object(*SNAP, ns, "volumesnapshots", body)
    content_name = (await _ready(custom, ns, "kept"))["status"]["boundVolumeSnapshotContentName"]
    content = await custom.get_cluster_custom_object(*SNAP, "volumesnapshotcontents", content_name)
    assert content["spec"]["deletionPolicy"] == "Retain"
    data = clusters["east"].data_dir / "snapshots" / content["status"]["snapshotHandle"]
    await custom.delete_namespaced_custom_object(*SNAP, ns, "volumesnapshots", "kept")

    async def snapshot_gone() -> bool:  # its finalizers go once the content's fate is settled
        return not (await custom.list_namespaced_custom_object(*SNAP, ns, "volumesnapshots"))["items"]

    await eventually(snapshot_gone)
    kept = await custom.get_cluster_custom_object(*SNAP, "volumesnapshotcontents", content_name)
    assert kept["metadata"].get("deletionTimestamp") is None and kept["status"]["readyToUse"] is True
    assert kept["spec"]["volumeSnapshotRef"]["name"] == "kept"
    assert data.is_dir()
    await custom.delete_cluster_custom_object(*SNAP, "volumesnapshotcontents", content_name)
    await custom.delete_cluster_custom_object(*SNAP, "volumesnapshotclasses", keep)

    async def content_gone() -> bool:
        contents = (await custom.list_cluster_custom_object(*SNAP, "volumesnapshotcontents"))["items"]
        return content_name not in [c["metadata"]["name"] for c in contents]

    await eventually(content_gone)
    assert data.is_dir()  # deleting a Retain content keeps the snapshot's data
