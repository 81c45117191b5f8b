"""Copying one Ferry snapshot (a group of records) between repositories: only what the target lacks.

Built on the repository's own parts (index, packer, walker) rather than on ``copy_group``, because
the transfer step needs four things a library call does not give: progress (bytes and objects, for
the request's events), a bandwidth limit, cancellation between packs, and a verified result.

- **What is sent.** Every blob the group's records need is looked up in the target index first; only
  the missing ones are read from the source — one ranged GET per source pack, a pool of ``threads``
  packs in flight — and packed into new target packs (uploads throttled to ``limit`` bytes/s).
- **Verified on the way.** Each blob read is decrypted (AES-GCM authenticates it), decompressed and
  re-hashed against its id before it is re-sealed with the target's key; a blob that fails stops
  the copy with the pack and chunk named.
- **Resumable.** Packs are indexed in the target as they are uploaded (an index file every few packs);
  an interrupted copy (cancellation, SIGTERM, a store error) indexes everything it uploaded before
  it stops, and the next attempt finds those blobs present and sends only the rest. A record is
  written only when all its data is in, tagged with the source record id, so a finished record is
  never copied twice. A hard crash (SIGKILL) loses at most the last unindexed packs (< 10 s), and
  leaves its locks to expire: the next transfer between the same repositories (``recovering_lock``)
  indexes those packs and deletes the expired locks.
- **Counted whole.** The stats cover the whole snapshot (``blobs_needed``, ``bytes_needed``), split
  into what the target already had (``*_present``: an earlier attempt or transfer sent it) and what
  this run sent (``*_sent``); a retry after an attempt that sent everything still says how big the
  copy is.
- **Keys.** With the same chunk-id key (``Repository.init(..., like=source)``) ids match and blobs are
  re-sealed without recompression. With different keys each chunk is re-encrypted *and* re-hashed
  with the target's key and the trees rewritten; every chunk of the group is then read from the
  source (ids cannot be compared), but only the ones the target lacks are stored. See README.md.

Everything here is blocking: the service runs it in a thread.
"""

from __future__ import annotations

import threading
from collections import defaultdict
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import msgspec

from shared.repository import IntegrityError, Repository, Snapshot, Tree
from shared.repository.copying import COPIED_FROM
from shared.repository.crypto import Cipher, blob_aad
from shared.repository.formats import TREE, PackedBlob
from shared.repository.packing import Packer
from shared.repository.recovering import recovering_lock
from shared.repository.walking import referenced
from shared.store import layout


class Interrupted(Exception):
    """The copy was asked to stop; what was uploaded is indexed and will not be sent again."""


@dataclass
class TransferStats:
    records: int = 0  # records of the group
    records_copied: int = 0
    records_present: int = 0  # already in the target from an earlier attempt
    blobs_needed: int = 0  # distinct blobs the group references (every record, copied or present)
    blobs_sent: int = 0  # blobs stored in the target by this run
    blobs_present: int = 0  # blobs the target already had
    bytes_needed: int = 0  # stored bytes (in the source) of every blob the group references
    bytes_present: int = 0  # stored bytes (in the source) of the blobs the target already had
    bytes_total: int = 0  # stored bytes of the blobs to read from the source
    bytes_read: int = 0
    bytes_sent: int = 0  # stored bytes written to the target by this run
    same_repository: bool = False
    same_keys: bool = True


ProgressFn = Callable[[TransferStats], None]


def _ranges(source: Repository, pack: str, blobs: list[PackedBlob]) -> Iterator[tuple[PackedBlob, bytes]]:
    blobs.sort(key=lambda b: b.offset)
    start, end = blobs[0].offset, blobs[-1].offset + blobs[-1].length
    data = memoryview(source.store.get_range(layout.pack(pack), start, end - start))
    for blob in blobs:
        yield blob, bytes(data[blob.offset - start : blob.offset - start + blob.length])


