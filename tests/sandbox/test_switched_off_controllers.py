"""Each controller can be switched off (``SandboxOptions``): what it would have done then never happens.

Every case starts its own cluster with one controller off, sets up what that controller would act
on, then waits for another controller to act on something created afterwards (controllers react
within milliseconds, so by then a running one would have acted too) and checks that nothing did.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from kubernetes_asyncio import client

from sandbox import SandboxCluster, SandboxOptions
from tests.sandbox.conftest import eventually

NS = "default"
SNAP = ("snapshot.storage.k8s.io", "v1")
LOCAL_PATH = "sandbox.ferry.dev/local-path"
LABELS = {"app": "web"}


def claim(name: str, storage_class: str | None = None) -> dict[str, Any]:
    spec: dict[str, Any] = {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}}
    if storage_class:
        spec["storageClassName"] = storage_class
    return {"metadata": {"name": name}, "spec": spec}


async def bound(api: client.ApiClient, name: str) -> Any:
    core = client.CoreV1Api(api)

    async def check() -> Any:
        pvc = await core.read_namespaced_persistent_volume_claim(name, NS)
        return pvc if pvc.status.phase == "Bound" else None

    return await eventually(check)


async def _without_storage(api: client.ApiClient, cluster: SandboxCluster) -> None:
    core, storage, apps = client.CoreV1Api(api), client.StorageV1Api(api), client.AppsV1Api(api)
    assert (await storage.list_storage_class()).items == []  # nor are the classes seeded
    body = {"metadata": {"name": "by-hand"}, "provisioner": LOCAL_PATH, "volumeBindingMode": "Immediate"}
    await storage.create_storage_class(body)
    await core.create_namespaced_persistent_volume_claim(NS, claim("data", "by-hand"))
    deployment = {
        "metadata": {"name": "after"},
        "spec": {
            "selector": {"matchLabels": LABELS},
            "template": {
                "metadata": {"labels": LABELS},
                "spec": {"containers": [{"name": "c", "image": "x"}]},
            },
        },
    }
    await apps.create_namespaced_deployment(NS, deployment)

    async def workloads_acted() -> bool:
        return bool((await apps.read_namespaced_deployment("after", NS)).status.available_replicas)

    await eventually(workloads_acted)
    pvc = await core.read_namespaced_persistent_volume_claim("data", NS)
    assert pvc.status.phase == "Pending" and pvc.spec.volume_name is None
    assert (await core.list_persistent_volume()).items == []


async def _without_snapshots(api: client.ApiClient, cluster: SandboxCluster) -> None:
    core, custom = client.CoreV1Api(api), client.CustomObjectsApi(api)
    assert (await custom.list_cluster_custom_object(*SNAP, "volumesnapshotclasses"))["items"] == []
    snap_class = {
        "apiVersion": "snapshot.storage.k8s.io/v1",
        "kind": "VolumeSnapshotClass",
        "metadata": {"name": "by-hand"},
        "driver": LOCAL_PATH,
        "deletionPolicy": "Delete",
    }
    await custom.create_cluster_custom_object(*SNAP, "volumesnapshotclasses", snap_class)
    await core.create_namespaced_persistent_volume_claim(NS, claim("data"))
    await bound(api, "data")
    snapshot = {
        "apiVersion": "snapshot.storage.k8s.io/v1",
        "kind": "VolumeSnapshot",
        "metadata": {"name": "snap"},
        "spec": {"volumeSnapshotClassName": "by-hand", "source": {"persistentVolumeClaimName": "data"}},
    }
    await custom.create_namespaced_custom_object(*SNAP, NS, "volumesnapshots", snapshot)
    await core.create_namespaced_persistent_volume_claim(NS, claim("after"))
    await bound(api, "after")
    vs = await custom.get_namespaced_custom_object(*SNAP, NS, "volumesnapshots", "snap")
    assert "status" not in vs and not vs["metadata"].get("finalizers")
    assert (await custom.list_cluster_custom_object(*SNAP, "volumesnapshotcontents"))["items"] == []
    assert not (cluster.data_dir / "snapshots").exists()


async def _without_workloads(api: client.ApiClient, cluster: SandboxCluster) -> None:
    core, apps, batch = client.CoreV1Api(api), client.AppsV1Api(api), client.BatchV1Api(api)
    template = {"metadata": {"labels": LABELS}, "spec": {"containers": [{"name": "c", "image": "nginx"}]}}
    selector = {"matchLabels": LABELS}
    await apps.create_namespaced_deployment(
        NS, {"metadata": {"name": "web"}, "spec": {"selector": selector, "template": template}}
    )
    sts = {"serviceName": "db", "selector": selector, "template": template}
    sts["volumeClaimTemplates"] = [claim("pgdata")]
    await apps.create_namespaced_stateful_set(NS, {"metadata": {"name": "db"}, "spec": sts})
    job = {
        "template": {"spec": {"restartPolicy": "Never", "containers": [{"name": "c", "image": "busybox"}]}}
    }
    await batch.create_namespaced_job(NS, {"metadata": {"name": "other"}, "spec": job})
    await core.create_namespaced_persistent_volume_claim(NS, claim("after"))
    await bound(api, "after")
    deployment = await apps.read_namespaced_deployment("web", NS)
    assert deployment.status is None or not (deployment.status.replicas or deployment.status.conditions)
    stateful = await apps.read_namespaced_stateful_set("db", NS)
    assert stateful.status is None or not stateful.status.ready_replicas
    claims = [c.metadata.name for c in (await core.list_namespaced_persistent_volume_claim(NS)).items]
    assert claims == ["after"]  # no pgdata-db-0 from the volumeClaimTemplate
    other = await batch.read_namespaced_job("other", NS)
    assert other.status is None or not (other.status.succeeded or other.status.conditions)


async def _without_kubelet(api: client.ApiClient, cluster: SandboxCluster) -> None:
    core, batch = client.CoreV1Api(api), client.BatchV1Api(api)
    await core.create_namespaced_persistent_volume_claim(NS, claim("data"))
    pv_dir = cluster.volume_path((await bound(api, "data")).spec.volume_name)
    container = {
        "name": "mover",
        "image": "ghcr.io/ferry-dev/ferry:test",
        "command": ["python", "-c", "import sys; open(sys.argv[1] + '/ran', 'w').close()", "/data"],
        "volumeMounts": [{"name": "data", "mountPath": "/data"}],
    }
    pod_spec = {
        "restartPolicy": "Never",
        "containers": [container],
        "volumes": [{"name": "data", "persistentVolumeClaim": {"claimName": "data"}}],
    }
    body = {"metadata": {"name": "mover"}, "spec": {"backoffLimit": 0, "template": {"spec": pod_spec}}}
    await batch.create_namespaced_job(NS, body)

    async def settled() -> Any:  # without a kubelet the workloads controller reports it, as any Job
        job = await batch.read_namespaced_job("mover", NS)
        return job if any(c.type == "Complete" for c in job.status.conditions or []) else None

    await eventually(settled)
    assert (await core.list_namespaced_pod(NS)).items == []
    assert not (pv_dir / "ran").exists()  # the command never ran
    events = await core.list_namespaced_event(NS, field_selector="involvedObject.name=mover")
    assert "SuccessfulCreate" not in [e.reason for e in events.items]


Case = Callable[[client.ApiClient, SandboxCluster], Awaitable[None]]

SWITCHED_OFF = [
    pytest.param(
        SandboxOptions(storage=False),
        _without_storage,
        id="without storage no class is seeded and a claim of a local-path class stays Pending",
    ),
    pytest.param(
        SandboxOptions(snapshots=False),
        _without_snapshots,
        id="without snapshots no class is seeded and a VolumeSnapshot gets no status or content",
    ),
    pytest.param(
        SandboxOptions(workloads=False),
        _without_workloads,
        id="without workloads a Deployment, StatefulSet and Job get no status and no claims are made",
    ),
    pytest.param(
        SandboxOptions(kubelet=False),
        _without_kubelet,
        id="without the kubelet a Ferry-image Job gets no pod and its command never runs",
    ),
]


@pytest.mark.parametrize(("options", "case"), SWITCHED_OFF)
async def test_a_switched_off_controller_does_nothing(
    tmp_path: Path, options: SandboxOptions, case: Case
) -> None:
    async with SandboxCluster("partial", tmp_path, options=options) as cluster:
        api = client.ApiClient(client.Configuration(host=cluster.url))
        try:
            await case(api, cluster)
        finally:
            await api.close()
