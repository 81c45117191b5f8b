"""A drill's isolation: its own namespaces, no traffic in or out, nothing that acts on the world.

A drill proves that a replica can be brought up in the DR cluster; it must not *serve* there, nor
run scheduled work, nor change anything cluster-wide. So a ``drill`` request's restore is bent
before it writes anything:

* **namespaces**: every namespace of the application that the request does not map itself is
  mapped to ``<ns>-drill-<short>`` (``shared.contracts.drills.drill_namespace``), ``<short>``
  derived from the request id, so every attempt and every step (restore, cleanup, the listing)
  finds the same names without storing them;
* **network**: a deny-all NetworkPolicy per drill namespace, ingress and egress, DNS to kube-dns
  aside, written right after the Namespaces (before any pod can start); Ferry's own mover Jobs keep
  their egress (a second policy selects them by ``ferry.dev/role``), or no volume could be filled;
* CronJobs suspended; Services of type LoadBalancer/NodePort made ClusterIP (no node port, no load
  balancer, no external IPs);
* left out, each with its reason in the report: Ingresses (they would route real traffic to the
  copy), admission webhooks (they would intercept the DR cluster's own API calls), and the
  application's cluster-scoped objects (ClusterRoles, PriorityClasses, StorageClasses, CRDs ...):
  one that exists already is used as it is, one that does not is left out with a warning, and the
  custom resources of a CRD left out go with it.

Each change is a note on the object (in the restore report); the expectation holds the isolated
documents, so the verify step proves the isolation too.
"""

from __future__ import annotations

from collections.abc import Iterable

import msgspec

from services.restore.conflicts import result_of
from services.restore.restoring import Plan
from shared.contracts.drills import drill_namespace
from shared.contracts.errors import FerryError
from shared.contracts.reports import Outcome
from shared.contracts.requests import MobilityRequest, RequestKind
from shared.kube.objects import Manifest, Obj
from shared.runtime.clusters import Cluster
from shared.runtime.moving import ROLE_LABEL

DRILL_OF = "ferry.dev/drill-of"  # annotation on a drill namespace: the namespace it copies
ISOLATION = "ferry-drill-isolation"  # the deny-all NetworkPolicy of every drill namespace
MOVERS = "ferry-drill-movers"  # lets Ferry's mover Jobs reach the repository
WEBHOOKS = frozenset({"ValidatingWebhookConfiguration", "MutatingWebhookConfiguration"})
EXPOSED = frozenset({"LoadBalancer", "NodePort"})
LB_FIELDS = (
    "loadBalancerIP",
    "loadBalancerSourceRanges",
    "loadBalancerClass",
    "allocateLoadBalancerNodePorts",
    "externalTrafficPolicy",
    "healthCheckNodePort",
    "externalIPs",
)


def isolated(request_id: str, request: MobilityRequest, captured: Iterable[Manifest] = ()) -> MobilityRequest:
    """A drill with every namespace of the application mapped to a drill namespace; the request's
    own mappings stay. ``captured`` (the snapshot's objects) adds the namespaces of a drill chosen by
    label selector alone. Any other request is returned as it is."""
    if request.kind is not RequestKind.DRILL:
        return request
    names = set(request.source.namespaces)
    names |= {m.namespace for m in captured if m.namespace}
    names |= {m.name for m in captured if m.kind == "Namespace" and not m.namespace}
    mapping = {ns: drill_namespace(ns, request_id) for ns in sorted(names)}
    mapping.update(request.target.namespace_map)
    if mapping == request.target.namespace_map:
        return request
    target = msgspec.structs.replace(request.target, namespace_map=mapping)
    return msgspec.structs.replace(request, target=target)


def deny_all(namespace: str, labels: dict[str, str]) -> Manifest:
    """Every pod of ``namespace`` cut off, DNS lookups to kube-dns aside."""
    dns = {
        "to": [
            {
                "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "kube-system"}},
                "podSelector": {"matchLabels": {"k8s-app": "kube-dns"}},
            }
        ],
        "ports": [{"protocol": "UDP", "port": 53}, {"protocol": "TCP", "port": 53}],
    }
    spec: Obj = {"podSelector": {}, "policyTypes": ["Ingress", "Egress"], "egress": [dns]}
    return _policy(ISOLATION, namespace, labels, spec)


