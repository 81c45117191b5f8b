"""A repository in a local directory (one machine, a mounted volume, NFS): the same interface as S3.

Writes go to a temporary file in the destination directory, are fsync'ed, then renamed into place, so
that an object is either complete or absent. Big page-aligned buffers (the packer's pack buffers) are
written with ``O_DIRECT`` where the file system supports it, skipping the copy into the page cache — the same guarantee an S3 PUT gives, and the one the
repository relies on for crash consistency. OS errors are mapped onto Ferry's store errors.
"""

from __future__ import annotations

import ctypes
import errno
import os
import secrets
from collections.abc import Iterator
from pathlib import Path

from shared.memory import anonymous
from shared.store.base import ObjectInfo
from shared.store.errors import (
    AccessDenied,
    ObjectNotFound,
    PermanentStoreError,
    StoreError,
    TemporaryStoreError,
)

_TEMP_SUFFIX = ".ferry-tmp"
O_DIRECT = getattr(os, "O_DIRECT", 0)
BLOCK = 4096
DIRECT_ABOVE = 1024 * 1024


def _page_aligned(view: memoryview) -> bool:
    try:
        return ctypes.addressof(ctypes.c_char.from_buffer(view)) % BLOCK == 0
    except (TypeError, ValueError):  # read-only (bytes): cannot be aligned on purpose
        return False


def _write_all(fd: int, view: memoryview) -> None:
    while view:
        view = view[os.write(fd, view) :]


def _wrap(error: OSError, what: str, key: str) -> StoreError:
    if isinstance(error, FileNotFoundError):
        return ObjectNotFound(key)
    if isinstance(error, PermissionError):
        return AccessDenied(f"{what} {key}: {error}")
    if error.errno in (errno.ENOSPC, errno.EDQUOT, errno.EROFS):
        return PermanentStoreError(f"{what} {key}: {error.strerror}")
    return TemporaryStoreError(f"{what} {key}: {error}")


class LocalStore:
    """An ``ObjectStore`` whose objects are files under ``root`` (keys map to relative paths)."""

    def __init__(self, root: str | Path, *, fsync: bool = True) -> None:
        self.root = Path(root).absolute()
        self.fsync = fsync
        self._direct = O_DIRECT != 0
        self._made: set[Path] = set()

    @property
    def location(self) -> str:
        return str(self.root)

    def _path(self, key: str) -> Path:
        if key.startswith("/") or ".." in key.split("/"):
            raise PermanentStoreError(f"invalid object key: {key!r}")
        return self.root / key

    def create(self) -> None:
        try:
            self.root.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise _wrap(e, "create", str(self.root)) from e

    def put(self, key: str, data: bytes | bytearray | memoryview) -> None:
        path = self._path(key)
        temp = path.with_name(f".{path.name}.{secrets.token_hex(4)}{_TEMP_SUFFIX}")
        try:
            if path.parent not in self._made:
                path.parent.mkdir(parents=True, exist_ok=True)
                self._made.add(path.parent)
            view = memoryview(data).cast("B")
            if not (
                self._direct
                and len(view) >= DIRECT_ABOVE
                and _page_aligned(view)
                and self._put_direct(temp, view)
            ):
                fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
                try:
                    _write_all(fd, view)
                    if self.fsync:
                        os.fsync(fd)
                finally:
                    os.close(fd)
            os.replace(temp, path)
        except OSError as e:
            try:
                temp.unlink(missing_ok=True)
            except OSError:
                pass
            raise _wrap(e, "put", key) from e

    def _put_direct(self, temp: Path, view: memoryview) -> bool:
        """Write a page-aligned buffer with O_DIRECT: no copy into the page cache (packs are not read
        back soon, and copying them there was a third of a local backup's CPU). False if unsupported."""
        try:
            fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | O_DIRECT, 0o600)
        except OSError as e:
            if e.errno != errno.EINVAL:  # EINVAL: this file system has no O_DIRECT (tmpfs...)
                raise
            self._direct = False
            return False
        try:
            whole = len(view) - len(view) % BLOCK
            _write_all(fd, view[:whole])
            if whole < len(view):  # O_DIRECT writes whole blocks: pad the last one, then cut the file
                block = anonymous(BLOCK)
                block[: len(view) - whole] = view[whole:]
                _write_all(fd, memoryview(block))
                os.ftruncate(fd, len(view))
            if self.fsync:
                os.fsync(fd)
        finally:
            os.close(fd)
        return True

    def get(self, key: str) -> bytes:
        try:
            return self._path(key).read_bytes()
        except OSError as e:
            raise _wrap(e, "get", key) from e

    def get_range(self, key: str, offset: int, length: int) -> bytes:
        try:
            with self._path(key).open("rb") as f:
                f.seek(offset, os.SEEK_END if offset < 0 else os.SEEK_SET)
                data = f.read(length)
        except OSError as e:
            raise _wrap(e, "get", key) from e
        if len(data) != length:
            raise PermanentStoreError(f"get {key} [{offset}+{length}]: got {len(data)} bytes")
        return data

    def delete(self, key: str) -> None:
        try:
            self._path(key).unlink(missing_ok=True)
        except OSError as e:
            raise _wrap(e, "delete", key) from e

    def exists(self, key: str) -> bool:
        return self._path(key).is_file()

    def list(self, prefix: str) -> Iterator[ObjectInfo]:
        # Keys are listed by walking the directory that holds the prefix; temp files are skipped.
        base = prefix.rsplit("/", 1)[0] if "/" in prefix else ""
        start = self.root / base if base else self.root
        if not start.is_dir():
            return
        for directory, _dirs, files in os.walk(start):
            for name in files:
                if name.endswith(_TEMP_SUFFIX):
                    continue
                full = os.path.join(directory, name)
                key = os.path.relpath(full, self.root).replace(os.sep, "/")
                if key.startswith(prefix):
                    try:
                        yield ObjectInfo(key, os.stat(full).st_size)
                    except FileNotFoundError:
                        continue

    def close(self) -> None:
        pass
