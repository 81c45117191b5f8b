"""Copying snapshots between repositories, sending only what the target lacks (the transfer step).

Two cases, decided by the repositories' chunk-id keys (docs/repository.md, "Transfer"):

- **Same chunk-id key** (the target was created with ``Repository.init(..., like=source)``): a chunk
  has the same id on both sides, so only ids missing from the target index are read from the source.
  Blobs are decrypted with the source key and re-sealed with the target's own encryption key without
  being decompressed (AES-GCM authenticates them on the way). Trees are copied the same way.
- **Different keys**: ids differ, so every chunk of the snapshot is read, decrypted, re-hashed with
  the target key and stored if the target lacks it; trees are rewritten with the new ids. Correct
  and still deduplicating on the target, but it reads the whole snapshot from the source.

Reads are grouped by source pack (one ranged GET per pack) and run in a pool. A copied record keeps
its group, name and tags and gains ``ferry.copied-from``; copying it again finds that record and does
nothing (an idempotent transfer step). Copying within one repository is a no-op.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import msgspec

from shared.repository.crypto import blob_aad
from shared.repository.errors import IntegrityError
from shared.repository.formats import TREE, PackedBlob, Snapshot, Tree
from shared.repository.packing import Packer
from shared.repository.repo import Repository
from shared.repository.walking import referenced
from shared.store import layout

COPIED_FROM = "ferry.copied-from"


@dataclass
class CopyResult:
    source_id: str
    target_id: str
    blobs_copied: int = 0
    bytes_copied: int = 0  # stored bytes written to the target
    blobs_skipped: int = 0


def _by_pack(repo: Repository, ids: list[bytes]) -> dict[str, list[PackedBlob]]:
    packs: dict[str, list[PackedBlob]] = defaultdict(list)
    for blob_id in ids:
        found = repo.index.get(blob_id)
        if found is None:
            raise IntegrityError(f"chunk {blob_id.hex()[:16]} is missing from the source repository")
        packs[found[0]].append(found[1])
    return packs


def _read(source: Repository, pack: str, blobs: list[PackedBlob]) -> Iterator[tuple[PackedBlob, bytes]]:
    """The sealed bytes of ``blobs`` from one pack, read with one ranged GET."""
    blobs.sort(key=lambda b: b.offset)
    start, end = blobs[0].offset, blobs[-1].offset + blobs[-1].length
    data = memoryview(source.store.get_range(layout.pack(pack), start, end - start))
    for blob in blobs:
        yield blob, bytes(data[blob.offset - start : blob.offset - start + blob.length])


class _Copy:
    def __init__(self, source: Repository, target: Repository, threads: int) -> None:
        self.source, self.target, self.threads = source, target, threads
        self.same_ids = source.cipher.key.chunk_id == target.cipher.key.chunk_id
        self.packer = Packer(target.store, target.cipher, target.index, target.config.pack_size)
        self.mapping: dict[bytes, bytes] = {}

    def transfer(self, ids: list[bytes]) -> None:
        """Make every blob of ``ids`` present in the target (mapping ids when the keys differ)."""
        wanted = [i for i in dict.fromkeys(ids) if not (self.same_ids and i in self.target.index)]

        def one_pack(item: tuple[str, list[PackedBlob]]) -> None:
            pack, blobs = item
            for blob, sealed in _read(self.source, pack, blobs):
                if self.same_ids:
                    if not self.packer.claim(blob.id):
                        continue
                    payload = self.source.cipher.open(
                        sealed, blob_aad(blob.id, blob.type), f"chunk {blob.id.hex()[:16]}"
                    )
                    resealed = self.target.cipher.seal(payload, blob_aad(blob.id, blob.type))
                    self.packer.add_sealed(blob.id, blob.type, resealed, blob.size, blob.zstd)
                else:
                    plain = self.source.open_blob(blob, sealed, pack)
                    new_id = self.target.cipher.chunk_id(plain)
                    self.mapping[blob.id] = new_id
                    self.packer.add(new_id, blob.type, plain)

        with ThreadPoolExecutor(self.threads, thread_name_prefix="ferry-copy") as pool:
            for _ in pool.map(one_pack, _by_pack(self.source, wanted).items()):
                pass

    def rewrite_tree(self, tree_id: bytes) -> bytes:
        """Different keys only: re-encode a tree (and its subtrees) with the target's chunk ids."""
        tree = self.source.read_tree(tree_id)
        nodes = []
        for node in tree.nodes:
            changes: dict[str, object] = {"content": [self.mapping[c] for c in node.content]}
            if node.type == "dir" and node.subtree:
                changes["subtree"] = self.rewrite_tree(node.subtree)
            nodes.append(msgspec.structs.replace(node, **changes))
        new_id, data = self.target.encode_tree(Tree(nodes))
        self.packer.add(new_id, TREE, data)
        return new_id

    def record(self, snapshot_id: str, record: Snapshot) -> CopyResult:
        needed = list(referenced(self.source, record))
        ids = [blob_id for _path, blob_id in needed]
        trees = {blob_id for path, blob_id in needed if path == "" and record.kind == "tree"}
        data_ids = [i for i in ids if i not in trees]
        before = self.packer.stats.new_chunks, self.packer.stats.stored_bytes
        self.transfer(data_ids if not self.same_ids else ids)
        copied = msgspec.structs.replace(record, tags={**record.tags, COPIED_FROM: snapshot_id})
        if not self.same_ids:
            if record.kind == "tree":
                copied.root = self.rewrite_tree(record.root)
            else:
                copied.content = [self.mapping[c] for c in record.content]
        self.packer.flush()
        target_id = self.target.save_snapshot(copied)
        new_chunks = self.packer.stats.new_chunks - before[0]
        stored = self.packer.stats.stored_bytes - before[1]
        return CopyResult(snapshot_id, target_id, new_chunks, stored, len(set(ids)) - new_chunks)


def copy_snapshot(
    source: Repository, target: Repository, snapshot_id: str, *, threads: int = 4
) -> CopyResult:
    """Copy one snapshot record from ``source`` to ``target``; idempotent."""
    snapshot_id, record = source.load_snapshot(snapshot_id)
    if source.config.id == target.config.id:
        return CopyResult(snapshot_id, snapshot_id)
    with source.lock(purpose="copy (source)"), target.lock(purpose="copy (target)"):
        for existing_id, existing in target.snapshots(group=record.group or None):
            if existing.tags.get(COPIED_FROM) == snapshot_id:
                return CopyResult(snapshot_id, existing_id)
        job = _Copy(source, target, threads)
        try:
            return job.record(snapshot_id, record)
        finally:
            job.packer.close()


def copy_group(source: Repository, target: Repository, group: str, *, threads: int = 4) -> list[CopyResult]:
    """Copy every record of one Ferry snapshot (its volumes and its manifests blob)."""
    records = source.snapshots(group=group)
    if not records:
        raise IntegrityError(f"no snapshot with group {group!r} in {source.store.location}")
    return [copy_snapshot(source, target, snapshot_id, threads=threads) for snapshot_id, _ in records]
