"""shared.kube against a sandbox API server over HTTP: what readers and writers of objects rely on."""

from __future__ import annotations

import asyncio

import pytest

from sandbox import SandboxClusters
from shared.contracts.errors import PermanentError, TemporaryError
from shared.kube import (
    AlreadyExists,
    Cluster,
    Clusters,
    Conflict,
    Invalid,
    NoSuchCluster,
    NotFound,
    PatchType,
    UnknownResource,
    Unreachable,
    has_condition,
)
from shared.kube.requesting import RetryPolicy


def config_map(name: str, ns: str, **data: str) -> dict[str, object]:
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": name, "namespace": ns},
        "data": data,
    }


async def test_discovery_lists_preferred_versions_and_marks_custom_resources(east: Cluster) -> None:
    names = {r.name: r for r in await east.resources.preferred()}
    assert {"configmaps", "deployments.apps", "customresourcedefinitions.apiextensions.k8s.io"} <= set(names)
    assert names["volumesnapshots.snapshot.storage.k8s.io"].custom
    assert not names["deployments.apps"].custom
    assert not names["persistentvolumes"].namespaced
    assert (await east.resource("deploy")).name == "deployments.apps"
    assert (await east.resource("Deployment")).path(
        "shop", "web"
    ) == "/apis/apps/v1/namespaces/shop/deployments/web"


async def test_a_crd_created_after_discovery_is_found_and_never_gets_strategic_merge(
    east: Cluster, ns: str, unique: str
) -> None:
    await east.resources.preferred()  # discovery done before the CRD exists
    group = f"t{unique}.ferry.dev"
    crd = {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": f"widgets.{group}"},
        "spec": {
            "group": group,
            "scope": "Namespaced",
            "names": {"plural": "widgets", "singular": "widget", "kind": "Widget"},
            "versions": [{"name": "v1", "served": True, "storage": True, "schema": {"openAPIV3Schema": {
                "type": "object", "x-kubernetes-preserve-unknown-fields": True}}}],
        },
    }  # fmt: skip
    await east.create(crd)
    await east.create({"apiVersion": f"{group}/v1", "kind": "Widget", "metadata": {"name": "w", "namespace": ns},
                       "spec": {"size": 1, "colour": "red"}})  # fmt: skip
    patched = await east.patch(
        f"widgets.{group}", "w", {"spec": {"size": 2}}, namespace=ns, patch_type=PatchType.STRATEGIC
    )
    assert patched["spec"] == {"size": 2, "colour": "red"}
    assert (await east.resource(f"widgets.{group}")).custom
    with pytest.raises(UnknownResource, match="serves no resource 'gadgets'"):
        await east.resource("gadgets")


async def test_create_get_replace_patch_delete_with_ferry_errors(east: Cluster, ns: str) -> None:
    created = await east.create(config_map("c", ns, a="1"))
    assert created["metadata"]["uid"] and created["kind"] == "ConfigMap"
    with pytest.raises(AlreadyExists, match='configmaps "c" already exists') as taken:
        await east.create(config_map("c", ns))
    assert isinstance(taken.value, PermanentError)
    stale = dict(created, data={"a": "2"})
    await east.replace(stale)
    with pytest.raises(Conflict) as conflict:  # the same resourceVersion again is stale now
        await east.replace(dict(created, data={"a": "3"}))
    assert isinstance(conflict.value, TemporaryError)
    await east.patch("configmaps", "c", [{"op": "add", "path": "/data/b", "value": "x"}], namespace=ns,
                     patch_type=PatchType.JSON)  # fmt: skip
    await east.patch("configmaps", "c", {"data": {"a": None}}, namespace=ns)
    assert (await east.get("configmaps", "c", ns))["data"] == {"b": "x"}
    with pytest.raises(Invalid):
        await east.create({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"namespace": ns}})
    await east.delete("configmaps", "c", namespace=ns)
    with pytest.raises(NotFound, match='configmaps "c" not found'):
        await east.get("configmaps", "c", ns)
    assert await east.find("configmaps", "c", ns) is None
    assert await east.delete("configmaps", "c", namespace=ns) is None  # already gone: fine


async def test_server_side_apply_creates_then_updates(east: Cluster, ns: str) -> None:
    await east.apply(config_map("applied", ns, a="1"), field_manager="ferry-test")
    await east.apply(config_map("applied", ns, a="2"), field_manager="ferry-test")
    assert (await east.get("configmaps", "applied", ns))["data"] == {"a": "2"}


async def test_lists_page_through_every_object_with_kind_filled_in(east: Cluster, ns: str) -> None:
    await asyncio.gather(*(east.create(config_map(f"m{i:02}", ns, i=str(i))) for i in range(23)))
    pages = [o async for o in east.iterate("configmaps", ns, limit=5, label_selector="")]
    names = [o["metadata"]["name"] for o in pages if o["metadata"]["name"].startswith("m")]
    assert names == [f"m{i:02}" for i in range(23)]
    assert all(o["kind"] == "ConfigMap" and o["apiVersion"] == "v1" for o in pages)


async def test_watch_resumes_and_wait_for_sees_a_condition(
    east: Cluster, ns: str, clusters: SandboxClusters
) -> None:
    r = await east.resource("configmaps")
    seen: list[tuple[str, str]] = []

    async def follow() -> None:
        async for event in east.watch(r, ns, within=3):
            seen.append((event.type, event.name))
            if event.name == "w2":
                return

    task = asyncio.create_task(follow())
    await asyncio.sleep(0.2)
    await east.create(config_map("w1", ns))
    await east.create(config_map("w2", ns))
    await asyncio.wait_for(task, 5)
    assert ("ADDED", "w1") in seen and ("ADDED", "w2") in seen

    job = {"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": "j", "namespace": ns},
           "spec": {"template": {"spec": {"restartPolicy": "Never",
                                          "containers": [{"name": "c", "image": "busybox:1.36"}]}}}}  # fmt: skip
    await east.create(job)
    done = await east.wait_for(
        "jobs.batch", "j", lambda o: has_condition(o, "Complete"), namespace=ns, within=10
    )
    assert done is not None
    assert (await east.wait_condition("jobs.batch", "j", "Complete", namespace=ns))["metadata"]["name"] == "j"
    with pytest.raises(TimeoutError, match="never"):
        await east.wait_for("jobs.batch", "j", lambda o: False, namespace=ns, within=0.3, what="never")


async def test_a_missing_context_and_an_unreachable_cluster_are_told_apart(
    clusters: SandboxClusters, tmp_path: object
) -> None:
    from pathlib import Path

    from sandbox import write_kubeconfig

    path = write_kubeconfig(Path(str(tmp_path)) / "kc", [("gone", "http://127.0.0.1:9")])
    async with Clusters(str(path), retry=RetryPolicy(attempts=2, initial=0.01)) as kube:
        with pytest.raises(NoSuchCluster, match="no cluster named 'north'.*known clusters: gone"):
            await kube.get("north")
        gone = await kube.get("gone")
        with pytest.raises(Unreachable, match="cluster gone is unreachable at http://127.0.0.1:9") as e:
            await gone.get("namespaces", "default")
        assert isinstance(e.value, TemporaryError)
