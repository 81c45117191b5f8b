"""The snapshot catalog: list, describe, delete and retain Ferry snapshots in a repository.

Plain blocking functions over a ``Repository`` (call them with ``asyncio.to_thread``), so the
snapshot service's NATS endpoints, the gateway (through those endpoints) and a script can all use
them. A Ferry snapshot is the group of records sharing one id (see ``shared/contracts/snapshots.py``);
a group without its ``manifests`` record is an interrupted attempt and is not listed. Records a
verify step adds to a group (tag ``ferry.dev/verification``) are not part of the snapshot.

Retention works per application series (the ``app`` tag): keep the newest N, and/or keep those
taken within a duration before the series' newest snapshot (restic's rule, so a stopped schedule
never forgets everything), then prune what no snapshot needs any more.
"""

from __future__ import annotations

import hashlib
import json
from collections import defaultdict
from datetime import datetime, timedelta

from shared import durations
from shared.contracts import snapshots as c
from shared.contracts.errors import PermanentError
from shared.repository import Repository, Snapshot, SnapshotNotFound
from shared.repository.pruning import prune

Records = list[tuple[str, Snapshot]]
ORDER = {"live": 0, "csi": 1, "quiesced": 2}  # weakest first; "manifests-only": no volume data


def snapshot_id_for(request_id: str) -> str:
    """The Ferry snapshot id of a request: stable, so a redelivered step writes into the same group."""
    return "snap-" + hashlib.sha256(request_id.encode()).hexdigest()[:20]


def weakest(consistencies: list[str]) -> str:
    return min(consistencies, key=lambda v: ORDER.get(v, -1)) if consistencies else ""


def groups(repo: Repository) -> dict[str, Records]:
    """Every group's records (verification records left out), oldest record first."""
    found: dict[str, Records] = defaultdict(list)
    for record_id, record in repo.snapshots():
        if record.group and c.VERIFICATION_TAG not in record.tags:
            found[record.group].append((record_id, record))
    return found


def manifests_of(records: Records) -> tuple[str, Snapshot] | None:
    blobs = [(i, r) for i, r in records if r.kind == "blob" and r.name == c.MANIFESTS]
    return blobs[-1] if blobs else None


def summarize(group: str, records: Records, repository: str = "") -> c.SnapshotSummary | None:
    found = manifests_of(records)
    if found is None:
        return None
    _, manifests = found
    tags = manifests.tags
    counts = json.loads(tags.get(c.COUNTS_TAG) or "{}")
    volumes = [r for _, r in records if r.kind == "tree"]
    return c.SnapshotSummary(
        id=group,
        time=manifests.time,
        app=tags.get(c.APP_TAG, ""),
        cluster=tags.get(c.CLUSTER_TAG, ""),
        namespaces=[n for n in tags.get(c.NAMESPACES_TAG, "").split(",") if n],
        request_id=tags.get(c.REQUEST_TAG, ""),
        objects=sum(int(v) for v in counts.values()),
        volumes=len(volumes),
        bytes=sum(r.stats.bytes for _, r in records),
        new_bytes=sum(r.stats.new_bytes for _, r in records),
        consistency=tags.get(c.CONSISTENCY_TAG, ""),
        repository=repository,
    )


def list_snapshots(repo: Repository, query: c.SnapshotQuery, repository: str = "") -> list[c.SnapshotSummary]:
    """Complete snapshots matching the query, newest first."""
    items = []
    for group, records in groups(repo).items():
        summary = summarize(group, records, repository)
        if summary is None:
            continue
        if query.cluster and summary.cluster != query.cluster:
            continue
        if query.namespace and query.namespace not in summary.namespaces:
            continue
        if query.app and summary.app != query.app:
            continue
        items.append(summary)
    items.sort(key=lambda s: (s.time, s.id), reverse=True)
    if query.limit:
        try:
            items = items[: max(int(query.limit), 0)]
        except ValueError as e:
            raise PermanentError(f"limit must be a number, got {query.limit!r}") from e
    return items


