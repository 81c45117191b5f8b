"""Who uses whom: the references one object makes to others, read from its spec (pure functions).

The reference graph lets restore order objects (a ConfigMap before the Deployment that mounts it)
and lets discovery warn about a reference to something that does not exist — a Deployment whose
Secret is missing will not start in the target cluster either, and the person moving it should
know before, not after. Each ``Ref`` names its target by group-resource, namespace and name, and
says where in the source it was found (``via``) and whether the API marks it optional.

Covered: pod templates (Pods, Deployments, StatefulSets, DaemonSets, ReplicaSets, Jobs, CronJobs,
ReplicationControllers) → ConfigMaps, Secrets, ServiceAccounts, PVCs, PriorityClasses;
StatefulSet → its governing Service and the claims its ``volumeClaimTemplates`` make,
``<template>-<statefulset>-<ordinal>`` per replica (optional: a claim not made yet — a replica
that never ran — is made by the StatefulSet controller, in the target as in the source; a pod
template volume named like a claim template is replaced by that claim, so it names nothing); Ingress → Services and TLS Secrets; RoleBinding → Role or
ClusterRole and subject ServiceAccounts; HPA → its scale target; PVC → PV and StorageClass;
PV → StorageClass; ServiceAccount → its Secrets.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

Obj = dict[str, Any]

CONFIGMAPS, SECRETS, SERVICEACCOUNTS = "configmaps", "secrets", "serviceaccounts"
PVCS, PVS, SERVICES = "persistentvolumeclaims", "persistentvolumes", "services"
STORAGECLASSES = "storageclasses.storage.k8s.io"
PRIORITYCLASSES = "priorityclasses.scheduling.k8s.io"
ROLES, CLUSTERROLES = "roles.rbac.authorization.k8s.io", "clusterroles.rbac.authorization.k8s.io"
WORKLOAD_KINDS = {
    "Deployment",
    "StatefulSet",
    "DaemonSet",
    "ReplicaSet",
    "Job",
    "CronJob",
    "ReplicationController",
}


@dataclass(frozen=True)
class Ref:
    """A reference to ``resource`` (group-resource, or ``kind:<Kind>@<apiVersion>`` to resolve)."""

    resource: str
    namespace: str  # "" for cluster-scoped targets
    name: str
    via: str
    optional: bool = False


def pod_spec(obj: Obj) -> Obj | None:
    """The pod spec inside a Pod or a workload's template (CronJob: its job template's)."""
    kind, spec = obj.get("kind"), obj.get("spec") or {}
    if kind == "Pod":
        return spec
    if kind == "CronJob":
        spec = ((spec.get("jobTemplate") or {}).get("spec")) or {}
    elif kind not in WORKLOAD_KINDS:
        return None
    template = spec.get("template") or {}
    found = template.get("spec")
    return found if isinstance(found, dict) else None


def claim_templates(obj: Obj) -> list[str]:
    """The names of a StatefulSet's ``volumeClaimTemplates`` (none for other kinds)."""
    if obj.get("kind") != "StatefulSet":
        return []
    templates = (obj.get("spec") or {}).get("volumeClaimTemplates") or []
    names = [(t.get("metadata") or {}).get("name", "") for t in templates if isinstance(t, dict)]
    return [n for n in names if n]


def _count(value: Any) -> int:
    return value if isinstance(value, int) and value > 0 else 0


def template_claims(obj: Obj) -> list[str]:
    """The claims a StatefulSet's templates make, ``<template>-<statefulset>-<ordinal>``: one per
    replica (at least one; ``status.replicas`` while scaling down), from ``spec.ordinals.start``."""
    spec, status = obj.get("spec") or {}, obj.get("status") or {}
    start = _count((spec.get("ordinals") or {}).get("start"))
    replicas = max(_count(spec.get("replicas", 1)), _count(status.get("replicas")), 1)
    sts = (obj.get("metadata") or {}).get("name", "")
    return [f"{base}-{sts}-{i}" for base in claim_templates(obj) for i in range(start, start + replicas)]


def _volumes(obj: Obj) -> list[Obj]:
    """The pod template's volumes, less those a StatefulSet's claim templates replace."""
    replaced = set(claim_templates(obj))
    volumes = (pod_spec(obj) or {}).get("volumes") or []
    return [v for v in volumes if isinstance(v, dict) and v.get("name") not in replaced]


def claims_mounted(obj: Obj) -> list[str]:
    """PVC names a Pod or workload mounts (StatefulSet claim templates included, per replica)."""
    names = [(v.get("persistentVolumeClaim") or {}).get("claimName") for v in _volumes(obj)]
    return [n for n in names if n] + template_claims(obj)


