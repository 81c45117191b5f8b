"""The sandbox's strategic-merge table: derived from the Kubernetes OpenAPI, its own, and in use."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from importlib import resources
from typing import Any

import grimp
import pytest
from kubernetes_asyncio import client

from sandbox.server.patching import RULES, Rule
from sandbox.tools import merge_keys

Kubectl = Callable[..., Awaitable[tuple[int, str, str]]]

WELL_KNOWN = [
    pytest.param("v1/Pod", "spec.containers", ("name", "merge"), id="a pod's containers merge by name"),
    pytest.param(
        "apps/v1/Deployment",
        "spec.template.spec.containers.ports",
        ("containerPort", "merge"),
        id="a container's ports merge by containerPort",
    ),
    pytest.param("v1/Service", "spec.ports", ("port", "merge"), id="a service's ports merge by port"),
    pytest.param(
        "apps/v1/StatefulSet", "spec.template.spec.containers.env", ("name", "merge"), id="env merges by name"
    ),
    pytest.param(
        "apps/v1/Deployment",
        "spec.template.spec.volumes",
        ("name", "merge,retainKeys"),
        id="volumes merge by name and retain the keys of their source",
    ),
    pytest.param(
        "batch/v1/Job",
        "spec.template.spec.initContainers.volumeMounts",
        ("mountPath", "merge"),
        id="volume mounts merge by mountPath",
    ),
    pytest.param(
        "batch/v1/CronJob",
        "spec.jobTemplate.spec.template.spec.imagePullSecrets",
        ("name", "merge"),
        id="image pull secrets merge by name",
    ),
    pytest.param("v1/Pod", "metadata.ownerReferences", ("uid", "merge"), id="owner references merge by uid"),
    pytest.param("v1/Pod", "metadata.finalizers", (None, "merge"), id="finalizers merge as a set of strings"),
    pytest.param(
        "policy/v1/PodDisruptionBudget", "spec.selector", (None, "replace"), id="a PDB's selector is replaced"
    ),
]


@pytest.mark.parametrize(("kind", "path", "rule"), WELL_KNOWN)
def test_well_known_fields_have_their_kubernetes_rules(kind: str, path: str, rule: Rule) -> None:
    assert RULES[kind][path] == rule


@pytest.mark.parametrize(
    ("kind", "path"),
    [
        pytest.param("v1/Pod", "spec.tolerations", id="tolerations have no key: they are replaced"),
        pytest.param("apps/v1/Deployment", "spec.template.spec.containers.args", id="args are replaced"),
        pytest.param("v1/Namespace", "spec.finalizers", id="a namespace's spec finalizers are replaced"),
    ],
)
def test_lists_without_a_strategy_are_absent(kind: str, path: str) -> None:
    assert path not in RULES[kind]


def test_the_committed_table_is_what_the_openapi_gives() -> None:
    pytest.importorskip("kubernetes_validate")
    defs, source = merge_keys.load_definitions(None, merge_keys.RELEASE)
    committed = (resources.files("sandbox.server") / "merge_keys.json").read_text()
    assert committed == merge_keys.render(merge_keys.table(defs), source)
    assert json.loads(committed)["source"].startswith(f"Kubernetes v{merge_keys.RELEASE} OpenAPI")


def test_the_sandbox_never_imports_ferry() -> None:
    graph = grimp.build_graph("sandbox", "services", "shared")
    for ferry in ("services", "shared"):
        assert not graph.chain_exists("sandbox", ferry, as_packages=True), f"sandbox imports {ferry}"


# A PodTemplate carries the PodSpec's merge keys and, unlike a Pod, may change them all
# (a real server refuses most Pod spec updates).
POD = {
    "metadata": {"name": "p"},
    "template": {
        "spec": {
            "containers": [
                {
                    "name": "web",
                    "image": "nginx:1",
                    "ports": [{"containerPort": 80, "name": "http"}],
                    "env": [{"name": "A", "value": "1"}],
                }
            ],
            "tolerations": [{"key": "a", "operator": "Exists"}],
            "imagePullSecrets": [{"name": "one"}],
        }
    },
}
POD_PATCH = {
    "template": {
        "spec": {
            "containers": [
                {"name": "web", "ports": [{"containerPort": 443}], "env": [{"name": "B", "value": "2"}]}
            ],
            "tolerations": [{"key": "b", "operator": "Exists"}],
            "imagePullSecrets": [{"name": "two"}],
        }
    }
}


def _summary(pod: dict[str, Any]) -> dict[str, Any]:
    spec = pod["template"]["spec"]
    web = spec["containers"][0]
    return {
        "ports": [p["containerPort"] for p in web["ports"]],
        "env": [e["name"] for e in web["env"]],
        "tolerations": [t["key"] for t in spec["tolerations"]],
        "secrets": [s["name"] for s in spec["imagePullSecrets"]],
    }


# tolerations are replaced (no DefaultTolerationSeconds: that admission plugin is for Pods only)
MERGED = {
    "ports": [80, 443],
    "env": ["A", "B"],
    "tolerations": ["b"],
    "secrets": ["one", "two"],
}


async def test_a_typed_client_strategic_patch_merges_by_the_tables_keys(
    api: client.ApiClient, ns: str
) -> None:
    core = client.CoreV1Api(api)
    await core.create_namespaced_pod_template(ns, POD)
    patched = await core.patch_namespaced_pod_template(
        "p", ns, POD_PATCH
    )  # strategic merge, as kubectl sends
    assert _summary(api.sanitize_for_serialization(patched)) == MERGED


async def test_kubectl_patch_merges_by_the_tables_keys(
    kubectl: Kubectl, api: client.ApiClient, ns: str
) -> None:
    await client.CoreV1Api(api).create_namespaced_pod_template(ns, POD)
    code, _, err = await kubectl(
        "patch", "podtemplate", "p", "-n", ns, "--type=strategic", "-p", json.dumps(POD_PATCH)
    )
    assert code == 0, err
    code, out, err = await kubectl("get", "podtemplate", "p", "-n", ns, "-o", "json")
    assert code == 0, err
    assert _summary(json.loads(out)) == MERGED
