"""The discovery step end to end: a request on a real nats-server, the shop app in a sandbox cluster,
the inventory read back from the object store as the snapshot step reads it."""

from __future__ import annotations

import contextlib
import hashlib
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from sandbox import SandboxClusters, write_kubeconfig
from sandbox.apps import SHOP_DIR
from sandbox.seeding import load_documents
from services.discovery.discovering import DiscoveryService
from services.discovery.preflight import PreflightService
from services.intake.intake import IntakeService
from shared.bus.client import BusClient
from shared.contracts.events import Report, Warning
from shared.contracts.inventory import Inventory, decode_inventory
from shared.contracts.reports import DocumentKind
from shared.contracts.requests import MobilityRequest, RequestKind, Source
from shared.contracts.states import Phase, RequestState
from shared.kube import Clusters
from shared.runtime import Settings


@contextlib.asynccontextmanager
async def discovery(settings: Settings) -> AsyncIterator[DiscoveryService]:
    async with IntakeService(settings), PreflightService(settings), DiscoveryService(settings) as service:
        yield service  # type: ignore[misc]


def replicate(*namespaces: str, cluster: str = "east", **fields: object) -> MobilityRequest:
    return MobilityRequest(
        kind=RequestKind.REPLICATE,
        source=Source(cluster=cluster, namespaces=list(namespaces)),
        itinerary=["discover"],
        **fields,  # type: ignore[arg-type]
    )


def filtered(**filters: list[str]) -> MobilityRequest:
    """A discovery of east's shop with include/exclude filters."""
    return MobilityRequest(kind=RequestKind.REPLICATE, itinerary=["discover"],
                           source=Source(cluster="east", namespaces=["shop"], **filters))  # fmt: skip


async def run(
    settings: Settings, client: BusClient, request: MobilityRequest
) -> tuple[RequestState, Inventory | None]:
    async with discovery(settings) as service:
        rid = await client.submit(request)
        state = await client.wait(rid, within=60)
        name = state.outputs.get("inventory")
        inventory = decode_inventory((await service.topology.inventories.get(name)).data) if name else None
    return state, inventory


OWNED_KINDS = {"pods", "replicasets.apps"}  # what the sandbox's controllers make for the workloads


def workload_objects(inventory: Inventory, workloads: dict[str, int]) -> set[str]:
    """Check the owned ReplicaSets and Pods of ``workloads`` (key -> replicas): each Deployment owns
    one ``<name>-<hash>`` ReplicaSet owning its ``<replicaset>-xxxxx`` Pods, each StatefulSet owns its
    ``<name>-<ordinal>`` Pods; returns the keys of all of them (names have random suffixes)."""
    found: set[str] = set()
    for workload, replicas in workloads.items():
        resource, namespace, name = workload.split("/")
        if resource == "deployments.apps":
            sets = [i for i in inventory.items if i.resource == "replicasets.apps" and i.owners == [workload]]
            assert len(sets) == 1 and sets[0].owned and sets[0].name.startswith(f"{name}-"), sets
            pods = [i for i in inventory.items if i.resource == "pods" and i.owners == [sets[0].key]]
            assert len(pods) == replicas and all(p.name.startswith(f"{sets[0].name}-") for p in pods)
            found.add(sets[0].key)
        else:
            pods = [i for i in inventory.items if i.resource == "pods" and i.owners == [workload]]
            assert sorted(p.name for p in pods) == [f"{name}-{n}" for n in range(replicas)]
        assert all(p.owned and p.namespace == namespace for p in pods)
        found |= {p.key for p in pods}
    return found


def manifest_keys() -> set[str]:
    """The keys of the shop's YAML, as the inventory names them."""
    plural = {"Namespace": "namespaces", "ConfigMap": "configmaps", "Secret": "secrets",
              "ServiceAccount": "serviceaccounts", "Service": "services",
              "PersistentVolumeClaim": "persistentvolumeclaims"}  # fmt: skip
    keys = set()
    for doc in load_documents([SHOP_DIR]):
        kind, meta = doc["kind"], doc["metadata"]
        group = doc["apiVersion"].rpartition("/")[0]
        name = plural.get(kind) or f"{kind.lower()}s" + (f".{group}" if group else "")
        name = {"ingresss.networking.k8s.io": "ingresses.networking.k8s.io", "horizontalpodautoscalers.autoscaling":
                "horizontalpodautoscalers.autoscaling", "networkpolicys.networking.k8s.io":
                "networkpolicies.networking.k8s.io"}.get(name, name)  # fmt: skip
        if kind == "CustomResourceDefinition":
            name = "customresourcedefinitions.apiextensions.k8s.io"
        keys.add(
            f"{name}/{meta['namespace']}/{meta['name']}"
            if meta.get("namespace")
            else f"{name}/{meta['name']}"
        )
    return keys


