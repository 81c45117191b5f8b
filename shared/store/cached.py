"""A local copy of a repository's write-once metadata (index files, snapshot records), as restic keeps.

Every open of a repository reads all its index files, and a backup that looks for its parent reads
all its snapshot records. Against S3 that is one GET each: a round trip, plus ~4 ms of botocore's
CPU that holds the GIL. A repository with a thousand snapshots pays for a thousand GETs per backup.
These objects are written once under random ids and later deleted, never rewritten. So a copy made
when they are written, or first read, stays valid for as long as the store lists them.

``CachedStore`` wraps a store and keeps such copies in a local directory:
- the store stays the authority. ``list`` asks it, and a cached copy no longer listed is dropped;
- the copies are the store's own bytes, encrypted as they are in the repository. Nothing is
  decrypted to disk;
- the copies live in a ``LocalStore`` (atomic writes, no fsync) and each carries a BLAKE3 of its
  bytes. A damaged copy (a full disk, a crash) fails that check, is dropped and read again from the
  store;
- the cache only ever saves time. A directory that cannot be written is not an error.

Pack data is not cached (it is most of the repository), and neither are locks, keys or the config.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path

import blake3

from shared.store import layout
from shared.store.base import ObjectInfo, ObjectStore
from shared.store.errors import StoreError
from shared.store.local import LocalStore

log = logging.getLogger("ferry.store")

CACHED = (layout.INDEX, layout.SNAPSHOTS)
_DIGEST = 32


def _cacheable(key: str) -> bool:
    kind, _, name = key.partition("/")
    return f"{kind}/" in CACHED and bool(name) and "/" not in name


class CachedStore:
    """``ObjectStore`` over ``inner``; index files and snapshot records also kept under ``directory``."""

    def __init__(self, inner: ObjectStore, directory: str | Path) -> None:
        self.inner = inner
        self.copies = LocalStore(directory, fsync=False)  # a lost copy is only read again

    @property
    def location(self) -> str:
        return self.inner.location

    def _keep(self, key: str, data: bytes | bytearray | memoryview) -> None:
        try:
            self.copies.put(key, bytes(data) + blake3.blake3(data).digest())
        except StoreError as e:
            log.debug("cannot cache %s: %s", key, e)

    def _cached(self, key: str) -> bytes | None:
        try:
            kept = self.copies.get(key)
        except StoreError:
            return None
        data, digest = kept[:-_DIGEST], kept[-_DIGEST:]
        if len(kept) < _DIGEST or blake3.blake3(data).digest() != digest:
            log.warning("dropping a damaged cached copy of %s", key)
            self._drop(key)
            return None
        return data

    def _drop(self, key: str) -> None:
        try:
            self.copies.delete(key)
        except StoreError as e:
            log.debug("cannot drop the cached copy of %s: %s", key, e)

    def put(self, key: str, data: bytes | bytearray | memoryview) -> None:
        self.inner.put(key, data)
        if _cacheable(key):
            self._keep(key, data)

    def get(self, key: str) -> bytes:
        if not _cacheable(key):
            return self.inner.get(key)
        data = self._cached(key)
        if data is None:
            data = self.inner.get(key)
            self._keep(key, data)
        return data

    def get_range(self, key: str, offset: int, length: int) -> bytes:
        return self.inner.get_range(key, offset, length)

    def delete(self, key: str) -> None:
        self.inner.delete(key)
        if _cacheable(key):
            self._drop(key)

    def list(self, prefix: str) -> Iterator[ObjectInfo]:
        listed = list(self.inner.list(prefix))
        if prefix in CACHED:  # drop the copies of what the store no longer has (forgotten, pruned)
            keys = {info.key for info in listed}
            for copy in list(self.copies.list(prefix)):
                if copy.key not in keys:
                    self._drop(copy.key)
        return iter(listed)

    def exists(self, key: str) -> bool:
        return self.inner.exists(key)

    def close(self) -> None:
        self.inner.close()
