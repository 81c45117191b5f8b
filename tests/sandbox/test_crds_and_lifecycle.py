"""CRDs register new kinds; namespaces and owners cascade deletions as a real cluster does."""

from __future__ import annotations

import json
from typing import Any

import pytest
from kubernetes_asyncio import client
from kubernetes_asyncio.client.exceptions import ApiException
from kubernetes_asyncio.dynamic import DynamicClient

from tests.sandbox.conftest import eventually


def crd(group: str, scope: str = "Namespaced") -> dict[str, Any]:
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": f"gadgets.{group}"},
        "spec": {
            "group": group,
            "scope": scope,
            "names": {"plural": "gadgets", "singular": "gadget", "kind": "Gadget", "shortNames": ["gd"]},
            "versions": [
                {
                    "name": "v1",
                    "served": True,
                    "storage": True,
                    "schema": {
                        "openAPIV3Schema": {"type": "object", "x-kubernetes-preserve-unknown-fields": True}
                    },
                    "subresources": {"status": {}},
                }
            ],
        },
    }


async def test_a_crd_adds_its_kind_to_discovery_and_is_established(
    api: client.ApiClient, dyn: DynamicClient, unique: str
) -> None:
    group = f"{unique}.example.com"
    ext = client.ApiextensionsV1Api(api)
    await ext.create_custom_resource_definition(crd(group))
    made = await ext.read_custom_resource_definition(f"gadgets.{group}")
    conditions = {c.type: c.status for c in made.status.conditions}
    assert conditions["Established"] == "True"
    groups = await client.ApisApi(api).get_api_versions()
    assert group in [g.name for g in groups.groups]
    resources = await client.CustomObjectsApi(api).get_api_resources(group, "v1")
    gadget = next(r for r in resources.resources if r.name == "gadgets")
    assert gadget.namespaced and gadget.short_names == ["gd"]
    assert "gadgets/status" in [r.name for r in resources.resources]


async def test_custom_objects_crud_and_the_client_patch_traps(
    api: client.ApiClient, dyn: DynamicClient, ns: str, unique: str
) -> None:
    group = f"{unique}.example.com"
    await client.ApiextensionsV1Api(api).create_custom_resource_definition(crd(group))
    custom = client.CustomObjectsApi(api)
    body = {"apiVersion": f"{group}/v1", "kind": "Gadget", "metadata": {"name": "g1"}, "spec": {"size": 1}}
    made = await custom.create_namespaced_custom_object(group, "v1", ns, "gadgets", body)
    assert made["metadata"]["generation"] == 1 and made["kind"] == "Gadget"
    # CustomObjectsApi labels a dict body as a JSON patch: a real server refuses it, so does the sandbox
    with pytest.raises(ApiException) as caught:
        await custom.patch_namespaced_custom_object(group, "v1", ns, "gadgets", "g1", {"spec": {"size": 2}})
    assert caught.value.status == 400
    assert "cannot unmarshal object into Go value of type jsonpatch.Patch" in caught.value.body
    patched = await custom.patch_namespaced_custom_object(
        group, "v1", ns, "gadgets", "g1", {"spec": {"size": 2}}, _content_type="application/merge-patch+json"
    )
    assert patched["spec"] == {"size": 2} and patched["metadata"]["generation"] == 2
    # the DynamicClient defaults to strategic merge, which custom resources reject with 415 ...
    gadgets = await dyn.resources.get(api_version=f"{group}/v1", kind="Gadget")
    answer = await dyn.patch(gadgets, body={"spec": {"size": 3}}, name="g1", namespace=ns)
    # ... and it hands the Status back as data instead of raising
    assert answer.kind == "Status" and answer.code == 415 and answer.reason == "UnsupportedMediaType"
    status = await custom.patch_namespaced_custom_object_status(
        group,
        "v1",
        ns,
        "gadgets",
        "g1",
        {"status": {"ready": True}},
        _content_type="application/merge-patch+json",
    )
    assert status["status"] == {"ready": True} and status["metadata"]["generation"] == 2


async def test_deleting_a_crd_removes_its_objects_and_its_discovery(
    api: client.ApiClient, ns: str, unique: str
) -> None:
    group = f"{unique}.example.com"
    ext = client.ApiextensionsV1Api(api)
    await ext.create_custom_resource_definition(crd(group))
    custom = client.CustomObjectsApi(api)
    await custom.create_namespaced_custom_object(
        group, "v1", ns, "gadgets", {"apiVersion": f"{group}/v1", "kind": "Gadget", "metadata": {"name": "g"}}
    )
    await ext.delete_custom_resource_definition(f"gadgets.{group}")

    async def gone() -> bool:
        groups = await client.ApisApi(api).get_api_versions()
        return group not in [g.name for g in groups.groups]

    await eventually(gone)
    with pytest.raises(ApiException) as caught:
        await custom.list_namespaced_custom_object(group, "v1", ns, "gadgets")
    assert caught.value.status == 404


