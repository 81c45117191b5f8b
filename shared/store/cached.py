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
- each copy carries a BLAKE3 of its bytes. A damaged copy (a full disk, a crash mid-write) fails
  that check, is dropped and read again from the store;
- the cache only ever saves time. A directory that cannot be written is not an error.

Pack data is not cached (it is most of the repository), and neither are locks, keys or the config.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from pathlib import Path

import blake3

from shared.store import layout
from shared.store.base import ObjectInfo, ObjectStore

log = logging.getLogger("ferry.store")

CACHED = (layout.INDEX, layout.SNAPSHOTS)
_DIGEST = 32


class CachedStore:
    """``ObjectStore`` over ``inner``; index files and snapshot records also kept under ``directory``."""

    def __init__(self, inner: ObjectStore, directory: str | Path) -> None:
        self.inner = inner
        self.directory = Path(directory)

    @property
    def location(self) -> str:
        return self.inner.location

    def _path(self, key: str) -> Path | None:
        if not key.startswith(CACHED) or "/" in key.split("/", 1)[1] or key.endswith("/"):
            return None
        return self.directory / key

    def _keep(self, path: Path, data: bytes | bytearray | memoryview) -> None:
        try:
            path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
            partial = path.with_name(f".{path.name}.{os.getpid()}")
            with open(partial, "wb") as f:
                f.write(data)
                f.write(blake3.blake3(data).digest())
            partial.replace(path)
        except OSError as e:
            log.debug("cannot cache %s: %s", path, e)

    def _cached(self, path: Path) -> bytes | None:
        try:
            kept = path.read_bytes()
        except OSError:
            return None
        data, digest = kept[:-_DIGEST], kept[-_DIGEST:]
        if len(kept) < _DIGEST or blake3.blake3(data).digest() != digest:
            log.warning("dropping a damaged cached copy of %s", path.name)
            path.unlink(missing_ok=True)
            return None
        return data

    def put(self, key: str, data: bytes | bytearray | memoryview) -> None:
        self.inner.put(key, data)
        if (path := self._path(key)) is not None:
            self._keep(path, data)

    def get(self, key: str) -> bytes:
        path = self._path(key)
        if path is None:
            return self.inner.get(key)
        data = self._cached(path)
        if data is None:
            data = self.inner.get(key)
            self._keep(path, data)
        return data

    def get_range(self, key: str, offset: int, length: int) -> bytes:
        return self.inner.get_range(key, offset, length)

    def delete(self, key: str) -> None:
        self.inner.delete(key)
        if (path := self._path(key)) is not None:
            path.unlink(missing_ok=True)

    def list(self, prefix: str) -> Iterator[ObjectInfo]:
        listed = list(self.inner.list(prefix))
        if prefix in CACHED:  # drop the copies of what the store no longer has (forgotten, pruned)
            names = {layout.id_of(info.key) for info in listed}
            try:
                stale = [p for p in (self.directory / prefix).iterdir() if p.name not in names]
            except OSError:
                stale = []
            for path in stale:  # (with the partial copies of a writer that died)
                path.unlink(missing_ok=True)
        return iter(listed)

    def exists(self, key: str) -> bool:
        return self.inner.exists(key)

    def close(self) -> None:
        self.inner.close()