async def test_the_shop_inventory_holds_its_manifests_its_claims_and_their_cluster_dependencies(
    settings: Settings, client: BusClient, clusters: SandboxClusters
) -> None:
    state, inventory = await run(settings, client, replicate("shop"))
    assert state.phase is Phase.COMPLETED, state.reason
    assert inventory is not None
    async with Clusters(settings.kubeconfig) as kube:
        east = await kube.get("east")
        claims = {c["metadata"]["name"]: c for c in await east.list("persistentvolumeclaims", "shop")}
    pvs = {f"persistentvolumes/{c['spec']['volumeName']}" for c in claims.values()}
    expected = manifest_keys() | {"persistentvolumeclaims/shop/pgdata-db-0"} | pvs
    expected |= {"storageclasses.storage.k8s.io/fast", "storageclasses.storage.k8s.io/standard"}
    keys = {item.key for item in inventory.items if not item.owned}
    assert keys - expected == set(), "captured objects that are not the application's"
    assert expected - keys == set(), "missed objects of the application"
    owned = {item.key for item in inventory.items if item.owned}
    assert {key.split("/")[0] for key in owned} == OWNED_KINDS  # only ReplicaSets and Pods are owned
    assert owned == workload_objects(
        inventory, {"deployments.apps/shop/web": 2, "statefulsets.apps/shop/db": 1}
    )
    assert {s.key for s in inventory.skipped} == {
        "configmaps/shop/kube-root-ca.crt",
        "serviceaccounts/shop/default",
    }
    assert inventory.warnings == []
    crd = inventory.item("customresourcedefinitions.apiextensions.k8s.io/promotions.shop.ferry.dev")
    assert crd is not None and crd.needed_by == ["promotions.shop.ferry.dev/shop/winter-sale"]
    secret = inventory.item("secrets/shop/db-credentials")
    assert secret is not None and "managedFields" not in secret.object["metadata"]
    # the inventory is stored on the bus: a Secret's values as digests (the snapshot reads them again)
    assert secret.object["data"]["POSTGRES_USER"] == "sha256:" + hashlib.sha256(b"c2hvcA==").hexdigest()

    volumes = {v.claim: v for v in inventory.volumes}
    assert set(volumes) == {"pgdata-db-0", "web-uploads"}
    db = volumes["pgdata-db-0"]
    assert (db.size, db.storage_class, db.access_modes, db.phase) == (
        "2Gi",
        "fast",
        ["ReadWriteOnce"],
        "Bound",
    )
    assert db.snapshot_class == "sandbox-snapclass" and db.driver == "sandbox.ferry.dev/local-path"
    assert sorted(db.mounted_by) == ["pods/shop/db-0", "statefulsets.apps/shop/db"]
    web = {key for key in owned if key.split("/")[-1].startswith("web-")}  # its ReplicaSet and Pods
    assert len(web) == 3
    assert set(volumes["web-uploads"].mounted_by) == {"deployments.apps/shop/web", *web}

    edges = {(r.source, r.target) for r in inventory.references}
    assert ("deployments.apps/shop/web", "configmaps/shop/shop-config") in edges
    assert ("ingresses.networking.k8s.io/shop/web", "services/shop/web") in edges
    assert ("horizontalpodautoscalers.autoscaling/shop/web", "deployments.apps/shop/web") in edges
    assert (
        "rolebindings.rbac.authorization.k8s.io/shop/shop-web",
        "roles.rbac.authorization.k8s.io/shop/shop-web",
    ) in edges

    result = state.step_state(state.itinerary[0]).result
    assert result is not None
    assert result.counts["deployments.apps"] == 1 and result.counts["configmaps"] == 2
    assert result.counts["volumes"] == 2 and result.warnings == []


