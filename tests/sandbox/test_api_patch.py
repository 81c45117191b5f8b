"""The four patch types, as the real clients send them (typed API, DynamicClient, CustomObjectsApi)."""

from __future__ import annotations

import json
from typing import Any

import pytest
from kubernetes_asyncio import client
from kubernetes_asyncio.client.exceptions import ApiException
from kubernetes_asyncio.dynamic import DynamicClient

from sandbox import SandboxClusters

DEPLOYMENT = {
    "apiVersion": "apps/v1",
    "kind": "Deployment",
    "metadata": {"name": "web", "labels": {"app": "web", "tier": "front"}},
    "spec": {
        "replicas": 1,
        "selector": {"matchLabels": {"app": "web"}},
        "template": {
            "metadata": {"labels": {"app": "web"}},
            "spec": {
                "containers": [
                    {"name": "web", "image": "nginx:1", "env": [{"name": "A", "value": "1"}]},
                    {"name": "sidecar", "image": "envoy:1"},
                ]
            },
        },
    },
}


def containers(d: dict[str, Any]) -> dict[str, str]:
    return {c["name"]: c["image"] for c in d["spec"]["template"]["spec"]["containers"]}


PATCHES = [
    pytest.param(
        "application/strategic-merge-patch+json",
        {"spec": {"template": {"spec": {"containers": [{"name": "web", "image": "nginx:2"}]}}}},
        {"web": "nginx:2", "sidecar": "envoy:1"},
        id="strategic merge updates one container by its name and keeps the others",
    ),
    pytest.param(
        "application/strategic-merge-patch+json",
        {"spec": {"template": {"spec": {"containers": [{"name": "sidecar", "$patch": "delete"}]}}}},
        {"web": "nginx:1"},
        id="strategic merge deletes a list item with $patch delete",
    ),
    pytest.param(
        "application/merge-patch+json",
        {"spec": {"template": {"spec": {"containers": [{"name": "web", "image": "nginx:3"}]}}}},
        {"web": "nginx:3"},
        id="merge patch replaces the whole list",
    ),
    pytest.param(
        "application/json-patch+json",
        [{"op": "replace", "path": "/spec/template/spec/containers/1/image", "value": "envoy:2"}],
        {"web": "nginx:1", "sidecar": "envoy:2"},
        id="json patch replaces one path",
    ),
]


@pytest.mark.parametrize(("content_type", "patch", "expected"), PATCHES)
async def test_patch_types_follow_their_semantics(
    api: client.ApiClient,
    dyn: DynamicClient,
    ns: str,
    content_type: str,
    patch: Any,
    expected: dict[str, str],
) -> None:
    deployments = await dyn.resources.get(api_version="apps/v1", kind="Deployment")
    await dyn.create(deployments, body=DEPLOYMENT, namespace=ns)
    result = await dyn.patch(deployments, body=patch, name="web", namespace=ns, content_type=content_type)
    assert containers(result.to_dict()) == expected


async def test_merge_patch_null_removes_a_key(api: client.ApiClient, dyn: DynamicClient, ns: str) -> None:
    deployments = await dyn.resources.get(api_version="apps/v1", kind="Deployment")
    await dyn.create(deployments, body=DEPLOYMENT, namespace=ns)
    result = await dyn.patch(
        deployments,
        body={"metadata": {"labels": {"tier": None}}},
        name="web",
        namespace=ns,
        content_type="application/merge-patch+json",
    )
    assert result.metadata.labels.to_dict() == {"app": "web"}


async def test_server_side_apply_creates_then_updates_and_drops_fields_it_no_longer_applies(
    api: client.ApiClient, dyn: DynamicClient, ns: str
) -> None:
    cms = await dyn.resources.get(api_version="v1", kind="ConfigMap")
    first = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": "applied"},
        "data": {"a": "1", "b": "2"},
    }
    created = await dyn.server_side_apply(
        cms, body=first, name="applied", namespace=ns, field_manager="ferry"
    )
    assert created.data.to_dict() == {"a": "1", "b": "2"}
    second = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "applied"}, "data": {"a": "9"}}
    updated = await dyn.server_side_apply(
        cms, body=second, name="applied", namespace=ns, field_manager="ferry"
    )
    assert updated.data.to_dict() == {"a": "9"}
    assert updated.metadata.uid == created.metadata.uid


async def test_server_side_apply_without_a_field_manager_is_rejected(api: client.ApiClient, ns: str) -> None:
    core = client.CoreV1Api(api)
    with pytest.raises(ApiException) as caught:
        await core.patch_namespaced_config_map(
            "x", ns, {"metadata": {"name": "x"}}, _content_type="application/apply-patch+yaml"
        )
    assert caught.value.status == 422
    assert "fieldManager: Required value" in json.loads(caught.value.body)["message"]


async def test_a_stale_resource_version_in_a_patch_is_a_conflict(api: client.ApiClient, ns: str) -> None:
    core = client.CoreV1Api(api)
    made = await core.create_namespaced_config_map(ns, {"metadata": {"name": "c"}})
    await core.patch_namespaced_config_map("c", ns, {"data": {"x": "1"}})
    with pytest.raises(ApiException) as caught:
        await core.patch_namespaced_config_map(
            "c", ns, {"metadata": {"resourceVersion": made.metadata.resource_version}, "data": {"x": "2"}}
        )
    assert caught.value.status == 409


async def test_scale_subresource_reads_and_writes_replicas(
    api: client.ApiClient, dyn: DynamicClient, ns: str
) -> None:
    apps = client.AppsV1Api(api)
    await apps.create_namespaced_deployment(ns, DEPLOYMENT)
    await apps.patch_namespaced_deployment_scale("web", ns, {"spec": {"replicas": 4}})
    scale = await apps.read_namespaced_deployment_scale("web", ns)
    assert scale.spec.replicas == 4
    assert (await apps.read_namespaced_deployment("web", ns)).spec.replicas == 4


async def test_the_server_records_requests_for_assertions(
    api: client.ApiClient, ns: str, clusters: SandboxClusters
) -> None:
    core = client.CoreV1Api(api)
    await core.create_namespaced_config_map(ns, {"metadata": {"name": "rec"}})
    await core.patch_namespaced_config_map("rec", ns, {"data": {"a": "b"}})
    seen = await clusters["east"].call(
        lambda s: [r for r in s.requests if f"/namespaces/{ns}/configmaps/rec" in r.path]
    )
    assert [(r.method, r.content_type, r.status) for r in seen] == [
        ("PATCH", "application/strategic-merge-patch+json", 200)
    ]
