"""``check``: prove the repository is whole, and say exactly what is not.

Without ``read_data`` it verifies structure: every index file decrypts, every indexed pack exists
with the indexed size, every snapshot's trees decrypt and every chunk they reference is indexed in a
pack that exists. With ``read_data`` it also downloads every pack, opens its sealed header and
compares it with the index, and decrypts and re-hashes every blob. Problems are reported per snapshot
and per file, because "pack 3fa2 is corrupt" helps nobody decide what to restore;
"shop/data-0: db/base/16384 is damaged" does.
"""

from __future__ import annotations

import struct
from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import msgspec

from shared.repository.errors import IntegrityError
from shared.repository.formats import PackedBlob
from shared.repository.indexes import Index
from shared.repository.packing import parse_pack
from shared.repository.repo import Repository
from shared.repository.walking import referenced
from shared.store import ObjectNotFound, StoreError, layout


@dataclass
class CheckReport:
    errors: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    packs: int = 0
    blobs: int = 0
    snapshots: int = 0
    bytes_read: int = 0

    @property
    def ok(self) -> bool:
        return not self.errors


def _read_pack(repo: Repository, index: Index, name: str) -> tuple[set[bytes], str, int]:
    """Download one pack, verify its header and every blob; return the bad blob ids and a problem."""
    pack = index.packs[name]
    try:
        data = repo.store.get(layout.pack(name))
    except (ObjectNotFound, StoreError) as e:
        return {blob.id for blob in pack.blobs}, f"pack {name[:16]} cannot be read: {e}", 0
    bad: set[bytes] = set()
    problem = _header_problem(repo, name, data, pack.blobs)
    view = memoryview(data)
    for blob in pack.blobs:
        try:
            repo.open_blob(blob, view[blob.offset : blob.offset + blob.length], name)
        except IntegrityError:
            bad.add(blob.id)
    if bad and not problem:
        problem = f"pack {name[:16]} is corrupt: {len(bad)} chunk(s) fail verification"
    return bad, problem, len(data)


def _header_problem(repo: Repository, name: str, data: bytes, indexed: list[PackedBlob]) -> str:
    """What is wrong with a pack's own header (it is what rebuilds a lost index), or ""."""
    try:
        header = parse_pack(repo.cipher, name, data)
    except (IntegrityError, struct.error, msgspec.DecodeError, ValueError):
        return f"pack {name[:16]} is corrupt: its header cannot be read"
    if sorted(header, key=_offset) != sorted(indexed, key=_offset):
        return f"pack {name[:16]} is corrupt: its header does not list the blobs its index entry does"
    return ""


def _offset(blob: PackedBlob) -> int:
    return blob.offset


def check(repo: Repository, *, read_data: bool = False, threads: int = 4) -> CheckReport:
    report = CheckReport()
    with repo.lock(purpose="check"):
        index = Index()
        report.errors += index.load(repo.store, repo.cipher)
        repo._index = index
        stored = {layout.id_of(info.key): info.size for info in repo.store.list(layout.DATA)}
        bad: dict[bytes, str] = {}
        for name, pack in index.packs.items():
            report.packs += 1
            report.blobs += len(pack.blobs)
            if name not in stored:
                problem = f"pack {name[:16]} is missing"
            elif stored[name] != pack.size:
                problem = f"pack {name[:16]} has {stored[name]} bytes, the index says {pack.size}"
            else:
                continue
            report.errors.append(problem)
            bad.update({blob.id: problem for blob in pack.blobs})
        for name in stored.keys() - index.packs.keys():
            report.warnings.append(
                f"pack {name[:16]} is not indexed (left by an interrupted backup; prune removes it)"
            )
        if read_data:
            readable = [
                name for name in index.packs if name in stored and stored[name] == index.packs[name].size
            ]
            with ThreadPoolExecutor(threads, thread_name_prefix="ferry-check") as pool:
                for ids, problem, size in pool.map(lambda name: _read_pack(repo, index, name), readable):
                    report.bytes_read += size
                    if problem:
                        report.errors.append(problem)
                        bad.update({blob_id: problem for blob_id in ids})
        for snapshot_id, record in repo.snapshots():
            report.snapshots += 1
            label = f"snapshot {snapshot_id[:8]} ({record.name})"
            damaged: dict[str, str] = defaultdict(str)
            try:
                for path, blob_id in referenced(repo, record):
                    if blob_id not in index:
                        damaged[path or "<tree>"] = f"chunk {blob_id.hex()[:16]} is not in the index"
                    elif blob_id in bad:
                        damaged[path or "<tree>"] = bad[blob_id]
            except (IntegrityError, StoreError) as e:
                report.errors.append(f"{label}: its file tree cannot be read: {e}")
                continue
            for path, reason in sorted(damaged.items()):
                report.errors.append(f"{label}: {path} is damaged: {reason}")
    return report
