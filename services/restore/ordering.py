"""Restore order: Velero's priority list as the base, then what the objects themselves reference.

Order is the second most-filed restore complaint (velero #4045, #5068 Ingress before its Service,
#9471 RBAC before pods, #2443 webhooks). Two layers answer it:

1. **Priorities** (Velero's ``defaultRestorePriorities``, reordered as issue 6 asks): CRDs,
   namespaces, storage classes, snapshot classes, PVs, PVCs, RBAC, ServiceAccounts, Secrets,
   ConfigMaps, quotas, then workloads, then Services and Ingresses, then everything else
   alphabetically (custom resources), and last the admission webhooks and APIServices — a webhook
   registered before the Service behind it answers nothing, and with ``failurePolicy: Fail`` every
   later create would fail.
2. **References**, read from each document (plus any edges the inventory's reference graph adds): a
   pod template needs its ConfigMaps, Secrets, PVCs, ServiceAccount and PriorityClass; a RoleBinding
   its Role and ServiceAccounts; an Ingress its Services and IngressClass; an HPA its target; a
   custom resource its CRD; a PVC its StorageClass; every namespaced object its Namespace. A
   topological sort (Kahn's, with the priority as the tie-break) honours both; a cycle is broken at
   its highest-priority object and reported.
"""

from __future__ import annotations

import heapq
from collections import defaultdict
from collections.abc import Iterable

from shared.kube.objects import Manifest, Obj, dig, object_key, pod_specs

PRIORITIES = (
    "customresourcedefinitions.apiextensions.k8s.io",
    "namespaces",
    "storageclasses.storage.k8s.io",
    "volumesnapshotclasses.snapshot.storage.k8s.io",
    "volumesnapshotcontents.snapshot.storage.k8s.io",
    "volumesnapshots.snapshot.storage.k8s.io",
    "persistentvolumes",
    "persistentvolumeclaims",
    "priorityclasses.scheduling.k8s.io",
    "clusterroles.rbac.authorization.k8s.io",
    "roles.rbac.authorization.k8s.io",
    "serviceaccounts",
    "clusterrolebindings.rbac.authorization.k8s.io",
    "rolebindings.rbac.authorization.k8s.io",
    "secrets",
    "configmaps",
    "limitranges",
    "resourcequotas",
    "pods",
    "replicasets.apps",
    "replicationcontrollers",
    "deployments.apps",
    "statefulsets.apps",
    "daemonsets.apps",
    "jobs.batch",
    "cronjobs.batch",
    "services",
    "ingressclasses.networking.k8s.io",
    "ingresses.networking.k8s.io",
)
LAST = (
    "apiservices.apiregistration.k8s.io",
    "mutatingwebhookconfigurations.admissionregistration.k8s.io",
    "validatingwebhookconfigurations.admissionregistration.k8s.io",
)
WORKLOADS = {
    "pods",
    "replicasets.apps",
    "replicationcontrollers",
    "deployments.apps",
    "statefulsets.apps",
    "daemonsets.apps",
    "jobs.batch",
    "cronjobs.batch",
}
_KIND_TO_GR = {
    "Deployment": "deployments.apps",
    "StatefulSet": "statefulsets.apps",
    "ReplicaSet": "replicasets.apps",
    "ReplicationController": "replicationcontrollers",
    "DaemonSet": "daemonsets.apps",
    "Role": "roles.rbac.authorization.k8s.io",
    "ClusterRole": "clusterroles.rbac.authorization.k8s.io",
    "ServiceAccount": "serviceaccounts",
}


def tier(gr: str) -> tuple[int, str]:
    if gr in PRIORITIES:
        return PRIORITIES.index(gr), ""
    if gr in LAST:
        return len(PRIORITIES) + 1 + LAST.index(gr), ""
    return len(PRIORITIES), gr  # everything else, alphabetical


def sort_key(item: Manifest) -> tuple[int, str, str, str]:
    rank, name = tier(item.gr)
    return rank, name, item.namespace, item.name


def pod_references(spec: Obj, namespace: str) -> set[str]:
    refs: set[str] = set()

    def add(gr: str, name: object) -> None:
        if isinstance(name, str) and name:
            refs.add(object_key(gr, namespace, name))

    for volume in spec.get("volumes") or []:
        add("configmaps", dig(volume, "configMap", "name"))
        add("secrets", dig(volume, "secret", "secretName"))
        add("persistentvolumeclaims", dig(volume, "persistentVolumeClaim", "claimName"))
        for source in dig(volume, "projected", "sources") or []:
            add("configmaps", dig(source, "configMap", "name"))
            add("secrets", dig(source, "secret", "name"))
    for container in [*(spec.get("initContainers") or []), *(spec.get("containers") or [])]:
        for env in container.get("env") or []:
            add("configmaps", dig(env, "valueFrom", "configMapKeyRef", "name"))
            add("secrets", dig(env, "valueFrom", "secretKeyRef", "name"))
        for source in container.get("envFrom") or []:
            add("configmaps", dig(source, "configMapRef", "name"))
            add("secrets", dig(source, "secretRef", "name"))
    for pull in spec.get("imagePullSecrets") or []:
        add("secrets", pull.get("name"))
    add("serviceaccounts", spec.get("serviceAccountName") or spec.get("serviceAccount"))
    if spec.get("priorityClassName"):
        refs.add(object_key("priorityclasses.scheduling.k8s.io", "", spec["priorityClassName"]))
    return refs