async def test_owned_objects_role_bindings_priority_classes_and_dangling_references(
    settings: Settings, client: BusClient, clusters: SandboxClusters
) -> None:
    async with Clusters(settings.kubeconfig) as kube:
        east = await kube.get("east")
        promo = await east.get("promotions.shop.ferry.dev", "winter-sale", "shop")
        owner = {"apiVersion": "shop.ferry.dev/v1", "kind": "Promotion", "name": "winter-sale",
                 "uid": promo["metadata"]["uid"], "controller": True}  # fmt: skip
        await east.create({"apiVersion": "v1", "kind": "ConfigMap", "data": {"banner": "20%"},
                           "metadata": {"name": "winter-banner", "namespace": "shop", "ownerReferences": [owner]}})  # fmt: skip
        await east.create({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
                           "metadata": {"name": "shop-reader"},
                           "rules": [{"apiGroups": [""], "resources": ["nodes"], "verbs": ["get"]}]})  # fmt: skip
        await east.create({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding",
                           "metadata": {"name": "shop-reader"},
                           "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "shop-reader"},
                           "subjects": [{"kind": "ServiceAccount", "name": "shop-web", "namespace": "shop"}]})  # fmt: skip
        await east.create({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding",
                           "metadata": {"name": "someone-else"},
                           "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "view"},
                           "subjects": [{"kind": "ServiceAccount", "name": "x", "namespace": "other"}]})  # fmt: skip
        await east.create({"apiVersion": "scheduling.k8s.io/v1", "kind": "PriorityClass",
                           "metadata": {"name": "shop-critical"}, "value": 1000})  # fmt: skip
        await east.create({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "worker", "namespace": "shop"},
                           "spec": {"selector": {"matchLabels": {"app": "worker"}}, "template": {
                               "metadata": {"labels": {"app": "worker"}},
                               "spec": {"priorityClassName": "shop-critical", "containers": [{
                                   "name": "w", "image": "busybox:1.36",
                                   "envFrom": [{"secretRef": {"name": "worker-token"}},
                                               {"configMapRef": {"name": "tuning", "optional": True}}]}]}}}})  # fmt: skip
        await east.create({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "scratch", "namespace": "shop",
                           "labels": {"ferry.dev/role": "mover-credentials"}}})  # fmt: skip

    state, inventory = await run(settings, client, replicate("shop"))
    assert state.phase is Phase.COMPLETED, state.reason
    assert inventory is not None
    banner = inventory.item("configmaps/shop/winter-banner")
    assert (
        banner is not None
        and banner.owned
        and banner.owners == ["promotions.shop.ferry.dev/shop/winter-sale"]
    )
    owned = [i for i in inventory.items if i.owned]
    assert [i.key for i in owned if i.resource not in OWNED_KINDS] == ["configmaps/shop/winter-banner"]
    workloads = {
        "deployments.apps/shop/web": 2,
        "statefulsets.apps/shop/db": 1,
        "deployments.apps/shop/worker": 1,
    }
    assert {i.key for i in owned if i.resource in OWNED_KINDS} == workload_objects(inventory, workloads)
    crb = inventory.item("clusterrolebindings.rbac.authorization.k8s.io/shop-reader")
    assert crb is not None and crb.needed_by == ["serviceaccounts/shop/shop-web"]
    role = inventory.item("clusterroles.rbac.authorization.k8s.io/shop-reader")
    assert role is not None and role.needed_by == [
        "clusterrolebindings.rbac.authorization.k8s.io/shop-reader"
    ]
    assert inventory.item("clusterrolebindings.rbac.authorization.k8s.io/someone-else") is None
    priority = inventory.item("priorityclasses.scheduling.k8s.io/shop-critical")
    assert priority is not None
    worker = {
        "deployments.apps/shop/worker",
        *workload_objects(inventory, {"deployments.apps/shop/worker": 1}),
    }
    assert set(priority.needed_by) == worker  # the Deployment, its ReplicaSet and its Pod
    assert inventory.item("configmaps/shop/scratch") is None  # Ferry's own
    assert (
        inventory.warnings
        == [  # once, for the Deployment: its ReplicaSet and Pod only repeat its template
            "deployments.apps/shop/worker references secrets/shop/worker-token (envFrom.secretRef), "
            "which does not exist in cluster east"
        ]
    )  # the optional ConfigMap is no problem
    dangling = [r for r in inventory.references if r.missing]
    assert {(r.target, r.optional) for r in dangling} == {
        ("secrets/shop/worker-token", False),
        ("configmaps/shop/tuning", True),
    }
    warned = [e async for _, e in client.events(state.id, follow=False, idle=0.3) if isinstance(e, Warning)]
    assert [w.message for w in warned] == inventory.warnings
    assert [w.object for w in warned] == ["deployments.apps/shop/worker"]


async def test_a_dry_run_stops_after_discovery_with_the_inventory_as_a_report(
    settings: Settings, client: BusClient
) -> None:
    request = MobilityRequest(
        kind=RequestKind.REPLICATE, source=Source(cluster="east", namespaces=["shop"]), dry_run=True
    )
    async with discovery(settings):
        rid = await client.submit(request)
        state = await client.wait(rid, within=60)
        events = [e async for _, e in client.events(rid, follow=False, idle=0.3)]
    assert state.phase is Phase.COMPLETED and [s.step.value for s in state.steps] == ["preflight", "discover"]
    reports = [e for e in events if isinstance(e, Report) and e.document == DocumentKind.INVENTORY]
    assert len(reports) == 1
    body = reports[0].body
    assert body["counts"]["statefulsets.apps"] == 1 and body["namespaces"] == ["shop"]
    assert {v["claim"] for v in body["volumes"]} == {"shop/pgdata-db-0", "shop/web-uploads"}
    assert all(v["snapshot"] == "csi (sandbox-snapclass)" for v in body["volumes"])