def movers_egress(namespace: str, labels: dict[str, str]) -> Manifest:
    """Ferry's mover Jobs (they carry ``ferry.dev/role``) may still reach the repository."""
    selector = {"matchExpressions": [{"key": ROLE_LABEL, "operator": "Exists"}]}
    return _policy(
        MOVERS, namespace, labels, {"podSelector": selector, "policyTypes": ["Egress"], "egress": [{}]}
    )


def _policy(name: str, namespace: str, labels: dict[str, str], spec: Obj) -> Manifest:
    obj: Obj = {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": {"name": name, "namespace": namespace, "labels": dict(labels)},
        "spec": spec,
    }
    item = Manifest(obj)
    item.notes.append("added by the drill: its namespace is isolated")
    return item


def quieted(item: Manifest) -> None:
    """A CronJob suspended; a LoadBalancer or NodePort Service made ClusterIP (in place)."""
    spec = item.obj.setdefault("spec", {})
    if item.kind == "CronJob" and not spec.get("suspend"):
        spec["suspend"] = True
        item.notes.append("suspended by the drill: its jobs must not run against the copy")
    elif item.kind == "Service" and spec.get("type") in EXPOSED:
        item.notes.append(
            f"type {spec['type']} made ClusterIP by the drill: nothing outside reaches the copy"
        )
        spec["type"] = "ClusterIP"
        for name in LB_FIELDS:
            spec.pop(name, None)
        for port in spec.get("ports") or []:
            port.pop("nodePort", None)


def left_out_why(item: Manifest) -> str:
    """Why a drill never writes ``item`` whatever the DR cluster holds, or "" when it may."""
    if item.kind == "Ingress":
        return "not restored by a drill: an Ingress would route real traffic to the copy"
    if item.kind in WEBHOOKS:
        return "not restored by a drill: a webhook would intercept the DR cluster's own API calls"
    return ""


async def exists(cluster: Cluster, item: Manifest) -> bool:
    """Whether the target holds ``item`` already (a type it does not serve: no)."""
    try:
        return await cluster.get(item) is not None
    except FerryError:
        return False


async def cluster_scoped(plan: Plan, cluster: Cluster) -> dict[str, str]:
    """Why each of the plan's cluster-scoped objects (Namespaces aside) is left out, by key; and the
    custom resources of a CRD that is left out and missing."""
    reasons: dict[str, str] = {}
    missing_types: set[str] = set()
    for item in plan.items:
        if item.namespaced or item.kind == "Namespace" or left_out_why(item):
            continue
        if await exists(cluster, item):
            reasons[item.key] = "exists in the DR cluster: a drill uses it as it is, never changes it"
        else:
            reasons[item.key] = (
                f"not in the DR cluster: a drill creates no cluster-wide {item.kind}; "
                "what needs it may not work in the drill"
            )
            if item.kind == "CustomResourceDefinition":
                missing_types.add(item.name)
    for item in plan.items:
        if item.gr in missing_types:
            reasons[item.key] = f"its CustomResourceDefinition {item.gr} is not in the DR cluster"
    return reasons


async def isolate(
    plan: Plan, request: MobilityRequest, labels: dict[str, str], cluster: Cluster
) -> list[str]:
    """Isolate a drill's prepared plan in place (see the module docstring); returns the warnings to
    emit. A request of any other kind is left as it is."""
    if request.kind is not RequestKind.DRILL:
        return []
    reasons = await cluster_scoped(plan, cluster)
    kept: list[Manifest] = []
    warnings: list[str] = []
    sources = {drill: source for source, drill in request.target.namespace_map.items()}
    for item in plan.items:
        why = left_out_why(item) or reasons.get(item.key, "")
        if why:
            plan.results.append(result_of(item, Outcome.SKIPPED, reason=why))
            if not why.startswith("exists"):
                warnings.append(f"{item.key}: {why}")
            continue
        quieted(item)
        if item.kind == "Namespace" and item.name in sources:
            item.metadata.setdefault("annotations", {})[DRILL_OF] = sources[item.name]
        kept.append(item)
    after = max((i + 1 for i, m in enumerate(kept) if m.kind == "Namespace"), default=0)
    present = {m.namespace for m in kept} | {m.name for m in kept if m.kind == "Namespace"}
    namespaces = sorted(set(sources) & present)  # a policy needs its namespace written too
    policies = [p for ns in namespaces for p in (deny_all(ns, labels), movers_egress(ns, labels))]
    plan.items = kept[:after] + policies + kept[after:]
    return warnings
