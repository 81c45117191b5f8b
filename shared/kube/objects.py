"""Kubernetes objects as plain dicts, and the few facts about them the restore logic needs.

Restore works on the JSON documents the snapshot captured, never on typed models: it must handle
every resource the source cluster served, custom resources included. What it needs to know beyond
the document is the *resource* (plural) of a kind, because Velero's priorities and resource-modifier
conditions speak in group-resources ("deployments.apps", "persistentvolumeclaims"). The inventory
records the resource of every object it captured; ``KNOWN_RESOURCES`` and a pluralising fallback
cover documents that come without it (tests, hand-written manifests).
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Any

Obj = dict[str, Any]

# kind -> (group, plural, namespaced) for the built-in kinds Ferry reasons about.
KNOWN_RESOURCES: dict[str, tuple[str, str, bool]] = {
    "Namespace": ("", "namespaces", False),
    "CustomResourceDefinition": ("apiextensions.k8s.io", "customresourcedefinitions", False),
    "StorageClass": ("storage.k8s.io", "storageclasses", False),
    "PersistentVolume": ("", "persistentvolumes", False),
    "PersistentVolumeClaim": ("", "persistentvolumeclaims", True),
    "ClusterRole": ("rbac.authorization.k8s.io", "clusterroles", False),
    "ClusterRoleBinding": ("rbac.authorization.k8s.io", "clusterrolebindings", False),
    "Role": ("rbac.authorization.k8s.io", "roles", True),
    "RoleBinding": ("rbac.authorization.k8s.io", "rolebindings", True),
    "ServiceAccount": ("", "serviceaccounts", True),
    "Secret": ("", "secrets", True),
    "ConfigMap": ("", "configmaps", True),
    "LimitRange": ("", "limitranges", True),
    "ResourceQuota": ("", "resourcequotas", True),
    "PriorityClass": ("scheduling.k8s.io", "priorityclasses", False),
    "Pod": ("", "pods", True),
    "ReplicaSet": ("apps", "replicasets", True),
    "ReplicationController": ("", "replicationcontrollers", True),
    "Deployment": ("apps", "deployments", True),
    "StatefulSet": ("apps", "statefulsets", True),
    "DaemonSet": ("apps", "daemonsets", True),
    "Job": ("batch", "jobs", True),
    "CronJob": ("batch", "cronjobs", True),
    "Endpoints": ("", "endpoints", True),
    "EndpointSlice": ("discovery.k8s.io", "endpointslices", True),
    "Service": ("", "services", True),
    "Ingress": ("networking.k8s.io", "ingresses", True),
    "IngressClass": ("networking.k8s.io", "ingressclasses", False),
    "NetworkPolicy": ("networking.k8s.io", "networkpolicies", True),
    "HorizontalPodAutoscaler": ("autoscaling", "horizontalpodautoscalers", True),
    "PodDisruptionBudget": ("policy", "poddisruptionbudgets", True),
    "Event": ("", "events", True),
    "Node": ("", "nodes", False),
    "VolumeSnapshot": ("snapshot.storage.k8s.io", "volumesnapshots", True),
    "VolumeSnapshotContent": ("snapshot.storage.k8s.io", "volumesnapshotcontents", False),
    "VolumeSnapshotClass": ("snapshot.storage.k8s.io", "volumesnapshotclasses", False),
    "ValidatingWebhookConfiguration": (
        "admissionregistration.k8s.io",
        "validatingwebhookconfigurations",
        False,
    ),
    "MutatingWebhookConfiguration": (
        "admissionregistration.k8s.io",
        "mutatingwebhookconfigurations",
        False,
    ),
    "APIService": ("apiregistration.k8s.io", "apiservices", False),
}


def group_of(api_version: str) -> str:
    return api_version.split("/", 1)[0] if "/" in api_version else ""


def pluralise(kind: str) -> str:
    lower = kind.lower()
    if lower.endswith(("s", "x", "ch", "sh")):
        return lower + "es"
    if lower.endswith("y") and lower[-2:-1] not in "aeiou":
        return lower[:-1] + "ies"
    return lower + "s"


def group_resource(group: str, resource: str) -> str:
    """Velero's spelling: "deployments.apps", and just "pods" for the core group."""
    return f"{resource}.{group}" if group else resource


@dataclass
class Manifest:
    """One captured object and what we know about its type."""

    obj: Obj
    resource: str = ""  # plural; filled from KNOWN_RESOURCES or by pluralising when empty
    namespaced: bool | None = None
    source_key: str = ""  # the key under which the snapshot captured it (before transforms)
    notes: list[str] = field(default_factory=list)
    # Discovery's verdict: owned by an object captured with it (its controller makes it again), or
    # owned by something outside the snapshot (restored, its ownerReferences dropped). None: unknown
    # (a Velero backup, plain YAML) -- any ownerReference then counts.
    owned: bool | None = None

    def __post_init__(self) -> None:
        known = KNOWN_RESOURCES.get(self.kind)
        if known and group_of(self.api_version) == known[0]:
            self.resource = self.resource or known[1]
            if self.namespaced is None:
                self.namespaced = known[2]
        self.resource = self.resource or pluralise(self.kind)
        if self.namespaced is None:
            self.namespaced = bool(self.namespace)
        self.source_key = self.source_key or self.key

    @property
    def api_version(self) -> str:
        return str(self.obj.get("apiVersion", ""))

    @property
    def kind(self) -> str:
        return str(self.obj.get("kind", ""))

    @property
    def group(self) -> str:
        return group_of(self.api_version)

    @property
    def gr(self) -> str:
        return group_resource(self.group, self.resource)

    @property
    def metadata(self) -> Obj:
        meta: Obj = self.obj.setdefault("metadata", {})
        return meta

    @property
    def name(self) -> str:
        return str(self.metadata.get("name", ""))

    @property
    def namespace(self) -> str:
        return str(self.metadata.get("namespace", "") or "")

    @property
    def key(self) -> str:
        return object_key(self.gr, self.namespace, self.name)

    def copy(self) -> Manifest:
        return Manifest(
            copy.deepcopy(self.obj),
            self.resource,
            self.namespaced,
            self.source_key,
            list(self.notes),
            self.owned,
        )


def object_key(gr: str, namespace: str, name: str) -> str:
    return f"{gr}/{namespace}/{name}" if namespace else f"{gr}/{name}"


def dig(obj: Any, *path: str | int) -> Any:
    """``obj[path[0]][path[1]]...`` or None when any step is missing."""
    for step in path:
        if isinstance(step, int):
            if not isinstance(obj, list) or step >= len(obj):
                return None
            obj = obj[step]
        elif isinstance(obj, dict):
            obj = obj.get(step)
        else:
            return None
    return obj


def pod_specs(obj: Obj) -> list[Obj]:
    """Every pod spec inside an object: a Pod's, a workload's template, a CronJob's job template."""
    kind = obj.get("kind")
    spec = obj.get("spec")
    if not isinstance(spec, dict):
        return []
    if kind == "Pod":
        return [spec]
    found = []
    template = spec.get("template")
    if isinstance(template, dict) and isinstance(template.get("spec"), dict):
        found.append(template["spec"])
    job_template = dig(spec, "jobTemplate", "spec", "template", "spec")
    if isinstance(job_template, dict):
        found.append(job_template)
    return found


def containers_of(pod_spec: Obj) -> list[Obj]:
    found: list[Obj] = []
    for field_name in ("initContainers", "containers", "ephemeralContainers"):
        found.extend(c for c in pod_spec.get(field_name) or [] if isinstance(c, dict))
    return found