def claims_mounted(item: Manifest) -> set[str]:
    """Keys of the PVCs a workload's pods mount (restored and filled before the workload), including
    a StatefulSet's claims from its templates (``<template>-<set>-<ordinal>``)."""
    found = {
        ref
        for spec in pod_specs(item.obj)
        for ref in pod_references(spec, item.namespace)
        if ref.startswith("persistentvolumeclaims/")
    }
    if item.kind == "StatefulSet":
        replicas = dig(item.obj, "spec", "replicas")
        for template in dig(item.obj, "spec", "volumeClaimTemplates") or []:
            claim = dig(template, "metadata", "name")
            for ordinal in range(1 if replicas is None else int(replicas)):
                found.add(
                    object_key("persistentvolumeclaims", item.namespace, f"{claim}-{item.name}-{ordinal}")
                )
    return found


def references(item: Manifest, crd_of: dict[str, str] | None = None) -> set[str]:
    """Keys of the objects ``item`` needs to exist before it (whether or not they are restored)."""
    obj, ns = item.obj, item.namespace
    refs: set[str] = set()
    if ns:
        refs.add(object_key("namespaces", "", ns))
    for spec in pod_specs(obj):
        refs |= pod_references(spec, ns)
    refs |= claims_mounted(item)
    kind = item.kind
    if kind in ("RoleBinding", "ClusterRoleBinding"):
        role = obj.get("roleRef") or {}
        gr = _KIND_TO_GR.get(role.get("kind", ""), "")
        if gr:
            refs.add(object_key(gr, ns if role.get("kind") == "Role" else "", role.get("name", "")))
        for subject in obj.get("subjects") or []:
            if subject.get("kind") == "ServiceAccount":
                refs.add(
                    object_key("serviceaccounts", subject.get("namespace") or ns, subject.get("name", ""))
                )
    elif kind == "Ingress":
        spec = obj.get("spec") or {}
        backends = [spec.get("defaultBackend") or {}]
        for rule in spec.get("rules") or []:
            backends += [p.get("backend") or {} for p in dig(rule, "http", "paths") or []]
        for backend in backends:
            name = dig(backend, "service", "name")
            if name:
                refs.add(object_key("services", ns, name))
        if spec.get("ingressClassName"):
            refs.add(object_key("ingressclasses.networking.k8s.io", "", spec["ingressClassName"]))
    elif kind == "PersistentVolumeClaim":
        sc = dig(obj, "spec", "storageClassName")
        if sc:
            refs.add(object_key("storageclasses.storage.k8s.io", "", sc))
    elif kind == "HorizontalPodAutoscaler":
        target = dig(obj, "spec", "scaleTargetRef") or {}
        target_gr = _KIND_TO_GR.get(target.get("kind", ""))
        if target_gr:
            refs.add(object_key(target_gr, ns, target.get("name", "")))
    elif kind in ("ValidatingWebhookConfiguration", "MutatingWebhookConfiguration"):
        for hook in obj.get("webhooks") or []:
            service = dig(hook, "clientConfig", "service") or {}
            if service.get("name"):
                refs.add(object_key("services", service.get("namespace", ""), service["name"]))
    if crd_of and item.gr in crd_of:
        refs.add(crd_of[item.gr])
    refs.discard(item.key)
    return refs


def crd_index(items: Iterable[Manifest]) -> dict[str, str]:
    """group-resource served by a CRD of the snapshot -> that CRD's key."""
    found = {}
    for item in items:
        if item.kind == "CustomResourceDefinition":
            spec = item.obj.get("spec") or {}
            plural, group = dig(spec, "names", "plural"), spec.get("group")
            if plural and group:
                found[f"{plural}.{group}"] = item.key
    return found


def order(
    items: list[Manifest], extra_edges: Iterable[tuple[str, str]] = ()
) -> tuple[list[Manifest], list[str]]:
    """``items`` in restore order, and warnings (cycles). Edges are (dependent key, dependency key)."""
    by_key = {item.key: item for item in items}
    crds = crd_index(items)
    needs: dict[str, set[str]] = {key: set() for key in by_key}
    for item in items:
        needs[item.key] = {ref for ref in references(item, crds) if ref in by_key}
    for dependent, dependency in extra_edges:
        if dependent in by_key and dependency in by_key and dependent != dependency:
            needs[dependent].add(dependency)
    waiting_on = {key: len(deps) for key, deps in needs.items()}
    dependents: dict[str, list[str]] = defaultdict(list)
    for key, deps in needs.items():
        for dep in deps:
            dependents[dep].append(key)
    ready = [(sort_key(by_key[k]), k) for k, n in waiting_on.items() if n == 0]
    heapq.heapify(ready)
    ordered: list[Manifest] = []
    warnings: list[str] = []
    done: set[str] = set()
    while len(ordered) < len(items):
        if not ready:  # a cycle: take the highest-priority object still waiting
            key = min((k for k in by_key if k not in done), key=lambda k: sort_key(by_key[k]))
            cycle = sorted(d for d in needs[key] if d not in done)
            warnings.append(f"reference cycle: {key} restored before {', '.join(cycle)}")
            waiting_on[key] = 0
            heapq.heappush(ready, (sort_key(by_key[key]), key))
        _, key = heapq.heappop(ready)
        if key in done:
            continue
        done.add(key)
        ordered.append(by_key[key])
        for dependent in dependents[key]:
            waiting_on[dependent] -= 1
            if waiting_on[dependent] == 0 and dependent not in done:
                heapq.heappush(ready, (sort_key(by_key[dependent]), dependent))
    return ordered, warnings
