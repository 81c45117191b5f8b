"""Collect an application's namespaced objects: every served type in scope, read as the API has them.

The types come from the cluster's discovery API (CRDs included, preferred versions), never from a
list in this file — except the list of what is never an application's own: events (history, not
state), Endpoints/EndpointSlices (the Service controller rebuilds them), Leases, metrics, and
every type that cannot be listed. The request's ``include_resources``/``exclude_resources`` filter
the rest; a name matches a type by group-resource (``deployments.apps``), plural, kind or short name.

What the target cluster makes by itself is skipped with a reason (the ``default`` ServiceAccount,
the ``kube-root-ca.crt`` ConfigMap, legacy service-account token Secrets), and so is what Ferry
itself made (objects labelled ``ferry.dev/role``: mover Jobs, temporary claims). Objects owned by
another captured object are kept and marked ``owned`` — restore re-creates the owner and lets its
controller make them, unless the request says ``keep_owned``.

Values never leave the cluster through the inventory (docs/security.md): each value of a Secret's
``data``/``stringData`` — and of the ``data``/``stringData``/``binaryData`` of any object annotated
``ferry.dev/sensitive: "true"`` — is replaced by its digest (``sha256:<hex>``, the one definition
in ``shared.kube.comparing.digested``), and so is the ``last-applied-configuration`` annotation
that ``kubectl apply`` leaves on them (it holds the same values). The inventory is stored on the
bus and served to any ``read`` token; the snapshot step reads these objects again from the cluster
when it writes the manifests into the encrypted repository, where a restore needs the values.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any

from shared.contracts.errors import PermanentError
from shared.contracts.inventory import Item, Skipped
from shared.contracts.requests import MobilityRequest
from shared.kube import Cluster, Forbidden, Resource, object_key
from shared.kube.comparing import digested

Obj = dict[str, Any]
FERRY_ROLE = "ferry.dev/role"
SENSITIVE = "ferry.dev/sensitive"  # "true" on any object: its values are kept out of documents too
VALUE_MAPS = ("data", "stringData", "binaryData")
LAST_APPLIED = "kubectl.kubernetes.io/last-applied-configuration"

NEVER = {
    "events",
    "events.events.k8s.io",
    "endpoints",
    "endpointslices.discovery.k8s.io",
    "leases.coordination.k8s.io",
    "bindings",
    "localsubjectaccessreviews.authorization.k8s.io",
    "csistoragecapacities.storage.k8s.io",
}
NEVER_GROUPS = {"metrics.k8s.io"}


def matches(resource: Resource, names: list[str]) -> bool:
    wanted = {n.lower() for n in names}
    candidates = {
        resource.name,
        resource.plural,
        resource.kind.lower(),
        resource.singular,
        *resource.short_names,
    }
    return "*" in wanted or bool(wanted & {c.lower() for c in candidates})


def in_scope(resource: Resource, request: MobilityRequest) -> bool:
    """Namespaced, listable, not on the never-list, and allowed by the request's filters."""
    if not resource.namespaced or not resource.can("list") or resource.name in NEVER:
        return False
    if resource.group in NEVER_GROUPS:
        return False
    source = request.source
    if source.include_resources and not matches(resource, source.include_resources):
        return False
    return not (source.exclude_resources and matches(resource, source.exclude_resources))


def skip_reason(obj: Obj) -> str:
    """Why an object is not the application's own (empty: it is)."""
    meta = obj.get("metadata") or {}
    kind, name = obj.get("kind"), meta.get("name")
    if (meta.get("labels") or {}).get(FERRY_ROLE):
        return f"made by Ferry ({meta['labels'][FERRY_ROLE]})"
    if kind == "ServiceAccount" and name == "default":
        return "every namespace gets its own default ServiceAccount"
    if kind == "ConfigMap" and name == "kube-root-ca.crt":
        return "published into every namespace by the cluster"
    if kind == "Secret" and obj.get("type") == "kubernetes.io/service-account-token":
        return "a service-account token: the target cluster issues its own"
    return ""


def is_sensitive(obj: Obj) -> bool:
    """A Secret, or an object its owner marks ``ferry.dev/sensitive: "true"`` (say, a ConfigMap of keys)."""
    if obj.get("kind") == "Secret" and obj.get("apiVersion") == "v1":
        return True
    annotations = (obj.get("metadata") or {}).get("annotations") or {}
    return isinstance(annotations, dict) and str(annotations.get(SENSITIVE, "")).lower() == "true"


def _digests(values: dict[str, Any]) -> dict[str, Any]:
    """Each value as ``digested`` shows a Secret's (``sha256:<hex>``): one definition of the digest."""
    shown: dict[str, Any] = digested({"apiVersion": "v1", "kind": "Secret", "data": values})["data"]
    return shown


