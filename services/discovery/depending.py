"""The reference graph, the cluster-scoped objects an application needs, and its volumes' facts.

Starting from the collected namespaced objects, every reference (``references.py``) is resolved:
to a captured object (an edge), to a cluster-scoped object the application needs (it joins the
inventory with ``needed_by``: the PVs of its claims, their StorageClasses, PriorityClasses,
ClusterRoles), to an object that exists but was not selected (a warning: restore will not bring
it), or to nothing (a dangling reference: a warning, unless the API marks it optional). Then the
CRDs of its custom resources and the ClusterRoleBindings that bind its ServiceAccounts (and their
ClusterRoles) are added, as Velero's and Crane's cluster-scoped actions do.

Per claim, the snapshot step gets what it must decide on: size, access modes, class, the CSI
driver, whether a VolumeSnapshotClass exists for that driver, and which workloads mount it.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from services.discovery.collecting import Collected, item_of, matches
from services.discovery.references import (
    CLUSTERROLES,
    PVCS,
    PVS,
    SERVICEACCOUNTS,
    STORAGECLASSES,
    Obj,
    Ref,
    claims_mounted,
    references,
)
from shared.contracts.inventory import Item, Reference, Skipped, Volume
from shared.contracts.requests import MobilityRequest
from shared.kube import Cluster, KubeError, Resource, UnknownResource

DEPENDENCY_TYPES = {PVS, STORAGECLASSES, CLUSTERROLES, "priorityclasses.scheduling.k8s.io"}
CRDS = "customresourcedefinitions.apiextensions.k8s.io"
CRBS = "clusterrolebindings.rbac.authorization.k8s.io"
SNAPSHOT_CLASSES = "volumesnapshotclasses.snapshot.storage.k8s.io"
DEFAULT_SNAPSHOT_CLASS = "snapshot.storage.kubernetes.io/is-default-class"


@dataclass
class Linked:
    references: list[Reference] = field(default_factory=list)
    dependencies: list[Item] = field(default_factory=list)
    volumes: list[Volume] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    skipped: list[Skipped] = field(default_factory=list)


class _Linker:
    def __init__(
        self, cluster: Cluster, collected: Collected, request: MobilityRequest | None = None
    ) -> None:
        self.cluster = cluster
        self.collected = collected
        self.request = request
        self.items = {item.key: item for item in collected.items}
        self.out = Linked()
        self.queue: list[Item] = list(collected.items)

    def key(self, resource: Resource, namespace: str, name: str) -> str:
        return f"{resource.name}/{namespace}/{name}" if resource.namespaced else f"{resource.name}/{name}"

    async def target(self, ref: Ref) -> Resource | None:
        try:
            if ref.resource.startswith("kind:"):
                kind, _, api_version = ref.resource[5:].partition("@")
                return await self.cluster.resources.lookup(kind, api_version or None)
            return await self.cluster.resource(ref.resource)
        except UnknownResource:
            return None

    def refused(self, resource: Resource) -> str:
        """Why the request's filters keep this dependency out ("" when they let it in).

        ``--exclude-resources`` applies to dependencies too; so does ``--include-resources``, except
        for the CRDs of captured custom resources, which come with them (as in Velero)."""
        if self.request is None:
            return ""
        source = self.request.source
        if source.exclude_resources and matches(resource, source.exclude_resources):
            return f"{resource.name} are excluded by the request"
        if (
            source.include_resources
            and resource.name != CRDS
            and not matches(resource, source.include_resources)
        ):
            return f"{resource.name} are not among the request's included resources"
        return ""

    def depend(self, resource: Resource, obj: Obj, needed_by: str) -> Item | None:
        key = self.key(resource, "", obj["metadata"]["name"])
        if why := self.refused(resource):
            if not any(s.key == key for s in self.out.skipped):
                self.out.skipped.append(Skipped(key=key, reason=f"needed by {needed_by}, but {why}"))
            return None
        if key in self.items:
            item = self.items[key]
            if needed_by not in item.needed_by:
                item.needed_by.append(needed_by)
            return item
        item = item_of(resource, obj, needed_by)
        self.items[key] = item
        self.out.dependencies.append(item)
        self.queue.append(item)
        return item

    async def resolve(self, source: Item, ref: Ref) -> None:
        resource = await self.target(ref)
        if resource is None:
            self.out.warnings.append(f"{source.key} references a {ref.resource} the cluster does not serve")
            return
        target = self.key(resource, ref.namespace, ref.name)
        missing = False
        if target not in self.items and target not in self.collected.existing:
            obj = await self.cluster.find(resource, ref.name, ref.namespace or None)
            if obj is None:
                missing = True
                if not ref.optional and not source.owned:  # its owner's template says it once
                    self.out.warnings.append(
                        f"{source.key} references {target} ({ref.via}), which does not exist in cluster {self.cluster.name}"
                    )
            elif not resource.namespaced and resource.name in DEPENDENCY_TYPES:
                self.depend(resource, obj, source.key)
            elif resource.namespaced and not source.owned:
                self.out.warnings.append(
                    f"{source.key} references {target} ({ref.via}), which is not captured (outside the selection)"
                )
        elif target in self.items and not resource.namespaced:
            self.depend(resource, self.items[target].object, source.key)
        self.out.references.append(
            Reference(source=source.key, target=target, via=ref.via, missing=missing, optional=ref.optional)
        )

    async def run(self) -> Linked:
        while self.queue:
            item = self.queue.pop(0)
            for ref in references(item.object):
                await self.resolve(item, ref)
        await self.custom_resource_definitions()
        await self.cluster_role_bindings()
        while self.queue:  # the ClusterRoles of the bindings just added
            item = self.queue.pop(0)
            for ref in references(item.object):
                await self.resolve(item, ref)
        await self.volume_facts()
        return self.out

    async def custom_resource_definitions(self) -> None:
        crd_resource = await self.cluster.resource(CRDS)
        for item in list(self.collected.items):
            resource = await self.cluster.resource(item.resource)
            if not resource.custom:
                continue
            name = f"{resource.plural}.{resource.group}"
            crd = await self.cluster.find(crd_resource, name)
            if crd is not None:
                dep = self.depend(crd_resource, crd, item.key)
                if dep is None:
                    continue
                self.out.references.append(
                    Reference(source=item.key, target=dep.key, via="customResourceDefinition")
                )

    async def cluster_role_bindings(self) -> None:
        accounts = {k for k in self.items if k.startswith(f"{SERVICEACCOUNTS}/")}
        accounts |= {f"{SERVICEACCOUNTS}/{ns}/default" for ns in self.collected.namespaces}
        try:
            bindings = await self.cluster.list(CRBS)
        except KubeError as e:
            self.out.warnings.append(f"cannot read ClusterRoleBindings: {e}")
            return
        resource = await self.cluster.resource(CRBS)
        for binding in bindings:
            for subject in binding.get("subjects") or []:
                key = f"{SERVICEACCOUNTS}/{subject.get('namespace', '')}/{subject.get('name', '')}"
                if subject.get("kind") == "ServiceAccount" and key in accounts:
                    self.depend(resource, binding, key)
                    break

    async def volume_facts(self) -> None:
        classes: list[Obj] = []
        try:
            classes = await self.cluster.list(SNAPSHOT_CLASSES)
        except UnknownResource:
            pass
        workloads = [i for i in self.collected.items if i.namespaced and claims_mounted(i.object)]
        for item in self.collected.items:
            if item.resource != PVCS:
                continue
            spec, status = item.object.get("spec") or {}, item.object.get("status") or {}
            pv = self.items.get(f"{PVS}/{spec.get('volumeName', '')}")
            pv_spec = (pv.object.get("spec") or {}) if pv else {}
            class_name = spec.get("storageClassName") or pv_spec.get("storageClassName") or ""
            storage_class = self.items.get(f"{STORAGECLASSES}/{class_name}")
            driver = (pv_spec.get("csi") or {}).get("driver") or (
                (storage_class.object.get("provisioner") or "") if storage_class else ""
            )
            fitting = [c for c in classes if driver and c.get("driver") == driver]
            fitting.sort(
                key=lambda c: (c["metadata"].get("annotations") or {}).get(DEFAULT_SNAPSHOT_CLASS) != "true"
            )
            self.out.volumes.append(
                Volume(
                    namespace=item.namespace,
                    claim=item.name,
                    phase=status.get("phase", ""),
                    size=((spec.get("resources") or {}).get("requests") or {}).get("storage", ""),
                    capacity=(status.get("capacity") or {}).get("storage", ""),
                    access_modes=list(spec.get("accessModes") or []),
                    storage_class=class_name,
                    volume=spec.get("volumeName", ""),
                    driver=driver,
                    snapshot_class=fitting[0]["metadata"]["name"] if fitting else "",
                    mounted_by=[
                        w.key
                        for w in workloads
                        if w.namespace == item.namespace and item.name in claims_mounted(w.object)
                    ],
                )
            )


async def link(cluster: Cluster, collected: Collected, request: MobilityRequest | None = None) -> Linked:
    """Resolve references, add the cluster-scoped dependencies the request's filters allow, gather
    the volumes' facts."""
    return await _Linker(cluster, collected, request).run()
