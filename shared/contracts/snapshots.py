"""The snapshot catalog's documents: what ``ferry.snapshots.list|describe|delete|retain`` answer.

A *Ferry snapshot* is the set of repository records sharing one group id (the snapshot id): one
``tree`` record per volume and one ``blob`` record named ``manifests`` that the snapshot step writes
last — a group without it is an interrupted attempt, not a snapshot. The manifests record's tags
carry what the catalog shows without reading any data: the application, source cluster,
namespaces, request id, object counts and the consistency of the capture.

Requests: ``list`` takes a JSON ``SnapshotQuery`` (every field optional, strings as the gateway's
query string gives them); ``describe`` and ``delete`` take the snapshot id as the raw body (or a
JSON ``{"id": ..., "repository": ...}``); ``retain`` takes a ``RetentionQuery``. A failure is
answered with the ``Rejected`` document of ``states.py`` (``code``: invalid, not-found,
unavailable). Public contract: new fields get defaults, types never change.
"""

from __future__ import annotations

import msgspec
from msgspec import Struct, field

# Tags on the records of a Ferry snapshot (volume records and the manifests record).
APP_TAG = "app"  # the retention series: cluster + namespaces (+ selector), or the request's app label
CLUSTER_TAG = "ferry.dev/cluster"
NAMESPACES_TAG = "ferry.dev/namespaces"  # comma-separated
REQUEST_TAG = "ferry.dev/request"
NAMESPACE_TAG = "ferry.dev/namespace"  # volume records: the claim's namespace
PVC_TAG = "ferry.dev/pvc"  # volume records: the claim's name
CONSISTENCY_TAG = "ferry.dev/consistency"  # csi | live (crash-consistent) | quiesced
COUNTS_TAG = "ferry.dev/counts"  # manifests record: JSON {group-resource: n}
VERIFICATION_TAG = "ferry.dev/verification"  # records a verify step adds; not part of the snapshot
MANIFESTS = "manifests"


class VolumeSummary(Struct, frozen=True, kw_only=True):
    namespace: str
    claim: str
    record: str  # the repository record id
    bytes: int = 0
    new_bytes: int = 0
    stored_bytes: int = 0
    files: int = 0
    consistency: str = ""  # csi | live | quiesced


class SnapshotSummary(Struct, frozen=True, kw_only=True):
    id: str
    time: str
    app: str = ""
    cluster: str = ""
    namespaces: list[str] = field(default_factory=list)
    request_id: str = ""
    objects: int = 0
    volumes: int = 0
    bytes: int = 0  # logical bytes of the volumes and the manifests
    new_bytes: int = 0  # bytes this snapshot added to the repository (the rest was deduplicated)
    consistency: str = ""  # the weakest of the volumes': live < csi < quiesced
    repository: str = ""


class SnapshotDetail(Struct, frozen=True, kw_only=True):
    summary: SnapshotSummary
    counts: dict[str, int] = field(default_factory=dict)
    volume_records: list[VolumeSummary] = field(default_factory=list)
    manifests_record: str = ""


class SnapshotQuery(Struct, frozen=True, kw_only=True):
    cluster: str = ""
    namespace: str = ""
    app: str = ""
    repository: str = ""
    limit: str = ""  # the gateway passes query strings through: "20"


class SnapshotList(Struct, frozen=True, kw_only=True):
    items: list[SnapshotSummary] = field(default_factory=list)


class RetentionQuery(Struct, frozen=True, kw_only=True):
    app: str = ""  # empty: every application's series
    keep_last: int | None = None
    keep_within: str = ""  # e.g. "7d", "12h"
    repository: str = ""
    prune: bool = True
    dry_run: bool = False


class RetentionResult(Struct, frozen=True, kw_only=True):
    kept: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    records_removed: int = 0
    bytes_freed: int = 0


class Deleted(Struct, frozen=True, kw_only=True):
    id: str
    records_removed: int = 0
    bytes_freed: int = 0


encoder = msgspec.json.Encoder()
query_decoder = msgspec.json.Decoder(SnapshotQuery)
retention_decoder = msgspec.json.Decoder(RetentionQuery)
