"""A kubelet pod's Secrets and ConfigMaps: optional ones may be missing, the others keep it waiting.

As on a real node: a missing Secret, ConfigMap or key behind an ``optional`` reference is simply
left out (no variable, no file) and the pod runs; behind any other reference the pod stays Pending
with the kubelet's waiting reason, message and Warning event, and starts once the object exists.
Each case runs a process that prints the ``KT_*`` variables and the files of its volume.
"""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest
from kubernetes_asyncio import client

from tests.sandbox.conftest import eventually

SHOW = """
import json, os, sys
env = {k: v for k, v in os.environ.items() if k.startswith("KT_")}
print(json.dumps({"env": env, "files": sorted(os.listdir(sys.argv[1]))}))
"""


def secret_ref(var: str, name: str, key: str, **ref: Any) -> dict[str, Any]:
    return {"name": var, "valueFrom": {"secretKeyRef": {"name": name, "key": key, **ref}}}


def config_ref(var: str, name: str, key: str, **ref: Any) -> dict[str, Any]:
    return {"name": var, "valueFrom": {"configMapKeyRef": {"name": name, "key": key, **ref}}}


def job(
    name: str,
    env: list[dict[str, Any]] | None = None,
    env_from: list[dict[str, Any]] | None = None,
    volume: dict[str, Any] | None = None,
) -> dict[str, Any]:
    container = {
        "name": "main",
        "image": "ghcr.io/ferry-dev/ferry:test",
        "command": ["python", "-c", SHOW, "/mnt/v"],
        "env": env or [],
        "envFrom": env_from or [],
        "volumeMounts": [{"name": "v", "mountPath": "/mnt/v"}],
    }
    pod_spec = {
        "restartPolicy": "Never",
        "containers": [container],
        "volumes": [{"name": "v", **(volume or {"emptyDir": {}})}],
    }
    return {"metadata": {"name": name}, "spec": {"backoffLimit": 0, "template": {"spec": pod_spec}}}


@pytest.fixture
async def sources(api: client.ApiClient, ns: str) -> None:
    """Secret ``here`` and ConfigMap ``cfg`` exist, each with key ``a`` only; ``absent`` does not."""
    core = client.CoreV1Api(api)
    await core.create_namespaced_secret(ns, {"metadata": {"name": "here"}, "stringData": {"a": "1"}})
    await core.create_namespaced_config_map(ns, {"metadata": {"name": "cfg"}, "data": {"a": "2"}})


async def finished_output(api: client.ApiClient, ns: str, name: str) -> dict[str, Any]:
    """The Job's outcome as its user sees it: Complete, and what its process printed."""
    core, batch = client.CoreV1Api(api), client.BatchV1Api(api)

    async def complete() -> Any:
        j = await batch.read_namespaced_job(name, ns)
        conditions = {c.type for c in j.status.conditions or []}
        assert "Failed" not in conditions, f"the Job failed: {j.status.conditions}"
        return "Complete" in conditions

    await eventually(complete, within=20)
    pod = (await core.list_namespaced_pod(ns, label_selector=f"job-name={name}")).items[0]
    # raw: the client would otherwise turn a JSON-looking log into a Python repr
    response = await core.read_namespaced_pod_log(pod.metadata.name, ns, _preload_content=False)
    try:
        log = await response.text()
    finally:
        response.release()
    output: dict[str, Any] = json.loads(log.strip().splitlines()[-1])
    return output


OPTIONAL = [
    pytest.param(
        {"env": [secret_ref("KT_A", "absent", "a", optional=True), secret_ref("KT_B", "here", "a")]},
        {"KT_B": "1"},
        [],
        id="an optional secretKeyRef to a missing Secret leaves its variable unset",
    ),
    pytest.param(
        {"env": [secret_ref("KT_A", "here", "k", optional=True), secret_ref("KT_B", "here", "a")]},
        {"KT_B": "1"},
        [],
        id="an optional secretKeyRef to a missing key leaves its variable unset",
    ),
    pytest.param(
        {"env": [config_ref("KT_A", "absent", "a", optional=True), config_ref("KT_B", "cfg", "a")]},
        {"KT_B": "2"},
        [],
        id="an optional configMapKeyRef to a missing ConfigMap leaves its variable unset",
    ),
    pytest.param(
        {"env": [config_ref("KT_A", "cfg", "k", optional=True), config_ref("KT_B", "cfg", "a")]},
        {"KT_B": "2"},
        [],
        id="an optional configMapKeyRef to a missing key leaves its variable unset",
    ),
    pytest.param(
        {
            "env_from": [
                {"secretRef": {"name": "absent", "optional": True}, "prefix": "KT_S_"},
                {"configMapRef": {"name": "cfg"}, "prefix": "KT_C_"},
            ]
        },
        {"KT_C_a": "2"},
        [],
        id="an optional envFrom Secret that is missing adds no variables",
    ),
    pytest.param(
        {
            "env_from": [
                {"configMapRef": {"name": "absent", "optional": True}, "prefix": "KT_C_"},
                {"secretRef": {"name": "here"}, "prefix": "KT_S_"},
            ]
        },
        {"KT_S_a": "1"},
        [],
        id="an optional envFrom ConfigMap that is missing adds no variables",
    ),
    pytest.param(
        {"volume": {"secret": {"secretName": "absent", "optional": True}}},
        {},
        [],
        id="an optional Secret volume that is missing is an empty directory",
    ),
    pytest.param(
        {
            "volume": {
                "configMap": {
                    "name": "cfg",
                    "items": [{"key": "a", "path": "a"}, {"key": "k", "path": "k"}],
                    "optional": True,
                }
            }
        },
        {},
        ["a"],
        id="an optional ConfigMap volume item whose key is missing is left out",
    ),
]