class GroupCopy:
    """One transfer of one group; ``run()`` once. Thread-safe counters, one packer."""

    def __init__(
        self,
        source: Repository,
        target: Repository,
        group: str,
        *,
        threads: int = 4,
        limit: float | None = None,
        progress: ProgressFn | None = None,
        stop: threading.Event | None = None,
    ) -> None:
        self.source, self.target, self.group = source, target, group
        self.threads, self.progress = threads, progress or (lambda _stats: None)
        self.stop = stop or threading.Event()
        self.stats = TransferStats()
        self.stats.same_keys = source.cipher.key.chunk_id == target.cipher.key.chunk_id
        self.packer = Packer(
            target.store, target.cipher, target.index, target.config.pack_size, limit_upload=limit
        )
        self.mapping: dict[bytes, bytes] = {}
        self._lock = threading.Lock()

    # -- data ------------------------------------------------------------------------------------
    def _copy_pack(self, pack: str, blobs: list[PackedBlob]) -> None:
        if self.stop.is_set():
            raise Interrupted("transfer interrupted")
        for blob, sealed in _ranges(self.source, pack, blobs):
            what = f"chunk {blob.id.hex()[:16]} in source pack {pack[:16]}"
            payload = self.source.cipher.open(sealed, blob_aad(blob.id, blob.type), what)
            plain = Cipher.decompress(payload, blob.size) if blob.zstd else payload
            if len(plain) != blob.size or self.source.cipher.chunk_id(plain) != blob.id:
                raise IntegrityError(f"{what} does not match its hash")
            sent = 0
            if self.stats.same_keys:
                if self.packer.claim(blob.id):
                    resealed = self.target.cipher.seal(payload, blob_aad(blob.id, blob.type))
                    self.packer.add_sealed(blob.id, blob.type, resealed, blob.size, blob.zstd)
                    sent = len(resealed)
            else:
                new_id = self.target.cipher.chunk_id(plain)
                with self._lock:
                    self.mapping[blob.id] = new_id
                before = self.packer.stats.stored_bytes
                if self.packer.add(new_id, blob.type, plain):
                    sent = max(1, self.packer.stats.stored_bytes - before)
            with self._lock:
                self.stats.bytes_read += blob.length
                if sent:
                    self.stats.blobs_sent += 1
                    self.stats.bytes_sent += sent
                else:
                    self.stats.blobs_present += 1
                    self.stats.bytes_present += blob.length
        self.progress(self.stats)

    def _source_blob(self, blob_id: bytes) -> tuple[str, PackedBlob]:
        found = self.source.index.get(blob_id)
        if found is None:
            raise IntegrityError(f"chunk {blob_id.hex()[:16]} is missing from the source repository")
        return found

    def _send(self, ids: list[bytes]) -> None:
        unique = list(dict.fromkeys(ids))
        self.stats.bytes_needed += sum(self._source_blob(i)[1].length for i in unique)
        wanted = [i for i in unique if not (self.stats.same_keys and i in self.target.index)]
        present = set(unique) - set(wanted)
        self.stats.blobs_present += len(present)
        self.stats.bytes_present += sum(self._source_blob(i)[1].length for i in present)
        packs: dict[str, list[PackedBlob]] = defaultdict(list)
        for blob_id in wanted:
            pack, blob = self._source_blob(blob_id)
            packs[pack].append(blob)
        self.stats.bytes_total += sum(b.length for blobs in packs.values() for b in blobs)
        self.progress(self.stats)
        with ThreadPoolExecutor(self.threads, thread_name_prefix="ferry-transfer") as pool:
            futures = [pool.submit(self._copy_pack, pack, blobs) for pack, blobs in packs.items()]
            try:
                for future in futures:
                    future.result()
            except BaseException:
                self.stop.set()
                for future in futures:
                    future.cancel()
                raise

    def _rewrite_tree(self, tree_id: bytes) -> bytes:
        tree = self.source.read_tree(tree_id)
        nodes = []
        for node in tree.nodes:
            changes: dict[str, object] = {"content": [self.mapping[c] for c in node.content]}
            if node.type == "dir" and node.subtree:
                changes["subtree"] = self._rewrite_tree(node.subtree)
            nodes.append(msgspec.structs.replace(node, **changes))
        new_id, data = self.target.encode_tree(Tree(nodes))
        self.packer.add(new_id, TREE, data)
        return new_id

    # -- records ---------------------------------------------------------------------------------
    def _needed(self, record: Snapshot) -> list[bytes]:
        needed = list(referenced(self.source, record))
        ids = [blob_id for _path, blob_id in needed]
        if not self.stats.same_keys:
            trees = {blob_id for path, blob_id in needed if path == "" and record.kind == "tree"}
            ids = [i for i in ids if i not in trees]
        self.stats.blobs_needed += len(set(ids))
        return ids

    def _count_present(self, record: Snapshot) -> None:
        """A record an earlier attempt (or transfer) copied: its blobs count as needed and present."""
        ids = set(self._needed(record))
        self.stats.blobs_present += len(ids)
        self.stats.bytes_needed += sum(self._source_blob(i)[1].length for i in ids)
        self.stats.bytes_present += sum(self._source_blob(i)[1].length for i in ids)

    def _record(self, snapshot_id: str, record: Snapshot) -> None:
        ids = self._needed(record)
        self._send(ids)
        copied = msgspec.structs.replace(record, tags={**record.tags, COPIED_FROM: snapshot_id})
        if not self.stats.same_keys:
            if record.kind == "tree":
                copied.root = self._rewrite_tree(record.root)
            else:
                copied.content = [self.mapping[c] for c in record.content]
        self.packer.flush()  # every blob of the record is uploaded and indexed before the record
        self.target.save_snapshot(copied)
        self.stats.records_copied += 1

    def run(self) -> TransferStats:
        records = self.source.snapshots(group=self.group)
        if not records:
            raise IntegrityError(f"no snapshot with group {self.group!r} in {self.source.store.location}")
        self.stats.records = len(records)
        if self.source.config.id == self.target.config.id:
            self.stats.same_repository = True
            self.stats.records_present = len(records)
            return self.stats
        with (
            recovering_lock(self.source, purpose="transfer (source)"),
            recovering_lock(self.target, purpose="transfer (target)"),
        ):
            present = {
                existing.tags.get(COPIED_FROM) for _id, existing in self.target.snapshots(group=self.group)
            }
            try:
                for snapshot_id, record in records:
                    if snapshot_id in present:
                        self.stats.records_present += 1
                        self._count_present(record)
                        continue
                    if self.stop.is_set():
                        raise Interrupted("transfer interrupted")
                    self._record(snapshot_id, record)
            except BaseException:
                self.packer.abort()  # index what was uploaded: the next attempt skips it
                raise
            finally:
                self.packer.close()
        self.progress(self.stats)
        return self.stats