async def test_only_included_types_and_never_excluded_ones_are_captured(
    settings: Settings, client: BusClient
) -> None:
    state, inventory = await run(
        settings, client, filtered(include_resources=["configmaps", "Secret", "deploy"], exclude_resources=[])
    )
    assert state.phase is Phase.COMPLETED and inventory is not None
    namespaced = {i.resource for i in inventory.items if i.namespaced}
    assert namespaced == {"configmaps", "secrets", "deployments.apps"}
    state, inventory = await run(
        settings, client, filtered(exclude_resources=["secrets", "promotions.shop.ferry.dev"])
    )
    assert inventory is not None
    resources = {i.resource for i in inventory.items}
    assert "secrets" not in resources and "promotions.shop.ferry.dev" not in resources
    assert "customresourcedefinitions.apiextensions.k8s.io" not in resources  # no CR, no CRD


async def test_the_filters_apply_to_cluster_scoped_dependencies_too(
    settings: Settings, client: BusClient
) -> None:
    """Excluded types stay out even where the application needs them, each said in the skipped list;
    the CRD of a captured custom resource comes with it whatever the include list says (as in Velero)."""
    state, inventory = await run(
        settings, client, filtered(exclude_resources=["persistentvolumes", "storageclasses.storage.k8s.io"])
    )
    assert state.phase is Phase.COMPLETED and inventory is not None
    resources = {i.resource for i in inventory.items}
    assert not resources & {"persistentvolumes", "storageclasses.storage.k8s.io"}
    assert (
        "persistentvolumeclaims" in resources
        and "customresourcedefinitions.apiextensions.k8s.io" in resources
    )
    skipped = {s.key: s.reason for s in inventory.skipped}
    assert (
        "storageclasses.storage.k8s.io are excluded by the request"
        in skipped["storageclasses.storage.k8s.io/standard"]
    )
    assert any(k.startswith("persistentvolumes/") for k in skipped)

    state, inventory = await run(
        settings, client, filtered(include_resources=["promotions.shop.ferry.dev", "deployments.apps"])
    )
    assert inventory is not None
    resources = {i.resource for i in inventory.items}
    assert resources == {
        "namespaces",  # the namespace itself always comes
        "promotions.shop.ferry.dev",
        "deployments.apps",
        "customresourcedefinitions.apiextensions.k8s.io",
    }


@pytest.mark.parametrize(
    ("cluster", "namespace", "reason"),
    [
        pytest.param(
            "east", "nowhere", "namespace nowhere does not exist in cluster east", id="a missing namespace"
        ),
        pytest.param(
            "north", "shop", "no cluster named 'north'", id="a cluster the kubeconfig does not name"
        ),
        pytest.param(
            "gone", "shop", "cluster gone is unreachable at http://127.0.0.1:9", id="an unreachable cluster"
        ),
    ],
)
async def test_a_request_that_cannot_be_discovered_fails_with_the_reason(
    settings: Settings, client: BusClient, clusters: SandboxClusters, tmp_path: Path,
    cluster: str, namespace: str, reason: str,
) -> None:  # fmt: skip
    kubeconfig = write_kubeconfig(
        tmp_path / "kc", [("east", clusters["east"].url), ("gone", "http://127.0.0.1:9")]
    )
    settings = type(settings)(**{**{f: getattr(settings, f) for f in settings.__struct_fields__},
                                  "kubeconfig": str(kubeconfig)})  # fmt: skip
    state, inventory = await run(settings, client, replicate(namespace, cluster=cluster))
    assert state.phase is Phase.FAILED
    assert reason in state.reason and state.reason.startswith("discover failed")
    assert inventory is None


async def test_a_selector_without_namespaces_captures_the_matching_objects_of_every_namespace(
    settings: Settings, client: BusClient
) -> None:
    request = MobilityRequest(
        kind=RequestKind.REPLICATE, itinerary=["discover"], source=Source(cluster="east", selector="app=web")
    )
    state, inventory = await run(settings, client, request)
    assert state.phase is Phase.COMPLETED, state.reason
    assert inventory is not None and inventory.namespaces == ["shop"]
    namespaced = {i.key for i in inventory.items if i.namespaced and not i.owned}
    assert namespaced == {
        "deployments.apps/shop/web",
        "services/shop/web",
        "persistentvolumeclaims/shop/web-uploads",
    }
    owned = {i.key for i in inventory.items if i.owned}
    assert owned == workload_objects(inventory, {"deployments.apps/shop/web": 2})  # labelled app=web too
    assert "namespaces/shop" in {i.key for i in inventory.items}
    assert any(
        "configmaps/shop/shop-config" in w and "outside the selection" in w for w in inventory.warnings
    )
