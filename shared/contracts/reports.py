"""What the restore and verify steps report: one result per object, one check per volume.

Velero's most-filed complaint about partial failures is that they are opaque (velero #4223): a
restore says ``PartiallyFailed`` and nobody can tell which object failed or why. Ferry's restore
therefore records a result for *every* object of the snapshot — created, updated, unchanged,
skipped (with the reason) or failed (with the API's message) — and the verify step a check for every
volume (file tree and content hashes against the snapshot). Both documents are stored with the
request (the ``ferry-inventories`` object store, named in the step's outputs) and published as a
``Report`` event, so a person or a pipeline sees the same thing.

These are public contracts: new fields get defaults, types never change.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Any

import msgspec
from msgspec import Struct, field


class Outcome(StrEnum):
    CREATED = "created"
    UPDATED = "updated"  # existed and differed; patched to the snapshot's version (policy update)
    RECREATED = "recreated"  # existed; deleted and created again (policy recreate)
    UNCHANGED = "unchanged"  # existed and already equal to the snapshot's version
    SKIPPED = "skipped"  # not written; ``reason`` says why (owned, exists under policy skip, ...)
    FAILED = "failed"  # ``reason`` carries the API's message
    PLANNED = "planned"  # dry run: would be created / updated (``diff`` says how)


class DocumentKind(StrEnum):
    """What a stored document or a ``Report`` event is; clients select documents by it, never by title."""

    INVENTORY = "inventory"
    SNAPSHOT = "snapshot"
    TRANSFER = "transfer"
    RESTORE = "restore"
    DRY_RUN = "dry-run"
    EXPECTATION = "expectation"
    VERIFICATION = "verification"
    PREFLIGHT = "preflight"
    DRILL = "drill"  # a drill's report: RTO, RPO, verification, clean-up (``shared.contracts.drills``)


class VolumeAction(StrEnum):
    """What the restore did with one claim's data."""

    CREATED = "created"  # a fresh claim, filled from the snapshot
    REFRESHED = "refreshed"  # an existing claim, brought to the snapshot's state by a delta restore
    KEPT = "kept"  # an existing claim whose data was left as it was (volumes.existing keep/auto)
    FAILED = "failed"  # not filled: ``reason`` says why


class ObjectResult(Struct, frozen=True, kw_only=True):
    """The fate of one object of the snapshot, named as in the *source* and in the *target*."""

    key: str  # "<group-resource>/<namespace>/<name>" as captured, e.g. "deployments.apps/shop/web"
    target: str = ""  # the same after transforms, e.g. "deployments.apps/shop-dr/web"
    outcome: Outcome
    reason: str = ""
    diff: list[str] = field(default_factory=list)  # dry run / skip: "spec.replicas: 2 -> 3"
    warnings: list[str] = field(default_factory=list)  # e.g. a resource-modifier test that did not hold
    rewrites: list[str] = field(default_factory=list)  # namespace references: "spec.x[0].value: old -> new"

    @property
    def failed(self) -> bool:
        return self.outcome is Outcome.FAILED


class VolumeResult(Struct, frozen=True, kw_only=True):
    """One volume restored by a mover Job (restore) or compared with its snapshot (verify)."""

    claim: str  # target "<namespace>/<pvc>"
    snapshot: str  # the repository snapshot id of the volume
    ok: bool
    files: int = 0
    bytes: int = 0
    reason: str = ""
    damaged: dict[str, str] = field(default_factory=dict)  # path -> why (missing, content differs)
    action: VolumeAction | None = None  # restore: what was done with the claim's data
    files_written: int = 0  # restore: files (re)written; a delta restore skips the equal ones
    bytes_written: int = 0
    files_skipped: int = 0  # delta restore: files already equal to the snapshot
    bytes_skipped: int = 0
    removed: int = 0  # delta restore: entries the snapshot does not have, removed
    different: int = 0  # verify: paths that differ (``damaged`` lists the first ones)
    path: str = ""  # only this path of the volume was restored (restore.volume_paths), and is verified


class RestoreReport(Struct, frozen=True, kw_only=True):
    request_id: str
    kind: DocumentKind = DocumentKind.RESTORE
    snapshot: str  # the Ferry snapshot id (group)
    dry_run: bool = False
    objects: list[ObjectResult] = field(default_factory=list)
    volumes: list[VolumeResult] = field(default_factory=list)
    waited: dict[str, str] = field(default_factory=dict)  # object -> "ready" or why it is not

    def counts(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for result in self.objects:
            counts[result.outcome.value] = counts.get(result.outcome.value, 0) + 1
        counts["volumes"] = len(self.volumes)
        counts["volumes_failed"] = sum(1 for v in self.volumes if not v.ok)
        for action in (VolumeAction.CREATED, VolumeAction.REFRESHED, VolumeAction.KEPT):
            if found := sum(1 for v in self.volumes if v.action is action):
                counts[f"volumes_{action.value}"] = found
        if self.volumes:
            counts["files_written"] = sum(v.files_written for v in self.volumes)
            counts["bytes_written"] = sum(v.bytes_written for v in self.volumes)
        return counts


class Verification(Struct, frozen=True, kw_only=True):
    """The verify step's proof: every object accounted for, every volume equal to its snapshot."""

    request_id: str
    snapshot: str
    kind: DocumentKind = DocumentKind.VERIFICATION
    objects_expected: int = 0
    objects_present: int = 0
    objects: list[ObjectResult] = field(default_factory=list)  # only the ones that are NOT fine
    volumes: list[VolumeResult] = field(default_factory=list)
    objects_differing: int = 0  # present in the target but not equal to the snapshot's version
    objects_missing: int = 0

    @property
    def ok(self) -> bool:
        return not self.objects and all(v.ok for v in self.volumes)


class ExpectedObject(Struct, frozen=True, kw_only=True):
    """One object the restore rendered, as the target should now hold it (after every transform)."""

    key: str  # as captured
    target: str  # as written
    object: dict[str, Any]  # the rendered document; Secret values replaced by their digests
    outcome: Outcome  # what the restore did with it
    reason: str = ""
    ignore: list[str] = field(default_factory=list)  # fields owned by someone else now ("spec.replicas")


class Expectation(Struct, frozen=True, kw_only=True):
    """What the restore step hands the verify step: what it wrote and what the target must hold.

    Verify compares the target with this document alone: it prepares nothing again and imports no
    restore code. Stored with the request (``<request>/expectation.json``, output ``expectation``).
    """

    request_id: str
    snapshot: str  # the Ferry snapshot id (group)
    kind: DocumentKind = DocumentKind.EXPECTATION
    cluster: str = ""  # the target cluster
    repository: str = ""  # the repository the volumes' snapshots are in (the target's)
    objects: list[ExpectedObject] = field(default_factory=list)
    accounted: list[ObjectResult] = field(default_factory=list)  # not written on purpose, with the reason
    volumes: list[VolumeResult] = field(default_factory=list)  # the restore's result for every claim


report_encoder = msgspec.json.Encoder()
restore_report_decoder = msgspec.json.Decoder(RestoreReport)
verification_decoder = msgspec.json.Decoder(Verification)
expectation_decoder = msgspec.json.Decoder(Expectation)