def redacted(obj: Obj) -> Obj:
    """``obj`` as a document may show it: a sensitive object's values replaced by their digests.

    A new dict (``obj`` is left as read); the digests still tell a changed value from an equal one.
    """
    if not is_sensitive(obj):
        return obj
    out = dict(obj)
    for name in VALUE_MAPS:
        if isinstance(obj.get(name), dict):
            out[name] = _digests(obj[name])
    meta = obj.get("metadata") or {}
    annotations = meta.get("annotations")
    if isinstance(annotations, dict) and LAST_APPLIED in annotations:
        shown = _digests({LAST_APPLIED: annotations[LAST_APPLIED]})
        out["metadata"] = {**meta, "annotations": {**annotations, **shown}}
    return out


def strip(obj: Obj) -> Obj:
    """The object as read, minus managedFields (bookkeeping of the source cluster's writers)."""
    (obj.get("metadata") or {}).pop("managedFields", None)
    return obj


@dataclass
class Collected:
    items: list[Item] = field(default_factory=list)
    skipped: list[Skipped] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    namespaces: list[str] = field(default_factory=list)
    existing: set[str] = field(default_factory=set)  # keys of every object seen, skipped ones too


async def namespaces_in_scope(cluster: Cluster, request: MobilityRequest) -> list[Obj]:
    """The Namespace objects the request names; a missing one is a permanent, named failure."""
    found = []
    for name in request.source.namespaces:
        namespace = await cluster.find("namespaces", name)
        if namespace is None:
            raise PermanentError(f"namespace {name} does not exist in cluster {cluster.name}")
        found.append(namespace)
    return found


async def collect(cluster: Cluster, request: MobilityRequest) -> Collected:
    """Every namespaced object in scope, owners resolved, defaults and Ferry's own skipped."""
    out = Collected()
    namespaces = await namespaces_in_scope(cluster, request)
    types = [r for r in await cluster.resources.preferred() if in_scope(r, request)]
    selector = request.source.selector
    scopes: list[str | None] = [n["metadata"]["name"] for n in namespaces] or [None]

    async def read(resource: Resource, namespace: str | None) -> list[tuple[Resource, Obj]]:
        try:
            objs = await cluster.list(resource, namespace, label_selector=selector)
        except Forbidden as e:
            out.warnings.append(f"cannot list {resource.name} in {namespace or 'any namespace'}: {e.message}")
            return []
        return [(resource, o) for o in objs]

    listings = await asyncio.gather(*(read(r, ns) for r in types for ns in scopes))
    found = [pair for listing in listings for pair in listing]
    if not request.source.namespaces:  # a selector across namespaces: the namespaces it hit
        names = sorted({o["metadata"].get("namespace", "") for _, o in found} - {""})
        namespaces = [n for n in [await cluster.find("namespaces", name) for name in names] if n]
    out.namespaces = [n["metadata"]["name"] for n in namespaces]
    ns_resource = await cluster.resource("namespaces")
    for namespace in namespaces:
        item = _item(ns_resource, strip(namespace))
        item.needed_by = ["the application's namespace"]
        out.items.append(item)
    uids: dict[str, str] = {}
    kept: list[tuple[Resource, Obj]] = []
    for resource, obj in found:
        key = object_key(resource, obj)
        out.existing.add(key)
        reason = skip_reason(obj)
        if reason:
            out.skipped.append(Skipped(key=key, reason=reason))
            continue
        kept.append((resource, strip(obj)))
        uids[obj["metadata"].get("uid", "")] = key
    for resource, obj in kept:
        item = _item(resource, obj)
        for ref in obj["metadata"].get("ownerReferences") or []:
            owner = uids.get(ref.get("uid", ""))
            if owner:
                item.owners.append(owner)
        item.owned = bool(item.owners)
        out.items.append(item)
    return out


def _item(resource: Resource, obj: Obj) -> Item:
    meta = obj.get("metadata") or {}
    return Item(
        key=object_key(resource, obj),
        resource=resource.name,
        api_version=str(obj.get("apiVersion") or resource.api_version),
        kind=str(obj.get("kind") or resource.kind),
        namespace=meta.get("namespace", "") if resource.namespaced else "",
        name=meta.get("name", ""),
        namespaced=resource.namespaced,
        object=redacted(obj),  # the inventory is stored on the bus: no Secret value in it
    )


def item_of(resource: Resource, obj: Obj, needed_by: str) -> Item:
    item = _item(resource, strip(obj))
    item.needed_by = [needed_by]
    return item
