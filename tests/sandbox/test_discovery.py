"""Discovery documents as the typed client reads them: groups, resources, verbs, short names, categories."""

from __future__ import annotations

import aiohttp
import pytest
from kubernetes_asyncio import client

GROUPS = [
    "apps",
    "batch",
    "autoscaling",
    "networking.k8s.io",
    "rbac.authorization.k8s.io",
    "storage.k8s.io",
    "policy",
    "scheduling.k8s.io",
    "apiextensions.k8s.io",
    "snapshot.storage.k8s.io",
    "discovery.k8s.io",
]


async def test_every_required_group_is_served(api: client.ApiClient) -> None:
    groups = {g.name: g for g in (await client.ApisApi(api).get_api_versions()).groups}
    assert set(GROUPS) <= set(groups)
    assert groups["autoscaling"].preferred_version.version == "v2"
    core = await client.CoreApi(api).get_api_versions()
    assert core.versions == ["v1"]


RESOURCES = [
    pytest.param(
        "v1", "pods", True, ["po"], True, id="pods are namespaced, short name po, in the all category"
    ),
    pytest.param("v1", "namespaces", False, ["ns"], False, id="namespaces are cluster scoped"),
    pytest.param("v1", "persistentvolumes", False, ["pv"], False, id="persistent volumes are cluster scoped"),
    pytest.param("apps/v1", "deployments", True, ["deploy"], True, id="deployments are in the all category"),
    pytest.param("batch/v1", "cronjobs", True, ["cj"], True, id="cronjobs have short name cj"),
    pytest.param(
        "autoscaling/v2",
        "horizontalpodautoscalers",
        True,
        ["hpa"],
        True,
        id="HPAs are served at autoscaling v2",
    ),
    pytest.param(
        "storage.k8s.io/v1", "storageclasses", False, ["sc"], False, id="storage classes are cluster scoped"
    ),
    pytest.param(
        "snapshot.storage.k8s.io/v1",
        "volumesnapshots",
        True,
        ["vs"],
        False,
        id="volume snapshots come from their CRD",
    ),
]


@pytest.mark.parametrize(("group_version", "plural", "namespaced", "short", "in_all"), RESOURCES)
async def test_resource_lists_describe_each_kind(
    east_url: str, group_version: str, plural: str, namespaced: bool, short: list[str], in_all: bool
) -> None:
    path = f"/api/{group_version}" if "/" not in group_version else f"/apis/{group_version}"
    async with aiohttp.ClientSession() as session, session.get(east_url + path) as resp:
        doc = await resp.json()
    entries = {r["name"]: r for r in doc["resources"]}
    entry = entries[plural]
    assert entry["namespaced"] is namespaced
    assert entry["shortNames"] == short
    assert ("all" in entry.get("categories", [])) is in_all
    assert set(entry["verbs"]) == {
        "create",
        "delete",
        "deletecollection",
        "get",
        "list",
        "patch",
        "update",
        "watch",
    }


async def test_subresources_are_listed(api: client.ApiClient) -> None:
    core = {r.name for r in (await client.CoreV1Api(api).get_api_resources()).resources}
    assert {"pods/status", "pods/log", "namespaces/finalize", "persistentvolumeclaims/status"} <= core
    apps = {r.name: r for r in (await client.AppsV1Api(api).get_api_resources()).resources}
    assert apps["deployments/scale"].kind == "Scale" and apps["deployments/scale"].group == "autoscaling"


ENDPOINTS = [
    pytest.param("/version", 200, id="version is served"),
    pytest.param("/openapi/v2", 200, id="openapi v2 is an empty document kubectl accepts"),
    pytest.param("/openapi/v3", 404, id="openapi v3 is absent so kubectl falls back"),
    pytest.param("/apis/apps", 200, id="a group document is served"),
    pytest.param("/apis/no.such.group/v1", 404, id="an unknown group version is not found"),
    pytest.param("/api/v1/widgets", 404, id="an unknown resource is not found"),
]


@pytest.mark.parametrize(("path", "code"), ENDPOINTS)
async def test_well_known_paths(east_url: str, path: str, code: int) -> None:
    async with aiohttp.ClientSession() as session, session.get(east_url + path) as resp:
        assert resp.status == code
        if code == 404:
            body = await resp.json()
            assert body["message"] == "the server could not find the requested resource"
