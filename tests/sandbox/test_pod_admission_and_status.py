"""The service-account token a real server mounts into Pods, TokenRequests, QoS classes, DaemonSet
pods and init container statuses, read back as a client reads them.

kube-apiserver 1.32's ServiceAccount admission plugin (``kube-api-access-xxxxx``), the
``serviceaccounts/token`` subresource (``kubectl create token``), ``ComputePodQOS``, the DaemonSet
controller's one pod per node, and the kubelet's ``initContainerStatuses``.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from kubernetes_asyncio import client
from kubernetes_asyncio.client.exceptions import ApiException

from sandbox.server.qos import pod_qos
from tests.sandbox.conftest import eventually

Kubectl = Callable[..., Awaitable[tuple[int, str, str]]]
MOUNT = "/var/run/secrets/kubernetes.io/serviceaccount"
TOKEN_SOURCES = [
    {"serviceAccountToken": {"expirationSeconds": 3607, "path": "token"}},
    {"configMap": {"name": "kube-root-ca.crt", "items": [{"key": "ca.crt", "path": "ca.crt"}]}},
    {
        "downwardAPI": {
            "items": [
                {"path": "namespace", "fieldRef": {"apiVersion": "v1", "fieldPath": "metadata.namespace"}}
            ]
        }
    },
]


def _pod(name: str, **spec: Any) -> dict[str, Any]:
    return {
        "metadata": {"name": name},
        "spec": {"containers": [{"name": "app", "image": "nginx:1.27"}], **spec},
    }


async def _read(api: client.ApiClient, ns: str, name: str) -> dict[str, Any]:
    core = client.CoreV1Api(api)
    response = await core.read_namespaced_pod(name, ns, _preload_content=False)
    return json.loads(await response.read())  # type: ignore[no-any-return]


async def test_a_pod_gets_the_kube_api_access_volume_mounted_in_every_container(
    api: client.ApiClient, ns: str
) -> None:
    core = client.CoreV1Api(api)
    body = _pod(
        "web",
        initContainers=[{"name": "init", "image": "busybox:1.36"}],
        containers=[
            {"name": "app", "image": "nginx:1.27"},
            {"name": "own", "image": "nginx:1.27", "volumeMounts": [{"name": "mine", "mountPath": MOUNT}]},
        ],
        volumes=[{"name": "mine", "emptyDir": {}}],
    )
    await core.create_namespaced_pod(ns, body)
    spec = (await _read(api, ns, "web"))["spec"]
    token = spec["volumes"][-1]
    assert token["name"].startswith("kube-api-access-") and len(token["name"]) == len("kube-api-access-") + 5
    assert token["projected"] == {"defaultMode": 420, "sources": TOKEN_SOURCES}
    mount = {"name": token["name"], "readOnly": True, "mountPath": MOUNT}
    assert spec["initContainers"][0]["volumeMounts"] == [mount]
    assert spec["containers"][0]["volumeMounts"] == [mount]
    assert spec["containers"][1]["volumeMounts"] == [{"name": "mine", "mountPath": MOUNT}]
    cm = await core.read_namespaced_config_map("kube-root-ca.crt", ns)
    assert "ca.crt" in cm.data


async def _create_account(api: client.ApiClient, ns: str, name: str, **fields: Any) -> None:
    await client.CoreV1Api(api).create_namespaced_service_account(ns, {"metadata": {"name": name}, **fields})


AUTOMOUNT = [
    pytest.param(None, None, True, id="neither the pod nor its account says: mounted"),
    pytest.param(False, None, False, id="the pod opting out: not mounted"),
    pytest.param(None, False, False, id="the account opting out: not mounted"),
    pytest.param(True, False, True, id="the pod's word wins over its account's"),
]


@pytest.mark.parametrize(("pod_says", "account_says", "mounted"), AUTOMOUNT)
async def test_the_token_is_mounted_unless_the_pod_or_its_account_opts_out(
    api: client.ApiClient, ns: str, pod_says: bool | None, account_says: bool | None, mounted: bool
) -> None:
    account: dict[str, Any] = {}
    if account_says is not None:
        account["automountServiceAccountToken"] = account_says
    await _create_account(api, ns, "robot", imagePullSecrets=[{"name": "registry"}], **account)
    spec: dict[str, Any] = {"serviceAccountName": "robot"}
    if pod_says is not None:
        spec["automountServiceAccountToken"] = pod_says
    await client.CoreV1Api(api).create_namespaced_pod(ns, _pod("p", **spec))
    read = (await _read(api, ns, "p"))["spec"]
    names = [v["name"] for v in read.get("volumes") or []]
    assert any(n.startswith("kube-api-access-") for n in names) is mounted
    assert ("volumeMounts" in read["containers"][0]) is mounted
    assert read["imagePullSecrets"] == [{"name": "registry"}]


async def test_a_pod_keeps_the_token_volume_it_already_carries_and_templates_get_none(
    api: client.ApiClient, ns: str
) -> None:
    volume = {"name": "kube-api-access-abcde", "projected": {"defaultMode": 420, "sources": TOKEN_SOURCES}}
    await client.CoreV1Api(api).create_namespaced_pod(ns, _pod("p", volumes=[volume]))
    spec = (await _read(api, ns, "p"))["spec"]
    assert spec["volumes"] == [volume]
    assert spec["containers"][0]["volumeMounts"] == [
        {"name": "kube-api-access-abcde", "readOnly": True, "mountPath": MOUNT}
    ]
    apps = client.AppsV1Api(api)
    template = {"metadata": {"labels": {"app": "x"}}, "spec": _pod("")["spec"]}
    body = {
        "metadata": {"name": "d"},
        "spec": {"selector": {"matchLabels": {"app": "x"}}, "template": template},
    }
    await apps.create_namespaced_deployment(ns, body)
    stored = await apps.read_namespaced_deployment("d", ns)
    assert stored.spec.template.spec.volumes is None


async def test_a_pod_naming_a_missing_service_account_is_forbidden(api: client.ApiClient, ns: str) -> None:
    with pytest.raises(ApiException) as e:
        await client.CoreV1Api(api).create_namespaced_pod(ns, _pod("p", serviceAccountName="ghost"))
    assert e.value.status == 403
    assert json.loads(e.value.body)["message"] == (
        f'pods "p" is forbidden: error looking up service account {ns}/ghost: serviceaccount "ghost" not found'
    )


def _resources(
    requests: dict[str, str] | None = None, limits: dict[str, str] | None = None
) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if requests:
        out["requests"] = requests
    if limits:
        out["limits"] = limits
    return out


GUARANTEED = _resources(limits={"cpu": "1", "memory": "1Gi"})
QOS = [
    pytest.param([{}], [], "BestEffort", id="no requests or limits is best effort"),
    pytest.param([{"requests": {"cpu": "0"}}], [], "BestEffort", id="zero requests do not count"),
    pytest.param([_resources({"nvidia.com/gpu": "1"})], [], "BestEffort", id="only cpu and memory count"),
    pytest.param([GUARANTEED], [], "Guaranteed", id="limits copied into requests are guaranteed"),
    pytest.param(
        [_resources({"cpu": "1000m", "memory": "1024Mi"}, {"cpu": "1", "memory": "1Gi"})],
        [],
        "Guaranteed",
        id="equal quantities spelled differently are guaranteed",
    ),
    pytest.param([_resources({"cpu": "100m"})], [], "Burstable", id="a request without a limit is burstable"),
    pytest.param(
        [_resources(limits={"cpu": "1"})], [], "Burstable", id="a cpu limit without a memory one is burstable"
    ),
    pytest.param([GUARANTEED, {}], [], "Burstable", id="one unlimited container makes it burstable"),
    pytest.param([GUARANTEED], [{}], "Burstable", id="an unlimited init container makes it burstable"),
    pytest.param(
        [_resources({"cpu": "500m", "memory": "1Gi"}, {"cpu": "1", "memory": "1Gi"})],
        [],
        "Burstable",
        id="requests below limits are burstable",
    ),
]


@pytest.mark.parametrize(("containers", "init", "expected"), QOS)
async def test_a_pod_reports_the_qos_class_of_its_requests_and_limits(
    api: client.ApiClient,
    ns: str,
    containers: list[dict[str, Any]],
    init: list[dict[str, Any]],
    expected: str,
) -> None:
    spec: dict[str, Any] = {
        "containers": [
            {"name": f"c{i}", "image": "nginx:1.27", "resources": r} for i, r in enumerate(containers)
        ]
    }
    if init:
        spec["initContainers"] = [
            {"name": f"i{i}", "image": "busybox", "resources": r} for i, r in enumerate(init)
        ]
    await client.CoreV1Api(api).create_namespaced_pod(ns, {"metadata": {"name": "p"}, "spec": spec})
    assert (await _read(api, ns, "p"))["status"]["qosClass"] == expected

    async def running() -> Any:
        status = (await _read(api, ns, "p"))["status"]
        return status if status.get("phase") == "Running" else None

    assert (await eventually(running))["qosClass"] == expected


def test_quantities_are_compared_exactly() -> None:
    spec = {"containers": [{"resources": {"requests": {"cpu": "0.5", "memory": "1e3"}}}]}
    assert pod_qos(spec) == "Burstable"
    both = {"cpu": "0.5", "memory": "1k"}
    assert pod_qos(
        {"containers": [{"resources": {"requests": both, "limits": {"cpu": "500m", "memory": "1e3"}}}]}
    ) == ("Guaranteed")


async def test_kubectl_create_token_prints_a_token_for_the_service_account(kubectl: Kubectl, ns: str) -> None:
    code, out, err = await kubectl("create", "token", "default", "-n", ns, "--duration", "2h", "-o", "json")
    assert code == 0, err
    answer = json.loads(out)
    assert answer["kind"] == "TokenRequest" and answer["spec"]["expirationSeconds"] == 7200
    assert answer["metadata"]["name"] == "default" and answer["metadata"]["namespace"] == ns
    assert answer["status"]["expirationTimestamp"]
    header, claims, _ = answer["status"]["token"].split(".")
    decoded = json.loads(base64.urlsafe_b64decode(claims + "=" * (-len(claims) % 4)))
    assert decoded["sub"] == f"system:serviceaccount:{ns}:default"
    assert decoded["exp"] - decoded["iat"] == 7200
    code, out, err = await kubectl("create", "token", "default", "-n", ns)
    assert code == 0 and out.count(".") == 2, err


async def test_a_token_request_defaults_to_an_hour_and_needs_the_account(
    api: client.ApiClient, ns: str
) -> None:
    core = client.CoreV1Api(api)
    answer = await core.create_namespaced_service_account_token("default", ns, {"spec": {}})
    assert answer.spec.expiration_seconds == 3600 and answer.status.token
    with pytest.raises(ApiException) as e:
        await core.create_namespaced_service_account_token("ghost", ns, {"spec": {}})
    assert e.value.status == 404
    assert json.loads(e.value.body)["message"] == 'serviceaccounts "ghost" not found'
    with pytest.raises(ApiException) as e:
        await core.create_namespaced_service_account_token("default", ns, {"spec": {"expirationSeconds": 60}})
    assert e.value.status == 422


async def test_a_daemonset_runs_one_labelled_owned_pod_that_goes_with_it(
    api: client.ApiClient, ns: str
) -> None:
    apps, core = client.AppsV1Api(api), client.CoreV1Api(api)
    template = {"metadata": {"labels": {"app": "agent"}}, "spec": _pod("")["spec"]}
    body = {
        "metadata": {"name": "agent"},
        "spec": {"selector": {"matchLabels": {"app": "agent"}}, "template": template},
    }
    await apps.create_namespaced_daemon_set(ns, body)

    async def ready() -> Any:
        ds = await apps.read_namespaced_daemon_set("agent", ns)
        return ds if ds.status.number_ready == 1 else None

    ds = await eventually(ready)
    assert (ds.status.desired_number_scheduled, ds.status.current_number_scheduled) == (1, 1)
    assert (ds.status.number_available, ds.status.updated_number_scheduled) == (1, 1)
    pods = (await core.list_namespaced_pod(ns, label_selector="app=agent")).items
    assert len(pods) == 1
    pod = pods[0]
    assert pod.metadata.name.startswith("agent-") and pod.spec.node_name == "sandbox-node"
    assert pod.metadata.owner_references[0].kind == "DaemonSet"
    assert pod.metadata.labels["pod-template-generation"] == "1"
    assert pod.metadata.labels["controller-revision-hash"]
    assert pod.status.phase == "Running"

    await apps.delete_namespaced_daemon_set("agent", ns)

    async def gone() -> bool:
        return not (await core.list_namespaced_pod(ns, label_selector="app=agent")).items

    await eventually(gone)


async def test_a_daemonset_quiesced_by_a_node_selector_loses_its_pod(api: client.ApiClient, ns: str) -> None:
    apps, core = client.AppsV1Api(api), client.CoreV1Api(api)
    template = {"metadata": {"labels": {"app": "agent"}}, "spec": _pod("")["spec"]}
    body = {
        "metadata": {"name": "agent"},
        "spec": {"selector": {"matchLabels": {"app": "agent"}}, "template": template},
    }
    await apps.create_namespaced_daemon_set(ns, body)

    async def pods() -> list[Any]:
        return (await core.list_namespaced_pod(ns, label_selector="app=agent")).items  # type: ignore[no-any-return]

    await eventually(pods)
    patch = {"spec": {"template": {"spec": {"nodeSelector": {"migration.example/quiesce": "true"}}}}}
    await apps.patch_namespaced_daemon_set("agent", ns, patch)

    async def quiesced() -> Any:
        ds = await apps.read_namespaced_daemon_set("agent", ns)
        return ds if ds.status.observed_generation == 2 and not await pods() else None

    ds = await eventually(quiesced)
    assert ds.status.desired_number_scheduled == 0 and ds.status.number_ready == 0


async def test_a_running_pod_reports_its_init_containers_completed(api: client.ApiClient, ns: str) -> None:
    init = [
        {"name": "migrate", "image": "busybox:1.36"},
        {"name": "proxy", "image": "envoy", "restartPolicy": "Always"},
    ]
    await client.CoreV1Api(api).create_namespaced_pod(ns, _pod("p", initContainers=init))

    async def running() -> Any:
        status = (await _read(api, ns, "p"))["status"]
        return status if status.get("phase") == "Running" else None

    status = await eventually(running)
    completed, sidecar = status["initContainerStatuses"]
    assert completed["name"] == "migrate" and completed["ready"] is True and completed["started"] is False
    assert completed["state"]["terminated"]["reason"] == "Completed"
    assert completed["state"]["terminated"]["exitCode"] == 0
    assert sidecar["name"] == "proxy" and "running" in sidecar["state"] and sidecar["started"] is True
    assert {"type": "Initialized", "status": "True"}.items() <= next(
        c for c in status["conditions"] if c["type"] == "Initialized"
    ).items()
