"""Drill reports: what a DR drill proved — when, which snapshot, RTO, RPO, verification, clean-up.

A drill is a ``drill`` MobilityRequest: its snapshot is restored into generated, isolated namespaces
of the DR cluster, verified, measured and removed again by its last step (``cleanup``, in the
restore process), which stores one ``DrillReport`` as ``<request>/drill.json`` in the
``ferry-inventories`` object store and sends it as a ``Report`` event of document kind ``drill``.
The intake process lists them (``services/intake/drills.py``); a drill that has not reached its
cleanup yet is listed from its request state, with ``cleanup`` "pending".

The subjects live here rather than in ``subjects.py``, as the policies' do, so this contract reads
as one piece. Public contract: new fields get defaults, types never change.

| subject | body | reply |
|---|---|---|
| ``ferry.drills.list`` | ``{"policy": "", "limit": 100}`` (or empty) | a DrillList, newest first |
| ``ferry.drills.get`` | the drill's request id | its DrillReport, or Rejected ``not-found`` |
"""

from __future__ import annotations

import hashlib
import re
from typing import Annotated

import msgspec
from msgspec import Meta, Struct, field

from shared.contracts.reports import DocumentKind

DRILLS_LIST = "ferry.drills.list"
DRILLS_GET = "ferry.drills.get"
POLICY_LABEL = "ferry.dev/policy"  # the label a policy's drill request carries (as in ``policies``)
MAX_DRILLS = 1000  # at most this many reports in one list

# What the cleanup step did with what the drill restored.
REMOVED, KEPT, PENDING = "removed", "kept", "pending"
FAILED_PREFIX = "failed: "  # "failed: <why>"


_FERRY_ID = re.compile(r"-([0-9a-f]{6})$")  # the random tail of Ferry's request ids


def short_id(request_id: str) -> str:
    """Six characters that tell one drill from another: the random tail of a Ferry request id, or a
    digest of any other id (a DNS-1123 label in both cases)."""
    found = _FERRY_ID.search(request_id)
    return found.group(1) if found else hashlib.sha256(request_id.encode()).hexdigest()[:6]


def drill_namespace(namespace: str, request_id: str) -> str:
    """``<ns>-drill-<short>``: where a drill restores ``namespace``, derived from the request id so
    every attempt and every step agree; the namespace is cut so the whole stays a DNS-1123 label."""
    suffix = f"-drill-{short_id(request_id)}"
    return namespace[: 63 - len(suffix)].rstrip("-") + suffix


def report_key(request_id: str) -> str:
    """Where a drill's report is stored in the ``ferry-inventories`` object store."""
    return f"{request_id}/drill.json"


class DrillReport(Struct, frozen=True, kw_only=True):
    """One drill, as measured by its cleanup step (or, before that, as its request state says)."""

    request_id: str
    kind: DocumentKind = DocumentKind.DRILL
    policy: str = ""  # "" for an ad hoc drill
    source_cluster: str = ""
    namespaces: list[str] = field(default_factory=list)  # the application's, as captured
    target_cluster: str = ""
    drill_namespaces: dict[str, str] = field(default_factory=dict)  # source namespace -> drill's
    snapshot: str = ""
    started_at: str = ""  # ISO 8601: the request's creation, the drill's start
    available_at: str = ""  # ISO 8601: the application available in the DR cluster ("" unknown)
    snapshot_at: str = ""  # ISO 8601: the source time of the restored snapshot
    rto_seconds: float | None = None  # started_at -> available_at
    rpo_seconds: float | None = None  # snapshot_at -> started_at: the data a real failover would lose
    verified: bool = False
    problems: list[str] = field(default_factory=list)  # what verification (and the restore) found
    cleanup: str = PENDING  # "removed" | "kept" | "failed: <why>" | "pending"
    removed: int = 0  # objects the cleanup removed
    phase: str = ""  # the request's phase
    warnings: list[str] = field(default_factory=list)  # isolation and clean-up notes


class DrillQuery(Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    policy: str = ""  # only the drills of this policy ("" = every drill)
    limit: Annotated[int, Meta(ge=1, le=MAX_DRILLS)] = 100


class DrillList(Struct, frozen=True, kw_only=True):
    items: list[DrillReport] = field(default_factory=list)  # newest first


encoder = msgspec.json.Encoder()
report_decoder = msgspec.json.Decoder(DrillReport)
list_decoder = msgspec.json.Decoder(DrillList)
query_decoder = msgspec.json.Decoder(DrillQuery)
