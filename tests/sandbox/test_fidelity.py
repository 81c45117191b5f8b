"""Where real manifests showed the sandbox differing from a real API server (issue 21, item 6)."""

from __future__ import annotations

import base64
import json
import os
from pathlib import Path
from typing import Any

import pytest
from kubernetes_asyncio import client

from sandbox import SandboxClusters
from tests.sandbox.conftest import eventually
from tests.sandbox.test_kubectl import Kubectl

CLAIM = {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}}


@pytest.mark.parametrize(
    ("patch", "message"),
    [
        pytest.param(
            {"provisioner": "other.csi"},
            "provisioner: Forbidden: updates to provisioner are forbidden.",
            id="provisioner",
        ),
        pytest.param(
            {"parameters": {"tier": "slow"}},
            "parameters: Forbidden: updates to parameters are forbidden.",
            id="parameters",
        ),
        pytest.param(
            {"reclaimPolicy": "Retain"},
            "reclaimPolicy: Forbidden: updates to reclaimPolicy are forbidden.",
            id="reclaim policy",
        ),
        pytest.param(
            {"volumeBindingMode": "WaitForFirstConsumer"},
            'volumeBindingMode: Invalid value: "WaitForFirstConsumer": field is immutable',
            id="binding mode",
        ),
    ],
)
async def test_a_storage_class_s_provisioner_parameters_and_policies_are_immutable(
    api: client.ApiClient, unique: str, patch: dict[str, Any], message: str
) -> None:
    storage = client.StorageV1Api(api)
    body = {
        "metadata": {"name": f"sc-{unique}"},
        "provisioner": "sandbox.ferry.dev/local-path",
        "parameters": {"tier": "fast"},
    }
    created = await storage.create_storage_class(body)
    assert (created.reclaim_policy, created.volume_binding_mode) == ("Delete", "Immediate")  # defaults
    with pytest.raises(client.ApiException) as refused:
        await storage.patch_storage_class(f"sc-{unique}", patch)
    assert refused.value.status == 422
    assert message in json.loads(refused.value.body)["message"]
    labelled = await storage.patch_storage_class(f"sc-{unique}", {"metadata": {"labels": {"a": "b"}}})
    assert labelled.provisioner == "sandbox.ferry.dev/local-path"  # other fields still change


async def test_the_beta_storage_class_annotation_chooses_the_claim_s_class(
    api: client.ApiClient, ns: str
) -> None:
    core = client.CoreV1Api(api)
    meta = {"name": "data", "annotations": {"volume.beta.kubernetes.io/storage-class": "fast"}}
    created = await core.create_namespaced_persistent_volume_claim(ns, {"metadata": meta, "spec": CLAIM})
    assert created.spec.storage_class_name is None  # no default class written over the annotation

    async def bound() -> Any:
        pvc = await core.read_namespaced_persistent_volume_claim("data", ns)
        return pvc if pvc.status.phase == "Bound" else None

    pvc = await eventually(bound)
    assert (await core.read_persistent_volume(pvc.spec.volume_name)).spec.storage_class_name == "fast"


async def test_a_snapshot_keeps_hard_links_and_sparse_files_sparse(
    api: client.ApiClient, ns: str, clusters: SandboxClusters
) -> None:
    core, custom = client.CoreV1Api(api), client.CustomObjectsApi(api)
    await core.create_namespaced_persistent_volume_claim(ns, {"metadata": {"name": "data"}, "spec": CLAIM})

    async def bound() -> Any:
        pvc = await core.read_namespaced_persistent_volume_claim("data", ns)
        return pvc if pvc.status.phase == "Bound" else None

    volume = clusters["east"].volume_path((await eventually(bound)).spec.volume_name)
    with (volume / "db").open("wb") as f:
        f.truncate(256 << 20)
        f.seek(128 << 20)
        f.write(b"middle")
    (volume / "dense-zeros").write_bytes(bytes(1 << 20))
    (volume / "a").write_text("shared")
    os.link(volume / "a", volume / "b")
    snap = {
        "apiVersion": "snapshot.storage.k8s.io/v1",
        "kind": "VolumeSnapshot",
        "metadata": {"name": "s"},
        "spec": {"source": {"persistentVolumeClaimName": "data"}},
    }
    await custom.create_namespaced_custom_object("snapshot.storage.k8s.io", "v1", ns, "volumesnapshots", snap)

    async def ready() -> Any:
        vs = await custom.get_namespaced_custom_object(
            "snapshot.storage.k8s.io", "v1", ns, "volumesnapshots", "s"
        )
        return vs if (vs.get("status") or {}).get("readyToUse") else None

    content = (await eventually(ready))["status"]["boundVolumeSnapshotContentName"]
    vsc = await custom.get_cluster_custom_object(
        "snapshot.storage.k8s.io", "v1", "volumesnapshotcontents", content
    )
    copy = Path(clusters["east"].data_dir) / "snapshots" / vsc["status"]["snapshotHandle"]
    db = (copy / "db").stat()
    assert db.st_size == 256 << 20 and db.st_blocks * 512 < 1 << 20  # still sparse
    with (copy / "db").open("rb") as f:
        f.seek(128 << 20)
        assert f.read(6) == b"middle"
    assert (copy / "dense-zeros").stat().st_blocks * 512 < 64 << 10  # zero blocks became holes
    assert (copy / "a").stat().st_ino == (copy / "b").stat().st_ino  # still one file, two names


