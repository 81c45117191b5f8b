"""Namespace lifecycle: seed the system namespaces, fill new ones, empty and finalize deleted ones.

The ``kubernetes`` Service (10.96.0.1) is seeded in ``default``. As in kube-controller-manager: every namespace (the system ones too) gets the ``default`` ServiceAccount and the
``kube-root-ca.crt`` ConfigMap (Ferry must learn to skip them); a deleted one is ``Terminating``
until every namespaced object in it is gone (their own finalizers respected), then the
``kubernetes`` spec finalizer is removed and the namespace disappears.
"""

from __future__ import annotations

from sandbox.controllers import Controller, Key
from sandbox.server.storage import Event

SYSTEM_NAMESPACES = ("default", "kube-system", "kube-public", "kube-node-lease")
ROOT_CA = "-----BEGIN CERTIFICATE-----\nMIIBsandboxFakeRootCA\n-----END CERTIFICATE-----\n"


class NamespaceController(Controller):
    name = "namespaces"

    async def seed(self) -> None:
        rt = self.objects.rt("namespaces")
        for ns in SYSTEM_NAMESPACES:
            if self.store.get("namespaces", "", ns) is None:
                self.objects.create(rt, "", {"metadata": {"name": ns}})
        if self.store.get("services", "default", "kubernetes") is None:
            spec = {
                "clusterIP": "10.96.0.1",
                "ports": [{"name": "https", "port": 443, "protocol": "TCP", "targetPort": 6443}],
                "sessionAffinity": "None",
                "type": "ClusterIP",
            }
            labels = {"component": "apiserver", "provider": "kubernetes"}
            body = {"metadata": {"name": "kubernetes", "labels": labels}, "spec": spec}
            self.objects.create(self.objects.rt("services"), "default", body, manager="kube-apiserver")

    def start(self) -> None:
        """Namespaces seeded before the event stream was watched (the system ones) are filled too."""
        for ns in self.store.items("namespaces"):
            self.enqueue(("namespaces", "", ns["metadata"]["name"]))
        super().start()

    def keys_for(self, event: Event) -> list[Key]:
        meta = event.obj["metadata"]
        if event.resource == "namespaces":
            return [("namespaces", "", meta["name"])]
        ns = meta.get("namespace")
        if ns and event.type == "DELETED":
            owner = self.store.get("namespaces", "", ns)
            if owner is not None and owner["metadata"].get("deletionTimestamp"):
                return [("namespaces", "", ns)]
        return []

    async def reconcile(self, resource: str, namespace: str, name: str) -> float | None:
        ns = self.store.get("namespaces", "", name)
        if ns is None:
            return None
        if not ns["metadata"].get("deletionTimestamp"):
            self._fill(name)
            return None
        remaining = 0
        for rt in {t.resource: t for t in self.server.registry.types() if t.namespaced}.values():
            for obj in list(self.store.items(rt.resource, name)):
                remaining += 1
                if not obj["metadata"].get("deletionTimestamp"):
                    self.objects.delete(rt, name, obj["metadata"]["name"])
        if remaining:
            return 0.2
        spec = ns.get("spec") or {}
        if "kubernetes" in (spec.get("finalizers") or []):
            body = {"spec": {"finalizers": [f for f in spec["finalizers"] if f != "kubernetes"]}}
            self.objects.update(self.objects.rt("namespaces"), "", name, body, subresource="finalize")
        return None

    def _fill(self, ns: str) -> None:
        if self.store.get("serviceaccounts", ns, "default") is None:
            self.objects.create(self.objects.rt("serviceaccounts"), ns, {"metadata": {"name": "default"}})
        if self.store.get("configmaps", ns, "kube-root-ca.crt") is None:
            self.objects.create(
                self.objects.rt("configmaps"),
                ns,
                {
                    "metadata": {
                        "name": "kube-root-ca.crt",
                        "annotations": {
                            "kubernetes.io/description": "Contains a CA bundle for the sandbox API server."
                        },
                    },
                    "data": {"ca.crt": ROOT_CA},
                },
            )
