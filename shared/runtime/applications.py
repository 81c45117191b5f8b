"""What preflight knows of an application before it is moved: its namespaces, claims, objects and kinds.

For a migrate or replicate the source cluster tells (``preflighting`` lists it); for a restore or drill
the snapshot's manifests document does (``from_manifests``), so the target is checked for exactly the
kinds a restore will write. The manifests document is the one the snapshot service writes (a
Kubernetes ``List`` whose items are ``{key, resource, namespaced, owned, object}``), optionally
gzipped; items that are plain objects (a ``List`` or a JSON array of them) are read too, their type
named by pluralising the kind. Other shapes (tar archives, YAML) give an ``App`` without kinds, and
preflight falls back to the usual ones.

What is never restored is left out the way the restore leaves it out: objects their captured owner's
controller recreates (unless ``keep_owned``), generated and non-restorable kinds, what every new
namespace gets by itself, and the PersistentVolumes of restored claims (they get new volumes).
"""

from __future__ import annotations

import gzip
import json
from dataclasses import dataclass, field
from typing import Any

from shared.contracts.requests import MobilityRequest

FERRY_ROLE = "ferry.dev/role"
NEVER_RESTORED = {
    "events",
    "events.events.k8s.io",
    "endpoints",
    "endpointslices.discovery.k8s.io",
    "nodes",
    "bindings",
    "leases.coordination.k8s.io",
    "csinodes.storage.k8s.io",
    "volumeattachments.storage.k8s.io",
    "componentstatuses",
    "selfsubjectaccessreviews.authorization.k8s.io",
    "tokenreviews.authentication.k8s.io",
}
TOKEN_SECRET_TYPES = {"kubernetes.io/service-account-token", "kubernetes.io/dockercfg"}


@dataclass(frozen=True)
class Claim:
    namespace: str
    name: str
    storage_class: str  # "": none named, the cluster's default class applies


@dataclass
class App:
    namespaces: list[str] = field(default_factory=list)  # as in the source (before namespace_map)
    claims: list[Claim] = field(default_factory=list)
    objects: set[tuple[str, str, str]] = field(default_factory=set)  # (group-resource, namespace, name)
    kinds: set[tuple[str, bool]] = field(default_factory=set)  # (group-resource, namespaced) to write


def skip_reason(obj: dict[str, Any]) -> str:
    """Why an object is not the application's own (what every namespace gets, what Ferry made)."""
    meta = obj.get("metadata") or {}
    kind, name = obj.get("kind"), meta.get("name")
    if (meta.get("labels") or {}).get(FERRY_ROLE):
        return "made by Ferry"
    if kind in (None, "ServiceAccount") and name == "default":
        return "every namespace gets its own default ServiceAccount"
    if kind in (None, "ConfigMap") and name == "kube-root-ca.crt":
        return "published into every namespace by the cluster"
    if obj.get("type") in TOKEN_SECRET_TYPES:
        return "issued by the cluster"
    return ""


def _group_resource(item: dict[str, Any], obj: dict[str, Any]) -> str:
    if item.get("resource"):
        return str(item["resource"])
    kind = str(obj.get("kind", "")).lower()
    plural = kind if kind.endswith("s") else (kind[:-1] + "ies" if kind.endswith("y") else kind + "s")
    group = str(obj.get("apiVersion", "")).rpartition("/")[0]
    return f"{plural}.{group}" if group else plural


def from_manifests(data: bytes, request: MobilityRequest) -> App:
    """The application a snapshot's manifests document holds, narrowed to the request's namespaces."""
    if data[:2] == b"\x1f\x8b":
        data = gzip.decompress(data)
    try:
        doc = json.loads(data)
    except ValueError:
        return App(namespaces=list(request.source.namespaces))
    items = doc if isinstance(doc, list) else (doc.get("items") or [] if isinstance(doc, dict) else [])
    wanted = set(request.source.namespaces)
    app = App()
    namespaces: set[str] = set()
    objects = [
        (item, item["object"] if isinstance(item.get("object"), dict) else item)
        for item in items
        if isinstance(item, dict)
    ]
    claims = {
        ((o.get("metadata") or {}).get("namespace", ""), (o.get("metadata") or {}).get("name", ""))
        for _, o in objects
        if o.get("kind") == "PersistentVolumeClaim"
    }
    for item, obj in objects:
        meta = obj.get("metadata") or {}
        resource = _group_resource(item, obj)
        namespace = str(meta.get("namespace") or "")
        namespaced = bool(item.get("namespaced", bool(namespace)))
        if wanted and namespaced and namespace not in wanted:
            continue
        if resource == "namespaces":
            name = str(meta.get("name", ""))
            if not wanted or name in wanted:
                namespaces.add(name)
            continue
        owned = (
            item.get("owned") if isinstance(item.get("owned"), bool) else bool(meta.get("ownerReferences"))
        )
        if resource in NEVER_RESTORED or (owned and not request.keep_owned) or skip_reason(obj):
            continue
        ref = (obj.get("spec") or {}).get("claimRef") or {}
        if (
            obj.get("kind") == "PersistentVolume"
            and (ref.get("namespace", ""), ref.get("name", "")) in claims
        ):
            continue  # its claim is restored with a new volume
        app.kinds.add((resource, namespaced))
        if namespaced:
            namespaces.add(namespace)
            app.objects.add((resource, namespace, str(meta.get("name", ""))))
        if resource == "persistentvolumeclaims":
            storage_class = str((obj.get("spec") or {}).get("storageClassName") or "")
            app.claims.append(Claim(namespace, str(meta.get("name", "")), storage_class))
    app.namespaces = sorted(namespaces)
    return app
