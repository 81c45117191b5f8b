"""Volume helpers shared by the storage, snapshot and kubelet controllers.

A sandbox volume is a plain directory: PVs provisioned by the local-path provisioner live under
``<data>/volumes/<pv-name>`` (also recorded in ``spec.csi.volumeAttributes.path``); snapshots live
under ``<data>/snapshots/<snapshotHandle>``. Copies run in a thread and behave as
``cp -a --sparse=always``: symlinks stay symlinks, hard links stay linked, holes (and zero blocks)
stay holes, modes and times are kept — a snapshot must not turn a sparse database file dense.
"""

from __future__ import annotations

import asyncio
import errno
import os
import shutil
from pathlib import Path
from typing import Any

from sandbox.server.quantities import quantity

PROVISIONER = "sandbox.ferry.dev/local-path"
PATH_ATTRIBUTE = "path"

_BINARY = {"Pi": 2**50, "Ti": 2**40, "Gi": 2**30, "Mi": 2**20, "Ki": 2**10}


def parse_quantity(value: Any) -> int:
    """A Kubernetes quantity ("1Gi", "500M", 1024) in bytes."""
    return int(quantity(value))


def format_quantity(size: int) -> str:
    for unit, factor in _BINARY.items():
        if size and size % factor == 0:
            return f"{size // factor}{unit}"
    return str(size)


def pv_path(pv: dict[str, Any]) -> Path | None:
    """The directory behind a PV: ours (csi path attribute), or a hostPath/local PV made by hand."""
    spec = pv.get("spec") or {}
    csi = spec.get("csi") or {}
    path = (csi.get("volumeAttributes") or {}).get(PATH_ATTRIBUTE)
    path = path or (spec.get("hostPath") or {}).get("path") or (spec.get("local") or {}).get("path")
    return Path(path) if path else None


def _copy(src: Path, dst: Path) -> None:
    """``cp -a --sparse=always``: symlinks kept, hard links kept linked, holes and zero blocks sparse."""
    dst.mkdir(parents=True, exist_ok=True)
    if not src.exists():
        return
    linked: dict[tuple[int, int], Path] = {}  # (device, inode) -> first copy of a multiply-linked file
    for root, dirs, files in os.walk(src):
        rel = Path(root).relative_to(src)
        target = dst / rel
        target.mkdir(parents=True, exist_ok=True)
        for name in dirs:
            if (Path(root) / name).is_symlink():
                files.append(name)  # os.walk lists a symlink to a directory as a directory
        for name in files:
            _copy_entry(Path(root) / name, target / name, linked)
        shutil.copystat(root, target, follow_symlinks=False)


def _copy_entry(src: Path, dst: Path, linked: dict[tuple[int, int], Path]) -> None:
    st = src.lstat()
    if dst.is_symlink() or dst.exists():
        dst.unlink()
    if src.is_symlink():
        os.symlink(os.readlink(src), dst)
        return
    if st.st_nlink > 1:
        first = linked.get((st.st_dev, st.st_ino))
        if first is not None:
            os.link(first, dst)
            return
        linked[(st.st_dev, st.st_ino)] = dst
    if not src.is_file():
        return  # sockets, fifos, devices: not data
    copy_sparse(src, dst)
    shutil.copystat(src, dst)


def copy_sparse(src: Path, dst: Path, block: int = 65536) -> None:
    """Copy a file's data extents only (SEEK_DATA/SEEK_HOLE), leaving holes for holes and zero blocks."""
    zeros = bytes(block)
    with src.open("rb") as fin, dst.open("wb") as fout:
        fd, size = fin.fileno(), os.fstat(fin.fileno()).st_size
        offset = 0
        while offset < size:
            try:
                start = os.lseek(fd, offset, os.SEEK_DATA)
                end = os.lseek(fd, start, os.SEEK_HOLE)
            except OSError as e:
                if e.errno == errno.ENXIO:
                    break  # only a hole remains
                start, end = offset, size  # no SEEK_DATA here: read everything, zeros still skipped
            pos = start
            while pos < end:
                chunk = os.pread(fd, min(block, end - pos), pos)
                if not chunk:
                    break
                if chunk != zeros[: len(chunk)]:
                    os.pwrite(fout.fileno(), chunk, pos)
                pos += len(chunk)
            offset = end
        fout.truncate(size)


async def copy_tree(src: Path, dst: Path) -> None:
    await asyncio.get_running_loop().run_in_executor(None, _copy, src, dst)


async def remove_tree(path: Path) -> None:
    await asyncio.get_running_loop().run_in_executor(None, lambda: shutil.rmtree(path, ignore_errors=True))


def tree_size(path: Path) -> int:
    total = 0
    for root, _dirs, files in os.walk(path):
        for f in files:
            p = Path(root) / f
            if not p.is_symlink():
                total += p.stat().st_size
    return total
