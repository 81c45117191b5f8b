"""Packing: turn blobs into ~16 MiB pack objects, upload them in parallel, index them once stored.

A pack is ``blob || blob || ... || sealed header || u32 header length``; each blob is zstd-compressed
(when that pays) then sealed with AES-GCM; the header lists every blob's id, type, offset, lengths
and compression flag, so an index can be rebuilt from packs alone. Many small files therefore cost
one object per 16 MiB rather than one per file, and 16 MiB PUTs run about twice as fast as 4 MiB ones.

Memory and CPU, on purpose: a pack is assembled in a reused buffer from a small pool. A worker
reserves its blob's place in the open pack under a lock, then encrypts straight into it
(``encrypt_into``) outside the lock, so workers fill one pack concurrently and nothing is allocated
or copied per blob; the last writer of a full pack hands it to the upload pool (4 threads, I/O
bound). The pool holds ``upload_threads + 3`` buffers: when all are busy, workers wait — that is the
back-pressure that bounds memory whatever the volume size. A blob id is *claimed* before it is
sealed, so two threads (or a file repeated twice) never store the same chunk twice in one run.
"""

from __future__ import annotations

import logging
import mmap
import queue
import secrets
import struct
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from shared.memory import anonymous
from shared.repository.crypto import OVERHEAD, Cipher, blob_aad
from shared.repository.formats import HEADER_DECODER, MSGPACK, IndexedPack, PackedBlob
from shared.repository.indexes import Index, write_index
from shared.store import ObjectStore, layout

log = logging.getLogger("ferry.repository")
HEADER_AAD = b"ferry-pack-header-v1"
INDEX_EVERY_PACKS = 8
INDEX_EVERY_SECONDS = 10.0
SLACK = 5 * 1024 * 1024  # room past pack_size: the blob that fills a pack, and its header


@dataclass
class _OpenPack:
    buffer: mmap.mmap
    blobs: list[PackedBlob] = field(default_factory=list)
    size: int = 0
    writers: int = 0
    full: bool = False


@dataclass
class PackStats:
    new_chunks: int = 0
    new_bytes: int = 0
    stored_bytes: int = 0
    packs: int = 0


