"""Endpoints and EndpointSlices for Services, as the endpoint controllers maintain them.

Real clusters hold an ``Endpoints`` object (same name, no owner) and one or more
``EndpointSlice`` objects (owned by the Service, labelled ``kubernetes.io/service-name``) for every
Service with a selector. Ferry must recognise both as derived state and skip them, so the sandbox
creates them too. The sandbox runs no pods for workloads, so they list no addresses.
"""

from __future__ import annotations

from typing import Any

from sandbox.controllers import Controller
from sandbox.server.objects import random_suffix

SERVICES, ENDPOINTS, SLICES = "services", "endpoints", "endpointslices.discovery.k8s.io"
MANAGED_BY = "endpointslice-controller.k8s.io"


class EndpointsController(Controller):
    name = "endpoints"
    resources = (SERVICES,)

    async def reconcile(self, resource: str, namespace: str, name: str) -> float | None:
        svc = self.store.get(SERVICES, namespace, name)
        if (
            svc is None
            or svc["metadata"].get("deletionTimestamp")
            or not (svc.get("spec") or {}).get("selector")
        ):
            if svc is None and self.store.get(ENDPOINTS, namespace, name) is not None:
                self.objects.delete(self.objects.rt(ENDPOINTS), namespace, name)
            return None
        ports = [
            {
                k: v
                for k, v in (
                    ("name", p.get("name")),
                    ("port", p.get("targetPort", p.get("port"))),
                    ("protocol", p.get("protocol", "TCP")),
                )
                if v is not None
            }
            for p in svc["spec"].get("ports") or []
        ]
        if self.store.get(ENDPOINTS, namespace, name) is None:
            self.objects.create(
                self.objects.rt(ENDPOINTS),
                namespace,
                {"metadata": {"name": name, "labels": dict(svc["metadata"].get("labels") or {})}},
            )
        slices = [
            s
            for s in self.store.items(SLICES, namespace)
            if (s["metadata"].get("labels") or {}).get("kubernetes.io/service-name") == name
        ]
        if not slices:
            self.objects.create(self.objects.rt(SLICES), namespace, _slice(svc, ports))
        return None


def _slice(svc: dict[str, Any], ports: list[dict[str, Any]]) -> dict[str, Any]:
    meta = svc["metadata"]
    return {
        "metadata": {
            "name": f"{meta['name']}-{random_suffix()}",
            "labels": {
                **(meta.get("labels") or {}),
                "kubernetes.io/service-name": meta["name"],
                "endpointslice.kubernetes.io/managed-by": MANAGED_BY,
            },
            "ownerReferences": [
                {
                    "apiVersion": "v1",
                    "kind": "Service",
                    "name": meta["name"],
                    "uid": meta["uid"],
                    "controller": True,
                    "blockOwnerDeletion": True,
                }
            ],
        },
        "addressType": "IPv4",
        "endpoints": [],
        "ports": ports,
    }


class LoadBalancerController(Controller):
    """A cloud provider's service controller: a LoadBalancer Service gets an ingress IP.

    Addresses come from 172.18.255.200 up (as a kind cluster's MetalLB hands them out) and are
    reported with ``ipMode: VIP``; a Service that stops being a LoadBalancer loses its ingress.
    """

    name = "load-balancers"
    resources = (SERVICES,)

    def __init__(self, server: Any) -> None:
        super().__init__(server)
        self._next = 200

    async def reconcile(self, resource: str, namespace: str, name: str) -> float | None:
        svc = self.store.get(SERVICES, namespace, name)
        if svc is None or svc["metadata"].get("deletionTimestamp"):
            return None
        status = svc.get("status") or {}
        ingress = (status.get("loadBalancer") or {}).get("ingress")
        balanced = (svc.get("spec") or {}).get("type") == "LoadBalancer"
        if balanced and not ingress:
            ip = f"172.18.{255 - self._next // 256}.{self._next % 256}"
            self._next += 1
            wanted = {**status, "loadBalancer": {"ingress": [{"ip": ip, "ipMode": "VIP"}]}}
        elif not balanced and ingress:
            wanted = {**status, "loadBalancer": {}}
        else:
            return None
        self.objects.write(self.objects.rt(SERVICES), svc, {**svc, "status": wanted}, subresource="status")
        return None
