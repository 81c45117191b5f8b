"""The registry of served resource types: built-ins at start, CRD versions added and removed live.

Routing (group, version, plural), discovery and the write path all ask the registry, so a CRD
becomes servable, discoverable and writable in one step, and disappears the same way. The
``CrdRegistrar`` is a store subscriber (called synchronously on every write) that keeps the registry
in step with the CRD objects, so the answer to ``POST customresourcedefinitions`` is already
followed by working discovery and CRUD for the new kind. Removing the objects of a deleted CRD
(behind the ``customresourcecleanup`` finalizer) is the job of ``sandbox.controllers.crds``.
"""

from __future__ import annotations

from typing import Any

from sandbox.server.storage import Event, ObjectStore
from sandbox.types import ResourceType, version_priority
from sandbox.types.builtin import BUILTIN_TYPES


class Registry:
    def __init__(self) -> None:
        self._types: dict[tuple[str, str, str], ResourceType] = {}
        for rt in BUILTIN_TYPES:
            self.add(rt)

    def add(self, rt: ResourceType) -> None:
        self._types[(rt.group, rt.version, rt.plural)] = rt

    def remove_crd(self, crd_name: str) -> None:
        for key in [k for k, rt in self._types.items() if rt.crd == crd_name]:
            del self._types[key]

    def lookup(self, group: str, version: str, plural: str) -> ResourceType | None:
        return self._types.get((group, version, plural))

    def types(self) -> list[ResourceType]:
        return list(self._types.values())

    def for_group_version(self, group: str, version: str) -> list[ResourceType]:
        return [rt for rt in self._types.values() if rt.group == group and rt.version == version]

    def groups(self) -> dict[str, list[str]]:
        """group -> served versions, preferred first (core group excluded)."""
        out: dict[str, set[str]] = {}
        for rt in self._types.values():
            if rt.group:
                out.setdefault(rt.group, set()).add(rt.version)
        return {g: sorted(vs, key=version_priority, reverse=True) for g, vs in out.items()}

    def preferred(self, resource: str) -> ResourceType | None:
        """The preferred version's type for a store key such as ``deployments.apps``."""
        candidates = [rt for rt in self._types.values() if rt.resource == resource]
        if not candidates:
            return None
        return max(candidates, key=lambda rt: version_priority(rt.version))

    def by_kind(self, api_version: str, kind: str) -> ResourceType | None:
        group, _, version = api_version.rpartition("/")
        for rt in self._types.values():
            if rt.group == group and rt.version == version and rt.kind == kind:
                return rt
        return None


def types_from_crd(crd: dict[str, Any]) -> list[ResourceType]:
    """The served versions of a CRD as resource types (scope, names and subresources from its spec)."""
    spec = crd.get("spec", {})
    names = spec.get("names", {})
    out = []
    for v in spec.get("versions", []):
        if not v.get("served", True):
            continue
        sub = v.get("subresources") or {}
        scale = sub.get("scale")
        out.append(
            ResourceType(
                group=spec["group"],
                version=v["name"],
                plural=names["plural"],
                kind=names["kind"],
                namespaced=spec.get("scope", "Namespaced") == "Namespaced",
                singular=names.get("singular") or names["kind"].lower(),
                short_names=tuple(names.get("shortNames") or ()),
                categories=tuple(names.get("categories") or ()),
                status="status" in sub,
                scale=scale is not None,
                generation=True,
                strategic=False,
                crd=crd["metadata"]["name"],
                printer_columns=tuple(
                    (c["name"], c.get("type", "string"), c["jsonPath"])
                    for c in v.get("additionalPrinterColumns") or []
                    if c.get("name") and c.get("jsonPath") and not c.get("priority")
                ),
                scale_paths=(
                    (scale or {}).get("specReplicasPath", ".spec.replicas").lstrip("."),
                    (scale or {}).get("statusReplicasPath", ".status.replicas").lstrip("."),
                    (scale or {}).get("labelSelectorPath", "").lstrip("."),
                ),
            )
        )
    return out


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
