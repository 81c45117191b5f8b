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
