"""Verifying one Ferry snapshot in a repository: every blob it needs is there and matches its hash.

The transfer step ends with this on the *target* repository, whatever it copied: a pack uploaded by
this transfer, a pack an earlier transfer left, or — when source and target are one repository — the
packs the snapshot was written to. The object store does not check what it stores for us (PUTs go
without checksums for speed), so reading back is the only proof that the restore will find intact
data. Each pack holding needed blobs is read once (one ranged GET over the needed blobs), each blob
decrypted and re-hashed.

Damage is reported per record and *per file*: "pack 3fa2 is corrupt" helps nobody decide what to do,
"volume shop/data: db/base/16384 — chunk 9e1c... fails authentication" does.
"""

from __future__ import annotations

import threading
from collections import defaultdict
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from shared.repository import IntegrityError, Repository
from shared.repository.formats import PackedBlob
from shared.repository.walking import referenced
from shared.store import StoreError, layout


@dataclass
class GroupCheck:
    records: int = 0
    blobs: int = 0
    packs: int = 0
    bytes_read: int = 0
    damaged: dict[str, dict[str, str]] = field(default_factory=dict)  # record label -> path -> reason

    @property
    def ok(self) -> bool:
        return not self.damaged

    def lines(self) -> list[str]:
        return [
            f"{label}: {path}: {reason}"
            for label, files in sorted(self.damaged.items())
            for path, reason in sorted(files.items())
        ]


def _check_pack(repo: Repository, pack: str, blobs: list[PackedBlob]) -> tuple[dict[bytes, str], int]:
    blobs = sorted(blobs, key=lambda b: b.offset)
    start, end = blobs[0].offset, blobs[-1].offset + blobs[-1].length
    try:
        data = memoryview(repo.store.get_range(layout.pack(pack), start, end - start))
    except StoreError as e:
        return {b.id: f"pack {pack[:16]} cannot be read: {e}" for b in blobs}, 0
    bad = {}
    for blob in blobs:
        try:
            repo.open_blob(blob, data[blob.offset - start : blob.offset - start + blob.length], pack)
        except IntegrityError as e:
            bad[blob.id] = f"{e} (pack {pack[:16]} is corrupt)"
    return bad, len(data)


def verify_group(
    repo: Repository,
    group: str,
    *,
    threads: int = 4,
    progress: Callable[[int, int], None] | None = None,
    stop: threading.Event | None = None,
) -> GroupCheck:
    """Read back every blob ``group`` needs in ``repo``; report damaged files by record and path."""
    result = GroupCheck()
    uses: dict[bytes, list[tuple[str, str]]] = defaultdict(list)
    for snapshot_id, record in repo.snapshots(group=group):
        result.records += 1
        label = f"{record.name} ({snapshot_id[:8]})"
        try:
            for path, blob_id in referenced(repo, record):
                uses[blob_id].append((label, path or "<directory tree>"))
        except (IntegrityError, StoreError) as e:
            result.damaged.setdefault(label, {})["<file tree>"] = f"cannot be read: {e}"
    packs: dict[str, list[PackedBlob]] = defaultdict(list)
    for blob_id, users in uses.items():
        found = repo.index.get(blob_id)
        if found is None:
            for label, path in users:
                result.damaged.setdefault(label, {})[path] = f"chunk {blob_id.hex()[:16]} is not in the index"
            continue
        packs[found[0]].append(found[1])
    result.blobs, result.packs = len(uses), len(packs)
    total, done = sum(b.length for blobs in packs.values() for b in blobs), 0
    with ThreadPoolExecutor(threads, thread_name_prefix="ferry-verify") as pool:
        for bad, size in pool.map(lambda item: _check_pack(repo, *item), packs.items()):
            if stop is not None and stop.is_set():
                raise InterruptedError("verification interrupted")
            result.bytes_read += size
            done += size
            if progress:
                progress(done, total)
            for blob_id, reason in bad.items():
                for label, path in uses[blob_id]:
                    result.damaged.setdefault(label, {}).setdefault(path, reason)
    return result
