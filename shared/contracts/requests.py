"""The mobility request: what to move, from where, to where, and how.

This is Ferry's public input contract — the gateway, the `ferry` command and any automation posting
on ``ferry.requests`` send exactly this document. Unknown fields are refused (a typo must not be
silently ignored) and every error names the field (msgspec reports ``$.source.cluster``).
"""

from __future__ import annotations

import re
from enum import StrEnum
from typing import Annotated

import msgspec
from msgspec import Meta, Struct, field

from shared.contracts.errors import json_path

API_VERSION = "ferry.dev/v1"

Name = Annotated[str, Meta(min_length=1, max_length=253, pattern=r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$")]
ClusterName = Annotated[
    str, Meta(min_length=1, max_length=253, pattern=r"^[A-Za-z0-9]([-A-Za-z0-9_.@:/]*[A-Za-z0-9])?$")
]
LabelMap = dict[Annotated[str, Meta(min_length=1, max_length=317)], Annotated[str, Meta(max_length=63)]]


class RequestKind(StrEnum):
    MIGRATE = "migrate"  # discover, snapshot, transfer, restore, verify
    REPLICATE = "replicate"  # discover, snapshot, transfer (a DR replica in the target region)
    RESTORE = "restore"  # an existing snapshot into a cluster: transfer (if needed), restore, verify
    DRILL = "drill"  # restore the latest replica into an isolated namespace, verify, clean up


class ConflictPolicy(StrEnum):
    SKIP = "skip"  # leave the existing object, report it (Velero's default `none`)
    UPDATE = "update"  # patch the existing object to the snapshot's version
    RECREATE = "recreate"  # delete the existing object and create it again
    FAIL = "fail"  # the object fails with the conflict as its reason


class SnapshotMethod(StrEnum):
    AUTO = "auto"  # CSI VolumeSnapshot when a VolumeSnapshotClass exists, else the live volume
    CSI = "csi"  # require a CSI snapshot; a volume without one fails
    LIVE = "live"  # read the live volume (crash-consistent only)


class Source(Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """Where the application is read from."""

    cluster: ClusterName
    namespaces: list[Name] = field(default_factory=list)
    selector: str = ""  # a label selector, as kubectl -l takes it
    include_resources: list[str] = field(default_factory=list)  # e.g. "deployments.apps", "configmaps"
    exclude_resources: list[str] = field(default_factory=list)
    repository: str = ""  # the source region's repository name ("" = the default)
    snapshot: str = ""  # restore/drill: the snapshot id to start from ("latest" for the newest)


class Target(Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """Where the application lands, and the transforms applied on the way."""

    cluster: ClusterName | None = None
    repository: str = ""  # the target region's repository ("" = same as the source's)
    namespace_map: dict[Name, Name] = field(default_factory=dict)
    storage_class_map: dict[str, str] = field(default_factory=dict)
    registry_map: dict[str, str] = field(default_factory=dict)
    resource_modifiers: str = ""  # Velero's resource-modifier YAML (version: v1, resourceModifierRules)


class ExistingVolumes(StrEnum):
    """What a restore does with a claim that already exists in the target."""

    AUTO = "auto"  # refresh a claim Ferry restored before (it carries Ferry's labels), keep any other
    REFRESH = "refresh"  # delta-restore it to the snapshot's state (only changed files rewritten)
    KEEP = "keep"  # leave the target's data (Velero's behaviour); verify reports what differs
    FAIL = "fail"  # the volume fails: nothing is written into an existing claim


class VolumePolicy(Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """How volume data is captured and copied."""

    copy_data: bool = True
    method: SnapshotMethod = SnapshotMethod.AUTO
    parallel: Annotated[int, Meta(ge=1, le=64)] = 2
    exclude_storage_classes: list[str] = field(default_factory=list)
    existing: ExistingVolumes = ExistingVolumes.AUTO  # a claim that already exists in the target


class RestoreScope(Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """What a restore takes from a snapshot beyond ``source``'s types, selector and namespaces.

    A snapshot may hold more than one restore needs; these narrow it further, and the verify step
    then checks only what was selected.
    """

    # Named objects, "<kind or resource>/<name>" or "<kind or resource>/<namespace>/<name>" as captured,
    # e.g. "deployment/web", "configmaps/shop/app", "deployments.apps/web". Empty: every object.
    resources: list[Annotated[str, Meta(min_length=3, max_length=512)]] = field(default_factory=list)
    # Single paths of volumes, "<namespace>/<claim>:<path>" as captured, e.g. "shop/pgdata-db-0:/base/16":
    # only those paths of that claim are written (and verified). Empty: whole volumes.
    volume_paths: list[Annotated[str, Meta(min_length=4, max_length=4096)]] = field(default_factory=list)
    # With a namespace mapping, rewrite "<svc>.<ns>.svc[.cluster.local]" in values, namespaceSelector
    # matchNames and Helm release-namespace annotations (each rewrite is in the restore report).
    rewrite_references: bool = True
    # Restore Jobs that had completed in the source, or that a CronJob owns (they would run again).
    completed_jobs: bool = False


class MobilityRequest(Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """One request to move, replicate, restore or drill an application."""

    kind: RequestKind
    source: Source
    target: Target = field(default_factory=Target)
    volumes: VolumePolicy = field(default_factory=VolumePolicy)
    restore: RestoreScope = field(default_factory=RestoreScope)
    conflict_policy: ConflictPolicy = ConflictPolicy.SKIP
    quiesce: bool = False  # scale workloads to zero while the final copy is taken, restore after
    keep_owned: bool = False  # also capture objects owned by another captured object
    dry_run: bool = False
    preflight_only: bool = False  # run the preflight checks (clusters, RBAC, storage, repositories) and stop
    idempotency_key: Annotated[str, Meta(max_length=256)] = ""
    labels: LabelMap = field(default_factory=dict)
    # Override the kind's steps (names from StepName), e.g. a replicate that stops after snapshot.
    itinerary: list[str] = field(default_factory=list)
    api_version: str = API_VERSION


class RequestInvalid(ValueError):
    """A request that decodes but makes no sense; ``field`` is the JSON path of the culprit."""

    def __init__(self, field_path: str, message: str) -> None:
        super().__init__(f"{message} - at `{field_path}`")
        self.field = field_path
        self.reason = message


_SELECTOR = re.compile(r"^[A-Za-z0-9_./=!,()\s-]*$")


def check(request: MobilityRequest) -> MobilityRequest:
    """Rules across fields that a schema cannot say; raises RequestInvalid naming the field."""
    if request.api_version != API_VERSION:
        raise RequestInvalid(
            "$.api_version", f"unsupported api_version {request.api_version!r}, expected {API_VERSION!r}"
        )
    if not _SELECTOR.match(request.source.selector):
        raise RequestInvalid("$.source.selector", "not a label selector")
    overlap = set(request.source.include_resources) & set(request.source.exclude_resources)
    if overlap:
        raise RequestInvalid("$.source.exclude_resources", f"both included and excluded: {sorted(overlap)}")
    if (
        request.kind in (RequestKind.MIGRATE, RequestKind.RESTORE, RequestKind.DRILL)
        and not request.target.cluster
    ):
        raise RequestInvalid("$.target.cluster", f"a {request.kind.value} request needs a target cluster")
    if request.kind in (RequestKind.RESTORE, RequestKind.DRILL) and not request.source.snapshot:
        raise RequestInvalid(
            "$.source.snapshot", f"a {request.kind.value} request needs a snapshot id (or 'latest')"
        )
    if request.kind is RequestKind.MIGRATE and not request.source.namespaces and not request.source.selector:
        raise RequestInvalid("$.source.namespaces", "name at least one namespace or a label selector")
    from shared.contracts.steps import StepName  # steps import this module: keep the cycle local

    known = {s.value for s in StepName}
    for i, step in enumerate(request.itinerary):
        if step not in known:
            raise RequestInvalid(
                f"$.itinerary[{i}]", f"unknown step {step!r}, expected one of {sorted(known)}"
            )
    if len(set(request.itinerary)) != len(request.itinerary):
        raise RequestInvalid("$.itinerary", "a step may appear only once")
    unmapped_targets = [ns for ns in request.target.namespace_map.values() if not ns]
    if unmapped_targets:
        raise RequestInvalid("$.target.namespace_map", "every namespace must map to a name")
    return request


_decoder = msgspec.json.Decoder(MobilityRequest)
_encoder = msgspec.json.Encoder()


def decode_request(data: bytes) -> MobilityRequest:
    """Decode and check; raises RequestInvalid with the field path for any bad input."""
    try:
        request = _decoder.decode(data)
    except msgspec.ValidationError as e:
        raise RequestInvalid(json_path(e) or "$", str(e).rsplit(" - at `", 1)[0]) from e
    except msgspec.DecodeError as e:
        raise RequestInvalid("$", f"not valid JSON: {e}") from e
    return check(request)


def encode_request(request: MobilityRequest) -> bytes:
    return _encoder.encode(request)
