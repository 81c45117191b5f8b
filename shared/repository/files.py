"""File-system helpers shared by backup and restore: sparse extents, reading them, placing chunks back.

A sparse file is stored as the concatenation of its *data* regions (found with ``SEEK_DATA`` /
``SEEK_HOLE``) plus the list of those regions; holes are neither read, chunked nor stored, so a 100 GiB
disk image holding 1 GiB of data costs 1 GiB to back up. Restore writes each region at its offset
and sets the file size, which recreates the holes.
"""

from __future__ import annotations

import errno
import os
import stat
from collections.abc import Iterator
from pathlib import Path
from typing import Protocol


class _Totals(Protocol):
    bytes_total: int
    files_total: int


def data_extents(fd: int, st: os.stat_result) -> list[tuple[int, int]] | None:
    """The (offset, length) data regions of a sparse file, or None for a dense (ordinary) file."""
    if st.st_size == 0 or st.st_blocks * 512 >= st.st_size:
        return None
    extents: list[tuple[int, int]] = []
    offset = 0
    try:
        while offset < st.st_size:
            start = os.lseek(fd, offset, os.SEEK_DATA)
            end = os.lseek(fd, start, os.SEEK_HOLE)
            extents.append((start, min(end, st.st_size) - start))
            offset = end
    except OSError:  # ENXIO: no data after offset
        pass
    finally:
        os.lseek(fd, 0, os.SEEK_SET)
    if extents == [(0, st.st_size)]:
        return None
    return extents


# Not kept: the SELinux label. The kubelet labels a volume for the pod that mounts it, with the target
# cluster's policy; a label from the source cluster would at best be replaced, at worst deny access.
SKIPPED_XATTRS = frozenset({"security.selinux"})
_UNSUPPORTED = (errno.ENOTSUP, errno.EOPNOTSUPP)


def read_xattrs(path: str) -> dict[str, bytes]:
    """The extended attributes of ``path`` itself (a symlink is not followed), POSIX ACLs among them
    (``system.posix_acl_access`` / ``_default``); {} where the file system has none."""
    try:
        names = os.listxattr(path, follow_symlinks=False)
    except OSError as e:
        if e.errno in _UNSUPPORTED:
            return {}
        raise
    found: dict[str, bytes] = {}
    for name in sorted(names):
        if name in SKIPPED_XATTRS:
            continue
        try:
            found[name] = os.getxattr(path, name, follow_symlinks=False)
        except OSError as e:
            if e.errno != errno.ENODATA:  # ENODATA: removed since it was listed
                raise
    return found


def write_xattrs(path: str, xattrs: dict[str, bytes]) -> list[tuple[str, OSError]]:
    """Make the extended attributes of ``path`` itself ``xattrs``: set each, and remove any other (a
    file restored over an older one keeps none of its ACLs), the SELinux label aside. Returns the
    (name, error) of each attribute that could not be set or removed."""
    failed: list[tuple[str, OSError]] = []
    try:
        present = os.listxattr(path, follow_symlinks=False)
    except OSError as e:
        if e.errno not in _UNSUPPORTED:
            failed.append(("(the list)", e))
        present = []
    for name in present:
        if name not in xattrs and name not in SKIPPED_XATTRS:
            try:
                os.removexattr(path, name, follow_symlinks=False)
            except OSError as e:
                failed.append((name, e))
    for name, value in xattrs.items():
        try:
            os.setxattr(path, name, value, follow_symlinks=False)
        except OSError as e:
            failed.append((name, e))
    return failed


class ExtentReader:
    """A ``readinto`` reader over a file descriptor, reading only the given data regions (or all)."""

    def __init__(self, fd: int, extents: list[tuple[int, int]] | None) -> None:
        self.fd = fd
        self.extents = list(extents) if extents is not None else None
        self.total = 0
        self._current = 0
        self._position = 0

    def readinto(self, buffer: memoryview) -> int:
        if self.extents is None:
            n = os.readv(self.fd, [buffer])
            self.total += n
            return n
        while self._current < len(self.extents):
            start, length = self.extents[self._current]
            left = length - self._position
            if left <= 0:
                self._current += 1
                self._position = 0
                continue
            n = os.preadv(self.fd, [buffer[: min(left, len(buffer))]], start + self._position)
            if n == 0:  # the file shrank under us
                self._current += 1
                self._position = 0
                continue
            self._position += n
            self.total += n
            return n
        return 0


def place(
    content_offset: int, length: int, extents: list[tuple[int, int]] | None
) -> Iterator[tuple[int, int, int]]:
    """Map a range of a file's stored content onto file offsets: yields (file offset, start, end)
    where start/end slice the chunk. Dense files map 1:1; sparse files map through their extents."""
    if extents is None:
        yield content_offset, 0, length
        return
    position = 0  # content offset where the current extent starts
    for start, size in extents:
        lo = max(content_offset, position)
        hi = min(content_offset + length, position + size)
        if lo < hi:
            yield start + (lo - position), lo - content_offset, hi - content_offset
        position += size
        if position >= content_offset + length:
            return


def scan_totals(source: Path, totals: _Totals) -> None:
    """Count regular files and their bytes (for progress ETA); runs beside the backup in a thread."""
    files = size = 0
    for directory, _dirs, names in os.walk(source):
        for name in names:
            try:
                st = os.lstat(os.path.join(directory, name))
            except OSError:
                continue
            if stat.S_ISREG(st.st_mode):
                files += 1
                size += st.st_size
    totals.files_total, totals.bytes_total = files, size