@pytest.mark.usefixtures("sources")
@pytest.mark.parametrize(("spec", "env", "files"), OPTIONAL)
async def test_a_missing_optional_source_is_left_out_and_the_pod_runs(
    api: client.ApiClient, ns: str, spec: dict[str, Any], env: dict[str, str], files: list[str]
) -> None:
    await client.BatchV1Api(api).create_namespaced_job(ns, job("opt", **spec))
    assert await finished_output(api, ns, "opt") == {"env": env, "files": files}


CONFIG_ERROR = "CreateContainerConfigError"
MOUNT_WAIT = "ContainerCreating"
REQUIRED = [
    pytest.param(
        {"env": [secret_ref("KT_A", "absent", "k")]},
        (CONFIG_ERROR, 'secret "absent" not found', "Failed", 'Error: secret "absent" not found'),
        ("secrets", "absent"),
        {"env": {"KT_A": "v"}, "files": []},
        id="a secretKeyRef to a missing Secret",
    ),
    pytest.param(
        {"env": [secret_ref("KT_A", "here", "k")]},
        (CONFIG_ERROR, "couldn't find key k in Secret {ns}/here", "Failed", "Error: {message}"),
        ("secrets", "here"),
        {"env": {"KT_A": "v"}, "files": []},
        id="a secretKeyRef to a missing key",
    ),
    pytest.param(
        {"env": [config_ref("KT_A", "absent", "k")]},
        (CONFIG_ERROR, 'configmap "absent" not found', "Failed", "Error: {message}"),
        ("configmaps", "absent"),
        {"env": {"KT_A": "v"}, "files": []},
        id="a configMapKeyRef to a missing ConfigMap",
    ),
    pytest.param(
        {"env": [config_ref("KT_A", "cfg", "k")]},
        (CONFIG_ERROR, "couldn't find key k in ConfigMap {ns}/cfg", "Failed", "Error: {message}"),
        ("configmaps", "cfg"),
        {"env": {"KT_A": "v"}, "files": []},
        id="a configMapKeyRef to a missing key",
    ),
    pytest.param(
        {"env_from": [{"secretRef": {"name": "absent"}, "prefix": "KT_"}]},
        (CONFIG_ERROR, 'secret "absent" not found', "Failed", "Error: {message}"),
        ("secrets", "absent"),
        {"env": {"KT_k": "v"}, "files": []},
        id="an envFrom Secret that is missing",
    ),
    pytest.param(
        {"env_from": [{"configMapRef": {"name": "absent"}, "prefix": "KT_"}]},
        (CONFIG_ERROR, 'configmap "absent" not found', "Failed", "Error: {message}"),
        ("configmaps", "absent"),
        {"env": {"KT_k": "v"}, "files": []},
        id="an envFrom ConfigMap that is missing",
    ),
    pytest.param(
        {"volume": {"secret": {"secretName": "absent"}}},
        (
            MOUNT_WAIT,
            None,
            "FailedMount",
            'MountVolume.SetUp failed for volume "v" : secret "absent" not found',
        ),
        ("secrets", "absent"),
        {"env": {}, "files": ["k"]},
        id="a Secret volume that is missing",
    ),
    pytest.param(
        {"volume": {"configMap": {"name": "cfg", "items": [{"key": "k", "path": "k"}]}}},
        (
            MOUNT_WAIT,
            None,
            "FailedMount",
            'MountVolume.SetUp failed for volume "v" : configmap references non-existent config key: k',
        ),
        ("configmaps", "cfg"),
        {"env": {}, "files": ["k"]},
        id="a ConfigMap volume item whose key is missing",
    ),
]


@pytest.mark.usefixtures("sources")
@pytest.mark.parametrize(("spec", "shown", "fix", "output"), REQUIRED)
async def test_a_missing_required_source_keeps_the_pod_waiting_until_it_exists(
    api: client.ApiClient,
    ns: str,
    spec: dict[str, Any],
    shown: tuple[str, str | None, str, str],
    fix: tuple[str, str],
    output: dict[str, Any],
) -> None:
    core, batch = client.CoreV1Api(api), client.BatchV1Api(api)
    reason, message, event_reason, event_message = shown
    message = message.format(ns=ns) if message else None
    event_message = event_message.format(ns=ns, message=message)
    await batch.create_namespaced_job(ns, job("req", **spec))

    async def waiting() -> Any:
        pods = (await core.list_namespaced_pod(ns, label_selector="job-name=req")).items
        statuses = pods[0].status.container_statuses if pods and pods[0].status else None
        return pods[0] if statuses and statuses[0].state.waiting else None

    pod = await eventually(waiting)
    assert pod.status.phase == "Pending"
    state = pod.status.container_statuses[0].state
    assert (state.waiting.reason, state.waiting.message) == (reason, message)
    assert state.running is None and state.terminated is None
    events = await core.list_namespaced_event(
        ns, field_selector=f"involvedObject.name={pod.metadata.name},type=Warning"
    )
    assert [(e.reason, e.message) for e in events.items] == [(event_reason, event_message)]
    running = await batch.read_namespaced_job("req", ns)
    assert running.status.active == 1 and not running.status.failed

    kind, name = fix
    if kind == "secrets" and name == "absent":
        await core.create_namespaced_secret(ns, {"metadata": {"name": name}, "stringData": {"k": "v"}})
    elif kind == "secrets":
        await core.patch_namespaced_secret(name, ns, {"data": {"k": base64.b64encode(b"v").decode()}})
    elif name == "absent":
        await core.create_namespaced_config_map(ns, {"metadata": {"name": name}, "data": {"k": "v"}})
    else:
        await core.patch_namespaced_config_map(name, ns, {"data": {"k": "v"}})
    assert await finished_output(api, ns, "req") == output