def _pod_refs(spec: Obj, ns: str, volumes: list[Obj]) -> list[Ref]:
    refs: list[Ref] = []
    account = spec.get("serviceAccountName") or spec.get("serviceAccount")
    if account:
        refs.append(Ref(SERVICEACCOUNTS, ns, account, "serviceAccountName"))
    for secret in spec.get("imagePullSecrets") or []:
        if secret.get("name"):
            refs.append(Ref(SECRETS, ns, secret["name"], "imagePullSecrets", optional=True))
    if spec.get("priorityClassName"):
        refs.append(Ref(PRIORITYCLASSES, "", spec["priorityClassName"], "priorityClassName"))
    for volume in volumes:
        if cm := volume.get("configMap"):
            refs.append(
                Ref(CONFIGMAPS, ns, cm.get("name", ""), "volumes.configMap", bool(cm.get("optional")))
            )
        if secret := volume.get("secret"):
            name = secret.get("secretName", "")
            refs.append(Ref(SECRETS, ns, name, "volumes.secret", bool(secret.get("optional"))))
        if claim := volume.get("persistentVolumeClaim"):
            refs.append(Ref(PVCS, ns, claim.get("claimName", ""), "volumes.persistentVolumeClaim"))
        for source in (volume.get("projected") or {}).get("sources") or []:
            if cm := source.get("configMap"):
                refs.append(
                    Ref(CONFIGMAPS, ns, cm.get("name", ""), "volumes.projected", bool(cm.get("optional")))
                )
            if secret := source.get("secret"):
                refs.append(
                    Ref(
                        SECRETS, ns, secret.get("name", ""), "volumes.projected", bool(secret.get("optional"))
                    )
                )
    containers = (spec.get("containers") or []) + (spec.get("initContainers") or [])
    for container in containers:
        for source in container.get("envFrom") or []:
            if cm := source.get("configMapRef"):
                refs.append(
                    Ref(CONFIGMAPS, ns, cm.get("name", ""), "envFrom.configMapRef", bool(cm.get("optional")))
                )
            if secret := source.get("secretRef"):
                refs.append(
                    Ref(
                        SECRETS, ns, secret.get("name", ""), "envFrom.secretRef", bool(secret.get("optional"))
                    )
                )
        for env in container.get("env") or []:
            source = env.get("valueFrom") or {}
            if cm := source.get("configMapKeyRef"):
                refs.append(
                    Ref(CONFIGMAPS, ns, cm.get("name", ""), "env.configMapKeyRef", bool(cm.get("optional")))
                )
            if secret := source.get("secretKeyRef"):
                refs.append(
                    Ref(SECRETS, ns, secret.get("name", ""), "env.secretKeyRef", bool(secret.get("optional")))
                )
    return refs


def references(obj: Obj) -> list[Ref]:
    """Every reference ``obj`` makes (duplicates removed, order kept)."""
    kind = obj.get("kind")
    meta = obj.get("metadata") or {}
    ns = meta.get("namespace", "")
    spec = obj.get("spec") or {}
    refs: list[Ref] = []
    if (template := pod_spec(obj)) is not None:
        refs += _pod_refs(template, ns, _volumes(obj))
    if kind == "StatefulSet":
        if spec.get("serviceName"):
            refs.append(Ref(SERVICES, ns, spec["serviceName"], "serviceName"))
        refs += [Ref(PVCS, ns, c, "volumeClaimTemplates", optional=True) for c in template_claims(obj)]
    elif kind == "Ingress":
        backends = [spec.get("defaultBackend") or {}]
        for rule in spec.get("rules") or []:
            backends += [p.get("backend") or {} for p in (rule.get("http") or {}).get("paths") or []]
        for backend in backends:
            if name := (backend.get("service") or {}).get("name"):
                refs.append(Ref(SERVICES, ns, name, "backend.service"))
        for tls in spec.get("tls") or []:
            if tls.get("secretName"):
                refs.append(Ref(SECRETS, ns, tls["secretName"], "tls.secretName"))
    elif kind in ("RoleBinding", "ClusterRoleBinding"):
        role = obj.get("roleRef") or {}
        if role.get("kind") == "Role":
            refs.append(Ref(ROLES, ns, role.get("name", ""), "roleRef"))
        elif role.get("kind") == "ClusterRole":
            refs.append(Ref(CLUSTERROLES, "", role.get("name", ""), "roleRef"))
        for subject in obj.get("subjects") or []:
            if subject.get("kind") == "ServiceAccount":
                refs.append(
                    Ref(SERVICEACCOUNTS, subject.get("namespace") or ns, subject.get("name", ""), "subjects")
                )
    elif kind == "HorizontalPodAutoscaler":
        target = spec.get("scaleTargetRef") or {}
        if target.get("kind") and target.get("name"):
            resource = f"kind:{target['kind']}@{target.get('apiVersion', '')}"
            refs.append(Ref(resource, ns, target["name"], "scaleTargetRef"))
    elif kind == "PersistentVolumeClaim":
        if spec.get("volumeName"):
            refs.append(Ref(PVS, "", spec["volumeName"], "volumeName"))
        if spec.get("storageClassName"):
            refs.append(Ref(STORAGECLASSES, "", spec["storageClassName"], "storageClassName"))
    elif kind == "PersistentVolume":
        if spec.get("storageClassName"):
            refs.append(Ref(STORAGECLASSES, "", spec["storageClassName"], "storageClassName"))
    elif kind == "ServiceAccount":
        for secret in (obj.get("secrets") or []) + (obj.get("imagePullSecrets") or []):
            if secret.get("name"):
                refs.append(Ref(SECRETS, ns, secret["name"], "secrets", optional=True))
    seen: set[Ref] = set()
    unique = []
    for ref in refs:
        if ref.name and ref not in seen:
            seen.add(ref)
            unique.append(ref)
    return unique