def plan_group(source: Repository, target: Repository | None, group: str) -> TransferStats:
    """What a transfer of ``group`` would send (a dry run): nothing is written, nothing locked."""
    stats = TransferStats()
    records = source.snapshots(group=group)
    if not records:
        raise IntegrityError(f"no snapshot with group {group!r} in {source.store.location}")
    stats.records = len(records)
    if target is not None and source.config.id == target.config.id:
        stats.same_repository, stats.records_present = True, len(records)
        return stats
    stats.same_keys = target is not None and source.cipher.key.chunk_id == target.cipher.key.chunk_id
    present = {r.tags.get(COPIED_FROM) for _id, r in target.snapshots(group=group)} if target else set()
    wanted: set[bytes] = set()
    for snapshot_id, record in records:
        if snapshot_id in present:
            stats.records_present += 1
            continue
        ids = {blob_id for _path, blob_id in referenced(source, record)}
        stats.blobs_needed += len(ids)
        wanted |= {i for i in ids if not (stats.same_keys and target is not None and i in target.index)}
    stats.blobs_sent = len(wanted)  # would be sent (at most, when the keys differ)
    stats.blobs_present = stats.blobs_needed - stats.blobs_sent
    for blob_id in wanted:
        found = source.index.get(blob_id)
        stats.bytes_total += found[1].length if found else 0
    stats.bytes_sent = stats.bytes_total
    return stats


def transfer_group(source: Repository, target: Repository, group: str, **options: object) -> TransferStats:
    """Copy every record of ``group`` from ``source`` to ``target``; see ``GroupCopy``."""
    return GroupCopy(source, target, group, **options).run()  # type: ignore[arg-type]
