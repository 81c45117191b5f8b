"""Discovery of a StatefulSet's claims in a sandbox cluster: the claims its templates make are
references that resolve, never warnings about objects that "do not exist"."""

from __future__ import annotations

import asyncio

from sandbox import SandboxClusters
from services.discovery.discovering import DiscoveryService
from services.intake.intake import IntakeService
from shared.bus.client import BusClient
from shared.contracts.inventory import decode_inventory
from shared.contracts.requests import MobilityRequest, RequestKind, Source
from shared.contracts.states import Phase
from shared.kube import Clusters
from shared.runtime import Settings

CACHE = {
    "apiVersion": "apps/v1",
    "kind": "StatefulSet",
    "metadata": {"name": "cache", "namespace": "shop"},
    "spec": {
        "serviceName": "db",
        "replicas": 2,
        "selector": {"matchLabels": {"app": "cache"}},
        "volumeClaimTemplates": [
            {"metadata": {"name": "data"}, "spec": {"accessModes": ["ReadWriteOnce"],
             "storageClassName": "fast", "resources": {"requests": {"storage": "1Gi"}}}}
        ],
        "template": {
            "metadata": {"labels": {"app": "cache"}},
            "spec": {
                "containers": [{"name": "redis", "image": "redis:7",
                                "volumeMounts": [{"name": "data", "mountPath": "/data"}]}],
                # replaced by the template's claim per replica: names no claim called "data"
                "volumes": [{"name": "data", "persistentVolumeClaim": {"claimName": "data"}}],
            },
        },
    },
}  # fmt: skip


async def test_the_claims_of_a_statefulset_s_templates_resolve_without_a_warning(
    settings: Settings, client: BusClient, clusters: SandboxClusters
) -> None:
    claims = {"data-cache-0", "data-cache-1"}
    async with Clusters(settings.kubeconfig) as kube:
        east = await kube.get("east")
        await east.create(CACHE)
        for _ in range(200):  # the sandbox's StatefulSet controller makes the claims and the pods
            names = {c["metadata"]["name"] for c in await east.list("persistentvolumeclaims", "shop")}
            pods = {p["metadata"]["name"] for p in await east.list("pods", "shop")}
            if claims <= names and {"cache-0", "cache-1"} <= pods:
                break
            await asyncio.sleep(0.05)
        assert claims <= names and {"cache-0", "cache-1"} <= pods

    request = MobilityRequest(kind=RequestKind.REPLICATE, itinerary=["discover"],
                              source=Source(cluster="east", namespaces=["shop"]))  # fmt: skip
    async with IntakeService(settings), DiscoveryService(settings) as service:
        state = await client.wait(await client.submit(request), within=60)
        assert state.phase is Phase.COMPLETED, state.reason
        stored = await service.topology.inventories.get(state.outputs["inventory"])
    inventory = decode_inventory(stored.data or b"")

    assert inventory.warnings == []
    from_cache = {(r.target, r.via, r.missing) for r in inventory.references
                  if r.source == "statefulsets.apps/shop/cache" and r.target.startswith("persistentvolumeclaims/")}  # fmt: skip
    assert from_cache == {
        ("persistentvolumeclaims/shop/data-cache-0", "volumeClaimTemplates", False),
        ("persistentvolumeclaims/shop/data-cache-1", "volumeClaimTemplates", False),
    }
    volumes = {v.claim: v.mounted_by for v in inventory.volumes}
    for ordinal in (0, 1):  # the StatefulSet, and the one pod of it that mounts the claim
        mounted_by = volumes[f"data-cache-{ordinal}"]
        assert sorted(mounted_by) == [f"pods/shop/cache-{ordinal}", "statefulsets.apps/shop/cache"]
        pod = inventory.item(f"pods/shop/cache-{ordinal}")
        assert pod is not None and pod.owned and pod.owners == ["statefulsets.apps/shop/cache"]