async def test_deleting_a_namespace_empties_it_then_removes_it(api: client.ApiClient, unique: str) -> None:
    core = client.CoreV1Api(api)
    name = f"doomed-{unique}"
    await core.create_namespace({"metadata": {"name": name}})
    await core.create_namespaced_config_map(
        name, {"metadata": {"name": "slow", "finalizers": ["example.com/x"]}}
    )
    await core.delete_namespace(name)
    terminating = await core.read_namespace(name)
    assert terminating.status.phase == "Terminating"
    assert terminating.spec.finalizers == ["kubernetes"]
    slow = await eventually(lambda: core.read_namespaced_config_map("slow", name))
    assert slow.metadata.deletion_timestamp is not None
    await core.patch_namespaced_config_map("slow", name, {"metadata": {"finalizers": None}})

    async def namespace_gone() -> bool:
        names = [n.metadata.name for n in (await core.list_namespace()).items]
        return name not in names

    await eventually(namespace_gone)


async def _owned_config_map(core: client.CoreV1Api, ns: str, owner: Any, name: str) -> None:
    ref = {"apiVersion": "v1", "kind": "ConfigMap", "name": owner.metadata.name, "uid": owner.metadata.uid}
    await core.create_namespaced_config_map(ns, {"metadata": {"name": name, "ownerReferences": [ref]}})


POLICIES = [
    pytest.param("Background", False, id="background deletion removes dependents after the owner"),
    pytest.param("Foreground", False, id="foreground deletion removes dependents before the owner"),
    pytest.param("Orphan", True, id="orphan deletion keeps dependents and strips their owner reference"),
]


@pytest.mark.parametrize(("policy", "dependent_survives"), POLICIES)
async def test_garbage_collection_follows_the_propagation_policy(
    api: client.ApiClient, ns: str, policy: str, dependent_survives: bool
) -> None:
    core = client.CoreV1Api(api)
    owner = await core.create_namespaced_config_map(ns, {"metadata": {"name": "owner"}})
    await _owned_config_map(core, ns, owner, "child")
    await core.delete_namespaced_config_map("owner", ns, propagation_policy=policy)

    async def settled() -> bool:
        names = {c.metadata.name for c in (await core.list_namespaced_config_map(ns)).items}
        return "owner" not in names and (("child" in names) == dependent_survives)

    await eventually(settled)
    if dependent_survives:
        child = await core.read_namespaced_config_map("child", ns)
        assert child.metadata.owner_references is None


async def test_foreground_deletion_keeps_the_owner_until_its_dependents_are_gone(
    api: client.ApiClient, ns: str
) -> None:
    core = client.CoreV1Api(api)
    owner = await core.create_namespaced_config_map(ns, {"metadata": {"name": "owner"}})
    ref = {"apiVersion": "v1", "kind": "ConfigMap", "name": "owner", "uid": owner.metadata.uid}
    held = {"name": "child", "ownerReferences": [ref], "finalizers": ["example.com/hold"]}
    await core.create_namespaced_config_map(ns, {"metadata": held})
    await core.delete_namespaced_config_map("owner", ns, propagation_policy="Foreground")

    async def child_deleted() -> Any:
        child = await core.read_namespaced_config_map("child", ns)
        return child if child.metadata.deletion_timestamp else None

    child = await eventually(child_deleted)  # the garbage collector has deleted the dependent...
    assert child.metadata.finalizers == ["example.com/hold"]  # ...which its own finalizer holds
    waiting = await core.read_namespaced_config_map("owner", ns)
    assert waiting.metadata.deletion_timestamp is not None
    assert waiting.metadata.finalizers == ["foregroundDeletion"]
    await core.patch_namespaced_config_map("child", ns, {"metadata": {"finalizers": None}})

    async def both_gone() -> bool:
        names = {c.metadata.name for c in (await core.list_namespaced_config_map(ns)).items}
        return not names & {"owner", "child"}

    await eventually(both_gone)


async def test_the_dynamic_client_returns_errors_as_status_data(dyn: DynamicClient, ns: str) -> None:
    cms = await dyn.resources.get(api_version="v1", kind="ConfigMap")
    answer = await dyn.get(cms, name="absent", namespace=ns)
    assert json.loads(json.dumps(answer.to_dict()))["reason"] == "NotFound"