def _find(repo: Repository, snapshot_id: str) -> tuple[str, Records]:
    every = groups(repo)
    if snapshot_id in every:
        return snapshot_id, every[snapshot_id]
    matches = (
        [g for g in every if g.startswith(snapshot_id) and manifests_of(every[g])] if snapshot_id else []
    )
    if len(matches) == 1:
        return matches[0], every[matches[0]]
    if len(matches) > 1:
        raise SnapshotNotFound(f"snapshot id {snapshot_id!r} is ambiguous: {', '.join(sorted(matches)[:5])}")
    raise SnapshotNotFound(f"no snapshot {snapshot_id!r} in the repository at {repo.store.location}")


def describe(repo: Repository, snapshot_id: str, repository: str = "") -> c.SnapshotDetail:
    group, records = _find(repo, snapshot_id)
    summary = summarize(group, records, repository)
    if summary is None:
        raise SnapshotNotFound(
            f"snapshot {group} is incomplete (its step did not finish): no manifests record"
        )
    found = manifests_of(records)
    assert found is not None
    volumes = [
        c.VolumeSummary(
            namespace=r.tags.get(c.NAMESPACE_TAG, ""),
            claim=r.tags.get(c.PVC_TAG, r.name),
            record=record_id,
            bytes=r.stats.bytes,
            new_bytes=r.stats.new_bytes,
            stored_bytes=r.stats.stored_bytes,
            files=r.stats.files,
            consistency=r.tags.get(c.CONSISTENCY_TAG, ""),
        )
        for record_id, r in records
        if r.kind == "tree"
    ]
    counts = {k: int(v) for k, v in json.loads(found[1].tags.get(c.COUNTS_TAG) or "{}").items()}
    return c.SnapshotDetail(summary=summary, counts=counts, volume_records=volumes, manifests_record=found[0])


def delete(repo: Repository, snapshot_id: str, *, reclaim: bool = False) -> c.Deleted:
    """Delete every record of one Ferry snapshot (verification records too); prune if ``reclaim``."""
    group, _ = _find(repo, snapshot_id)
    removed = 0
    with repo.lock(purpose=f"delete {group}"):
        for record_id, record in repo.snapshots():
            if record.group == group:
                repo.delete_snapshot(record_id)
                removed += 1
    freed = prune(repo).bytes_freed if reclaim else 0
    return c.Deleted(id=group, records_removed=removed, bytes_freed=freed)


def parse_duration(value: str) -> timedelta:
    try:
        return timedelta(seconds=durations.seconds(value))
    except ValueError as e:
        raise PermanentError(f"keep_within: {e}") from None


def retain(repo: Repository, query: c.RetentionQuery) -> c.RetentionResult:
    """Keep the newest ``keep_last`` and/or those ``keep_within`` of each series; delete the rest."""
    if query.keep_last is None and not query.keep_within:
        raise PermanentError("retention needs keep_last and/or keep_within: refusing to delete everything")
    within = parse_duration(query.keep_within) if query.keep_within else None
    every = groups(repo)
    series: dict[str, list[tuple[datetime, str]]] = defaultdict(list)
    for group, records in every.items():
        summary = summarize(group, records)
        if summary is None or (query.app and summary.app != query.app):
            continue
        series[summary.app].append((datetime.fromisoformat(summary.time), group))
    kept: list[str] = []
    removed: list[str] = []
    for entries in series.values():
        entries.sort(reverse=True)
        newest = entries[0][0]
        for position, (when, group) in enumerate(entries):
            keep = query.keep_last is not None and position < query.keep_last
            keep = keep or (within is not None and newest - when <= within)
            (kept if keep else removed).append(group)
    records_removed, freed = 0, 0
    if not query.dry_run and removed:
        doomed = set(removed)
        with repo.lock(purpose="retention"):
            for record_id, record in repo.snapshots():
                if record.group in doomed:
                    repo.delete_snapshot(record_id)
                    records_removed += 1
        if query.prune:
            freed = prune(repo).bytes_freed
    return c.RetentionResult(
        kept=sorted(kept), removed=sorted(removed), records_removed=records_removed, bytes_freed=freed
    )
