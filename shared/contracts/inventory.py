"""The inventory: what discovery found of an application, the document snapshot and restore read.

Discovery stores one inventory per request in the ``ferry-inventories`` NATS object store (object
name = the request id, named in the step outputs as ``inventory``). It holds every object in scope
*as read* from the API server (minus ``metadata.managedFields``): cleaning and transforming are the
restore's business, so nothing is lost at capture time.

Keys name objects the way restore reports do: ``<group-resource>/<namespace>/<name>`` for
namespaced objects (``deployments.apps/shop/web``) and ``<group-resource>/<name>`` for
cluster-scoped ones (``storageclasses.storage.k8s.io/fast``).

Public contract: new fields get defaults, a field's type never changes.
"""

from __future__ import annotations

from typing import Any

import msgspec
from msgspec import Struct, field


class Item(Struct, kw_only=True):
    """One captured object."""

    key: str
    resource: str  # group-resource, e.g. "deployments.apps"
    api_version: str
    kind: str
    namespace: str = ""  # empty for cluster-scoped objects
    name: str
    namespaced: bool = True
    # Why a cluster-scoped object is here ("bound by persistentvolumeclaims/shop/data", ...); empty
    # for the application's own namespaced objects.
    needed_by: list[str] = field(default_factory=list)
    owners: list[str] = field(default_factory=list)  # keys of in-scope owners (ownerReferences)
    owned: bool = False  # owned by an object in scope: restore lets the owner's controller make it
    object: dict[str, Any] = field(default_factory=dict)


class Reference(Struct, frozen=True, kw_only=True):
    """``source`` uses ``target`` (a pod template mounting a ConfigMap, an Ingress naming a Service)."""

    source: str
    target: str
    via: str  # what makes the reference, e.g. "envFrom.configMapRef", "scaleTargetRef"
    missing: bool = False  # the target does not exist in the cluster
    optional: bool = False  # the reference is marked optional: a missing target is no problem


class Volume(Struct, kw_only=True):
    """What the snapshot step needs to know to copy one PVC's data."""

    namespace: str
    claim: str
    phase: str = ""  # Bound, Pending, Lost
    size: str = ""  # requested size ("2Gi")
    capacity: str = ""  # bound capacity
    access_modes: list[str] = field(default_factory=list)
    storage_class: str = ""
    volume: str = ""  # the PV's name
    driver: str = ""  # CSI driver (PV spec.csi.driver, else the StorageClass provisioner)
    snapshot_class: str = ""  # a VolumeSnapshotClass for that driver; empty: no CSI snapshot possible
    mounted_by: list[str] = field(default_factory=list)  # keys of workloads that mount it

    @property
    def key(self) -> str:
        return f"{self.namespace}/{self.claim}"


class Skipped(Struct, frozen=True, kw_only=True):
    key: str
    reason: str


class Inventory(Struct, kw_only=True):
    request_id: str
    cluster: str
    namespaces: list[str]
    selector: str = ""
    captured_at: str = ""  # RFC 3339, UTC
    server_version: str = ""
    items: list[Item] = field(default_factory=list)
    references: list[Reference] = field(default_factory=list)
    volumes: list[Volume] = field(default_factory=list)
    skipped: list[Skipped] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    def counts(self) -> dict[str, int]:
        """Objects per group-resource (owned ones included)."""
        counts: dict[str, int] = {}
        for item in self.items:
            counts[item.resource] = counts.get(item.resource, 0) + 1
        return dict(sorted(counts.items()))

    def item(self, key: str) -> Item | None:
        for item in self.items:
            if item.key == key:
                return item
        return None


def object_name(request_id: str) -> str:
    """The inventory's name in the ``ferry-inventories`` object store."""
    return f"inventory/{request_id}.json"


_encoder = msgspec.json.Encoder()
_decoder = msgspec.json.Decoder(Inventory)


def encode_inventory(inventory: Inventory) -> bytes:
    return _encoder.encode(inventory)


def decode_inventory(data: bytes) -> Inventory:
    return _decoder.decode(data)
