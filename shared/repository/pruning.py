"""``forget`` (which snapshots to drop, by policy) and ``prune`` (reclaim the space they held).

``forget`` only deletes snapshot records, under a shared lock: a running backup is not affected.
The unit it keeps or drops is a *Ferry snapshot* — all records sharing one ``group`` id (the volumes
and the manifests of one application at one time) — so a kept snapshot is always complete. Series
are keyed by the ``app`` tag (or the record name when there is none); ``keep_last`` keeps the newest
N of each series, ``keep_within`` those younger than a duration before the newest one (as restic
does, so that a stopped schedule never forgets everything).

``prune`` takes the *exclusive* lock, so it cannot run while any backup, restore or copy holds a
shared one: a backup's packs that are uploaded but not yet referenced by a snapshot are never seen
by prune. Order of work makes a crash harmless: new packs, then the new index (superseding all old
ones), then deletion of old index files, and only then of packs.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from shared.repository.errors import RepositoryError
from shared.repository.formats import IndexedPack, Snapshot
from shared.repository.indexes import write_index
from shared.repository.packing import Packer
from shared.repository.repo import Repository
from shared.repository.walking import referenced
from shared.store import layout


@dataclass(frozen=True)
class Policy:
    keep_last: int | None = None
    keep_within: timedelta | None = None


@dataclass
class ForgetResult:
    kept: list[str] = field(default_factory=list)  # group ids
    removed: list[str] = field(default_factory=list)  # group ids
    records_removed: int = 0


@dataclass
class PruneResult:
    packs_deleted: int = 0
    packs_rewritten: int = 0
    bytes_freed: int = 0
    missing: list[str] = field(default_factory=list)


def _series(records: list[Snapshot]) -> str:
    app = records[0].tags.get("app")
    return f"app={app}" if app else ",".join(sorted({r.name for r in records}))


def forget(repo: Repository, policy: Policy, *, dry_run: bool = False) -> ForgetResult:
    """Delete the Ferry snapshots the policy does not keep; an empty policy is refused."""
    if policy.keep_last is None and policy.keep_within is None:
        raise RepositoryError(
            "forget needs a policy (keep_last and/or keep_within): refusing to forget everything"
        )
    result = ForgetResult()
    with repo.lock(purpose="forget"):
        groups: dict[str, list[tuple[str, Snapshot]]] = defaultdict(list)
        for snapshot_id, record in repo.snapshots():
            groups[record.group or snapshot_id].append((snapshot_id, record))
        series: dict[str, list[tuple[datetime, str]]] = defaultdict(list)
        for group, members in groups.items():
            newest = max(datetime.fromisoformat(record.time) for _, record in members)
            series[_series([record for _, record in members])].append((newest, group))
        for entries in series.values():
            entries.sort(reverse=True)
            latest = entries[0][0]
            for position, (when, group) in enumerate(entries):
                keep = policy.keep_last is not None and position < policy.keep_last
                keep = keep or (policy.keep_within is not None and latest - when <= policy.keep_within)
                if keep:
                    result.kept.append(group)
                    continue
                result.removed.append(group)
                for snapshot_id, _record in groups[group]:
                    result.records_removed += 1
                    if not dry_run:
                        repo.delete_snapshot(snapshot_id)
    return result


def prune(repo: Repository, *, rewrite_threshold: float = 0.25, dry_run: bool = False) -> PruneResult:
    """Delete packs no snapshot needs; rewrite packs that are mostly unused; drop orphan packs."""
    result = PruneResult()
    with repo.lock(exclusive=True, purpose="prune"):
        index = repo.reload_index()
        used: set[bytes] = set()
        for snapshot_id, record in repo.snapshots():
            for path, blob_id in referenced(repo, record):
                used.add(blob_id)
                if blob_id not in index:
                    result.missing.append(
                        f"snapshot {snapshot_id[:8]}: {path or '<tree>'} needs a missing chunk"
                    )
        stored = {layout.id_of(info.key): info.size for info in repo.store.list(layout.DATA)}
        keep: list[IndexedPack] = []
        rewrite: list[IndexedPack] = []
        delete: list[str] = [name for name in stored if name not in index.packs]
        for pack in index.packs.values():
            live = sum(blob.length for blob in pack.blobs if blob.id in used)
            if live == 0:
                delete.append(pack.id)
            elif live < (1 - rewrite_threshold) * sum(blob.length for blob in pack.blobs):
                rewrite.append(pack)
            else:
                keep.append(pack)
        result.packs_deleted = len(delete)
        result.packs_rewritten = len(rewrite)
        result.bytes_freed = sum(stored.get(name, 0) for name in delete + [p.id for p in rewrite])
        if dry_run:
            return result
        covered = {blob.id for pack in keep for blob in pack.blobs}
        old_files = set(index.files)
        packer = Packer(repo.store, repo.cipher, index, repo.config.pack_size)
        try:
            for pack in rewrite:
                data = memoryview(repo.store.get(layout.pack(pack.id)))
                for blob in pack.blobs:
                    if blob.id in used and blob.id not in covered:
                        covered.add(blob.id)
                        sealed = bytes(data[blob.offset : blob.offset + blob.length])
                        packer.add_sealed(blob.id, blob.type, sealed, blob.size, blob.zstd)
                        result.bytes_freed -= blob.length
            packer.flush()
        finally:
            packer.close()
        rewritten = {pack.id for pack in rewrite}
        survivors = [
            pack for name, pack in index.packs.items() if name not in rewritten and name not in delete
        ]
        superseded = set(index.files) | old_files
        write_index(repo.store, repo.cipher, survivors, superseded)
        for name in superseded:
            repo.store.delete(layout.index(name))
        for name in delete + list(rewritten):
            repo.store.delete(layout.pack(name))
        repo.reload_index()
    return result
