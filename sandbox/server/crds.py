"""CRD registration: a CRD write adds or replaces its served versions in the registry at once.

A store subscriber (called synchronously on every write) keeps the registry in step with the CRD
objects, so the response to ``POST customresourcedefinitions`` is already followed by working
discovery and CRUD for the new kind. Removing the objects of a deleted CRD (behind the
``customresourcecleanup`` finalizer) is the job of ``sandbox.controllers.crds``.
"""

from __future__ import annotations

from sandbox.server.registry import Registry, types_from_crd
from sandbox.server.storage import Event, ObjectStore

CRD_RESOURCE = "customresourcedefinitions.apiextensions.k8s.io"


class CrdRegistrar:
    def __init__(self, store: ObjectStore, registry: Registry) -> None:
        self.store = store
        self.registry = registry
        store.subscribe(self.on_event)

    def on_event(self, event: Event) -> None:
        if event.resource != CRD_RESOURCE:
            return
        name = event.obj["metadata"]["name"]
        self.registry.remove_crd(name)
        if event.type == "DELETED":
            spec = event.obj.get("spec") or {}
            resource = f"{spec.get('names', {}).get('plural')}.{spec.get('group')}"
            self.store.drop_resource(resource)
            return
        for rt in types_from_crd(event.obj):
            self.registry.add(rt)
