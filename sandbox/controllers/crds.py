"""CRD cleanup: a deleted CRD keeps its ``customresourcecleanup`` finalizer until its objects are gone.

Registration itself is synchronous (``sandbox.server.registry``); this controller does the slow half of
a deletion, as the apiextensions-apiserver's finalizer controller does.
"""

from __future__ import annotations

from sandbox.controllers import Controller
from sandbox.server.admission import CRD_FINALIZER
from sandbox.server.registry import CRD_RESOURCE
from sandbox.server.storage import clone


class CrdCleanup(Controller):
    name = "crd-cleanup"
    resources = (CRD_RESOURCE,)

    async def reconcile(self, resource: str, namespace: str, name: str) -> float | None:
        crd = self.store.get(resource, "", name)
        if crd is None or not crd["metadata"].get("deletionTimestamp"):
            return None
        if CRD_FINALIZER not in (crd["metadata"].get("finalizers") or []):
            return None
        spec = crd["spec"]
        rt = self.server.registry.preferred(f"{spec['names']['plural']}.{spec['group']}")
        if rt is not None:
            remaining = list(self.store.items(rt.resource))
            for obj in remaining:
                meta = obj["metadata"]
                if not meta.get("deletionTimestamp"):
                    self.objects.delete(rt, meta.get("namespace", ""), meta["name"])
            if self.store.items(rt.resource):
                return 0.1
        new = clone(crd)
        new["metadata"]["finalizers"] = [f for f in new["metadata"]["finalizers"] if f != CRD_FINALIZER]
        self.objects.write(self.objects.rt(CRD_RESOURCE), crd, new)
        return None
