"""The in-memory index: blob id -> (pack, offset, length), loaded from and saved to ``index/`` objects.

An index file is only ever written *after* every pack it names has been fully uploaded, so the index
never points at a pack that is not there (the crash-consistency rule restic also follows). Index files
are small and many: a backup writes one every few packs, so an interrupted backup keeps the packs it
already indexed and a rerun does not upload them again. ``prune`` later merges them into one file and
lists the files it replaces in ``supersedes``.

The map is a plain dict of frozen, GC-free msgspec structs: about 150 bytes per 1 MiB chunk, i.e.
~150 MiB of RAM for a 1 TiB repository — the one part of memory that grows with repository size.
"""

from __future__ import annotations

import secrets
import threading
from collections.abc import Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor

from shared.repository.crypto import Cipher
from shared.repository.errors import IntegrityError
from shared.repository.formats import INDEX_DECODER, MSGPACK, IndexedPack, IndexFile, PackedBlob
from shared.store import ObjectStore, layout

INDEX_AAD = b"ferry-index-v1"


class Index:
    """Which pack holds each blob. Thread-safe for concurrent ``add_pack`` and lookups."""

    def __init__(self) -> None:
        self._blobs: dict[bytes, tuple[str, PackedBlob]] = {}
        self.packs: dict[str, IndexedPack] = {}
        self.files: set[str] = set()
        self._lock = threading.Lock()

    def __contains__(self, blob_id: bytes) -> bool:
        return blob_id in self._blobs

    def __len__(self) -> int:
        return len(self._blobs)

    def get(self, blob_id: bytes) -> tuple[str, PackedBlob] | None:
        return self._blobs.get(blob_id)

    def add_pack(self, pack: IndexedPack) -> None:
        with self._lock:
            self.packs[pack.id] = pack
            for blob in pack.blobs:
                self._blobs.setdefault(blob.id, (pack.id, blob))

    def blob_ids(self) -> Iterator[bytes]:
        return iter(list(self._blobs))

    def load(self, store: ObjectStore, cipher: Cipher, threads: int = 8) -> list[str]:
        """Read every index file; return the problems found (undecryptable files), not raise."""
        names = [layout.id_of(info.key) for info in store.list(layout.INDEX)]
        problems: list[str] = []
        loaded: dict[str, IndexFile] = {}

        def read(name: str) -> tuple[str, IndexFile | None, str]:
            try:
                raw = cipher.open_record(store.get(layout.index(name)), INDEX_AAD, f"index {name}")
                return name, INDEX_DECODER.decode(raw), ""
            except IntegrityError as e:
                return name, None, str(e)

        with ThreadPoolExecutor(threads, thread_name_prefix="ferry-index") as pool:
            for name, index_file, problem in pool.map(read, names):
                if index_file is None:
                    problems.append(problem)
                else:
                    loaded[name] = index_file
        superseded = {old for index_file in loaded.values() for old in index_file.supersedes}
        for name, index_file in loaded.items():
            if name in superseded:
                continue
            self.files.add(name)
            for pack in index_file.packs:
                self.add_pack(pack)
        return problems


def write_index(
    store: ObjectStore, cipher: Cipher, packs: Iterable[IndexedPack], supersedes: Iterable[str] = ()
) -> str:
    """Save one index file naming ``packs`` (all already stored); return its id."""
    name = secrets.token_hex(16)
    record = IndexFile(packs=list(packs), supersedes=sorted(supersedes))
    store.put(layout.index(name), cipher.seal_record(MSGPACK.encode(record), INDEX_AAD))
    return name