class Packer:
    """Collects sealed blobs into packs and uploads them; ``flush()`` waits until all are indexed."""

    def __init__(
        self,
        store: ObjectStore,
        cipher: Cipher,
        index: Index,
        pack_size: int,
        *,
        upload_threads: int = 4,
        limit_upload: float | None = None,
    ) -> None:
        self.store, self.cipher, self.index, self.pack_size = store, cipher, index, pack_size
        self.stats = PackStats()
        self._lock = threading.Lock()
        self._idle = threading.Condition(self._lock)
        self._claimed: set[bytes] = set()
        self._open: dict[int, _OpenPack] = {}
        self._outstanding = 0  # packs opened and not yet uploaded (or failed)
        self._pool = ThreadPoolExecutor(upload_threads, thread_name_prefix="ferry-upload")
        self._buffers: queue.LifoQueue[mmap.mmap] = queue.LifoQueue()
        self._buffers_left = upload_threads + 3
        self._unsaved: list[IndexedPack] = []
        self._index_lock = threading.Lock()
        self._last_index = time.monotonic()
        self._error: BaseException | None = None
        self._rate = limit_upload
        self._rate_next = time.monotonic()

    def raise_failure(self) -> None:
        """Raise the first upload failure, if any (producers call it to stop early)."""
        if self._error is not None:
            raise self._error

    def claim(self, blob_id: bytes) -> bool:
        """True if the caller must store this blob; False if it is stored or being stored already."""
        with self._lock:
            if blob_id in self._claimed or blob_id in self.index:
                return False
            self._claimed.add(blob_id)
            return True

    def add(self, blob_id: bytes, blob_type: int, plaintext: bytes | memoryview) -> bool:
        """Compress, encrypt and pack one blob unless the repository has it; True if it was new."""
        if not self.claim(blob_id):
            return False
        payload, compressed = self.cipher.compress(plaintext)
        pack, offset = self._reserve(blob_id, blob_type, len(payload) + OVERHEAD, len(plaintext), compressed)
        try:
            out = memoryview(pack.buffer)[offset : offset + len(payload) + OVERHEAD]
            self.cipher.seal_into(payload, blob_aad(blob_id, blob_type), out)
        finally:
            self._written(pack)
        return True

    def add_sealed(self, blob_id: bytes, blob_type: int, sealed: bytes, size: int, compressed: bool) -> None:
        """Pack an already sealed blob (the caller claimed it): copy, prune and repack use this."""
        pack, offset = self._reserve(blob_id, blob_type, len(sealed), size, compressed)
        try:
            pack.buffer[offset : offset + len(sealed)] = sealed
        finally:
            self._written(pack)

    def _buffer(self, needed: int) -> mmap.mmap:
        """A pack buffer: page-aligned anonymous memory, so a local store can write it with O_DIRECT."""
        if needed > self.pack_size + SLACK // 2:  # a huge tree blob: a buffer of its own
            return anonymous(needed + SLACK)
        try:
            return self._buffers.get_nowait()
        except queue.Empty:
            pass
        with self._lock:
            make = self._buffers_left > 0
            self._buffers_left -= 1 if make else 0
        return anonymous(self.pack_size + SLACK) if make else self._buffers.get()

    def _reserve(
        self, blob_id: bytes, blob_type: int, length: int, size: int, compressed: bool
    ) -> tuple[_OpenPack, int]:
        if self._error is not None:
            raise self._error
        spare: mmap.mmap | None = None
        while True:
            with self._lock:
                pack = self._open.get(blob_type)
                if pack is not None and pack.size + length > len(pack.buffer) - SLACK // 2 and pack.blobs:
                    pack.full = True  # does not fit: close this pack, open another
                    del self._open[blob_type]
                    self._seal_if_done(pack)
                    pack = None
                if pack is None and spare is not None:
                    pack = self._open[blob_type] = _OpenPack(spare)
                    self._outstanding += 1
                    spare = None
                if pack is not None:
                    offset = pack.size
                    pack.blobs.append(PackedBlob(blob_id, blob_type, offset, length, size, compressed))
                    pack.size += length
                    pack.writers += 1
                    self.stats.new_chunks += 1
                    self.stats.new_bytes += size
                    self.stats.stored_bytes += length
                    if pack.size >= self.pack_size:
                        pack.full = True
                        del self._open[blob_type]
                    break
            spare = self._buffer(length)  # may wait for an upload to finish: never under the lock
        if spare is not None and len(spare) == self.pack_size + SLACK:
            self._buffers.put(spare)
        return pack, offset

    def _written(self, pack: _OpenPack) -> None:
        with self._lock:
            pack.writers -= 1
            self._seal_if_done(pack)

    def _seal_if_done(self, pack: _OpenPack) -> None:
        """Under the lock: a full pack whose last writer is done goes to the upload pool."""
        if pack.full and pack.writers == 0:
            pack.writers = -1  # submitted once
            self._pool.submit(self._upload_one, pack)

    def _upload_one(self, pack: _OpenPack) -> None:
        error: BaseException | None = None
        try:
            self._upload(pack)
        except BaseException as e:  # recorded, raised to the producer by the next add or flush
            error = e
        with self._lock:
            if error is not None and self._error is None:
                self._error = error
            self._outstanding -= 1
            self._idle.notify_all()

    def _throttle(self, nbytes: int) -> None:
        if not self._rate:
            return
        with self._lock:
            now = time.monotonic()
            start = max(now, self._rate_next)
            self._rate_next = start + nbytes / self._rate
        time.sleep(max(0.0, self._rate_next - now))

    def _upload(self, pack: _OpenPack) -> None:
        try:
            header = self.cipher.seal_record(MSGPACK.encode(pack.blobs), HEADER_AAD)
            end = pack.size + len(header) + 4
            if end <= len(pack.buffer):
                pack.buffer[pack.size : end] = header + struct.pack("<I", len(header))
                data: bytes | memoryview = memoryview(pack.buffer)[:end]
            else:
                data = bytes(pack.buffer[: pack.size]) + header + struct.pack("<I", len(header))
            name = new_pack_name()
            self._throttle(len(data))
            self.store.put(layout.pack(name), data)
        finally:
            if len(pack.buffer) == self.pack_size + SLACK:
                self._buffers.put(pack.buffer)
        indexed = IndexedPack(name, len(data), pack.blobs)
        self.index.add_pack(indexed)
        with self._index_lock:
            self.stats.packs += 1
            self._unsaved.append(indexed)
            due = time.monotonic() - self._last_index > INDEX_EVERY_SECONDS
            if len(self._unsaved) >= INDEX_EVERY_PACKS or due:
                self._save_index()

    def _save_index(self) -> None:
        if self._unsaved:
            self.index.files.add(write_index(self.store, self.cipher, self._unsaved))
            self._unsaved = []
        self._last_index = time.monotonic()

    def flush(self) -> None:
        """Upload the partial packs, wait for every upload, and write the remaining index entries."""
        with self._lock:
            for pack in self._open.values():
                pack.full = True
                self._seal_if_done(pack)
            self._open.clear()
            while self._outstanding:
                self._idle.wait()
        if self._error is not None:
            raise self._error
        with self._index_lock:
            self._save_index()

    def abort(self) -> bool:
        """After a failure or an interrupt: drop the partial packs, but index what was uploaded.

        False when that index could not be written: the packs are then only found from their headers.
        """
        with self._lock:
            self._outstanding -= len(self._open)
            self._open.clear()
        self._pool.shutdown(wait=True, cancel_futures=True)
        with self._index_lock:
            try:
                self._save_index()
            except Exception as e:  # the packs stay recoverable from their headers
                log.warning("could not save the index of uploaded packs: %s", e)
                return False
        return True

    def close(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)


def new_pack_name() -> str:
    """A pack's name: 256 random bits.

    Not a hash of its bytes (as restic's SHA-256 names): hashing every pack again cost ~7% of a
    backup's CPU, and checked nothing that the AEAD does not already. Every blob and the header are
    sealed with AES-GCM, so ``check --read-data`` proves a pack whole by opening them all.
    """
    return secrets.token_hex(32)


def read_header(store: ObjectStore, cipher: Cipher, name: str, size: int | None = None) -> list[PackedBlob]:
    """The blob list of a stored pack, from its tail (two small range reads)."""
    (length,) = struct.unpack("<I", store.get_range(layout.pack(name), -4, 4))
    sealed = store.get_range(layout.pack(name), -(length + 4), length)
    return HEADER_DECODER.decode(cipher.open_record(sealed, HEADER_AAD, f"header of pack {name}"))


def parse_pack(cipher: Cipher, name: str, data: bytes) -> list[PackedBlob]:
    """The blob list of a pack already in memory (check --read-data, prune)."""
    (length,) = struct.unpack("<I", data[-4:])
    sealed = data[-(length + 4) : -4]
    return HEADER_DECODER.decode(cipher.open_record(sealed, HEADER_AAD, f"header of pack {name}"))