async def test_load_balancer_and_node_port_services_get_node_ports_and_an_ingress(
    api: client.ApiClient, ns: str
) -> None:
    core = client.CoreV1Api(api)
    ports = [{"name": "http", "port": 80}, {"name": "https", "port": 443}]
    lb = await core.create_namespaced_service(
        ns,
        {
            "metadata": {"name": "lb"},
            "spec": {"type": "LoadBalancer", "selector": {"a": "b"}, "ports": ports},
        },
    )
    node_ports = [p.node_port for p in lb.spec.ports]
    assert all(30000 <= p <= 32767 for p in node_ports) and len(set(node_ports)) == 2

    async def balanced() -> Any:
        svc = await core.read_namespaced_service("lb", ns)
        return svc if svc.status.load_balancer.ingress else None

    assert (await eventually(balanced)).status.load_balancer.ingress[0].ip
    np = await core.create_namespaced_service(
        ns,
        {
            "metadata": {"name": "np"},
            "spec": {
                "type": "NodePort",
                "ports": [{"port": 80, "nodePort": 30080 if 30080 not in node_ports else 30081}],
            },
        },
    )
    assert np.spec.ports[0].node_port in (30080, 30081)
    with pytest.raises(client.ApiException) as taken:
        await core.create_namespaced_service(
            ns,
            {
                "metadata": {"name": "np2"},
                "spec": {"type": "NodePort", "ports": [{"port": 80, "nodePort": node_ports[0]}]},
            },
        )
    assert taken.value.status == 422 and "provided port is already allocated" in taken.value.body
    relabelled = await core.patch_namespaced_service("lb", ns, {"metadata": {"labels": {"x": "y"}}})
    assert [p.node_port for p in relabelled.spec.ports] == node_ports  # kept on update


async def test_a_service_account_token_secret_is_filled(api: client.ApiClient, ns: str) -> None:
    core = client.CoreV1Api(api)
    await core.create_namespaced_service_account(ns, {"metadata": {"name": "robot"}})
    meta = {"name": "robot-token", "annotations": {"kubernetes.io/service-account.name": "robot"}}
    await core.create_namespaced_secret(ns, {"metadata": meta, "type": "kubernetes.io/service-account-token"})

    async def filled() -> Any:
        secret = await core.read_namespaced_secret("robot-token", ns)
        return secret if secret.data and "token" in secret.data else None

    data = (await eventually(filled)).data
    assert base64.b64decode(data["namespace"]).decode() == ns
    assert b"BEGIN CERTIFICATE" in base64.b64decode(data["ca.crt"])
    claims = base64.urlsafe_b64decode(base64.b64decode(data["token"]).decode().split(".")[1] + "==")
    assert json.loads(claims)["sub"] == f"system:serviceaccount:{ns}:robot"
    with pytest.raises(client.ApiException) as refused:
        await core.create_namespaced_secret(
            ns, {"metadata": {"name": "x"}, "type": "kubernetes.io/service-account-token"}
        )
    assert refused.value.status == 422


async def test_kubectl_create_namespace_secret_and_configmap_send_protobuf_and_work(
    kubectl: Kubectl, unique: str
) -> None:
    ns = f"pb-{unique}"
    code, out, err = await kubectl("create", "namespace", ns)
    assert (code, out.strip()) == (0, f"namespace/{ns} created"), err
    code, out, err = await kubectl(
        "create", "secret", "generic", "creds", "-n", ns, "--from-literal=user=admin"
    )
    assert code == 0, err
    code, out, err = await kubectl("get", "secret", "creds", "-n", ns, "-o", "jsonpath={.data.user}")
    assert base64.b64decode(out) == b"admin", err
    code, out, err = await kubectl("create", "configmap", "conf", "-n", ns, "--from-literal=mode=fast")
    assert code == 0, err
    code, out, err = await kubectl("get", "configmap", "conf", "-n", ns, "-o", "jsonpath={.data.mode}")
    assert out == "fast", err
