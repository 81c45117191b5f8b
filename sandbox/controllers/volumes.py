"""Volume helpers shared by the storage, snapshot and kubelet controllers.

A sandbox volume is a plain directory: PVs provisioned by the local-path provisioner live under
``<data>/volumes/<pv-name>`` (also recorded in ``spec.csi.volumeAttributes.path``); snapshots live
under ``<data>/snapshots/<snapshotHandle>``. Copies keep symlinks as symlinks and run in a thread.
"""

from __future__ import annotations

import asyncio
import os
import re
import shutil
from pathlib import Path
from typing import Any

PROVISIONER = "sandbox.ferry.dev/local-path"
PATH_ATTRIBUTE = "path"

_UNITS: dict[str, float] = {
    "": 1,
    "k": 10**3,
    "M": 10**6,
    "G": 10**9,
    "T": 10**12,
    "P": 10**15,
    "Ki": 2**10,
    "Mi": 2**20,
    "Gi": 2**30,
    "Ti": 2**40,
    "Pi": 2**50,
    "m": 0.001,
}


def parse_quantity(value: Any) -> int:
    """A Kubernetes quantity ("1Gi", "500M", 1024) in bytes."""
    if isinstance(value, int | float):
        return int(value)
    m = re.fullmatch(r"\s*([0-9.]+)([a-zA-Z]*)\s*", str(value))
    if not m or m.group(2) not in _UNITS:
        raise ValueError(f"invalid quantity {value!r}")
    return int(float(m.group(1)) * _UNITS[m.group(2)])


def format_quantity(size: int) -> str:
    for unit in ("Pi", "Ti", "Gi", "Mi", "Ki"):
        if size and size % _UNITS[unit] == 0:
            return f"{size // int(_UNITS[unit])}{unit}"
    return str(size)


def pv_path(pv: dict[str, Any]) -> Path | None:
    """The directory behind a PV: ours (csi path attribute), or a hostPath/local PV made by hand."""
    spec = pv.get("spec") or {}
    csi = spec.get("csi") or {}
    path = (csi.get("volumeAttributes") or {}).get(PATH_ATTRIBUTE)
    path = path or (spec.get("hostPath") or {}).get("path") or (spec.get("local") or {}).get("path")
    return Path(path) if path else None


def _copy(src: Path, dst: Path) -> None:
    dst.mkdir(parents=True, exist_ok=True)
    if src.exists():
        shutil.copytree(src, dst, symlinks=True, dirs_exist_ok=True)


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
