"""Fill an application's volumes with test data of a chosen size, directly in the PV directories.

Each Bound PVC of the namespace gets a share of the total, laid out the way real volumes look to a
backup tool: one large file, many small files in nested directories, compressible text,
incompressible random bytes, compressible binary, symlinks (relative, absolute-in-volume, dangling),
an empty file and an empty directory. The content is deterministic for a given seed, so two fills
with the same seed produce identical bytes (useful for restore checks).
"""

from __future__ import annotations

import asyncio
import os
import random
import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp

from sandbox.controllers.volumes import pv_path

_SIZE = re.compile(r"\s*([0-9.]+)\s*([kKmMgGtT]?)(i?)[bB]?\s*")
WORDS = (
    "ferry volume snapshot restore cluster namespace chunk repository manifest transfer order cart".split()
)


def parse_size(text: str | int) -> int:
    """``200MB``, ``1.5GiB``, ``512k``, ``1000`` -> bytes (decimal units, binary with ``i``)."""
    if isinstance(text, int):
        return text
    m = _SIZE.fullmatch(text)
    if not m:
        raise ValueError(f"invalid size {text!r}")
    power = " KMGT".index(m.group(2).upper() or " ")
    base = 1024 if m.group(3) else 1000
    return int(float(m.group(1)) * base**power)


@dataclass
class Filled:
    claim: str
    path: Path
    files: int
    bytes: int


def fill_directory(root: Path, size: int, seed: int = 0) -> tuple[int, int]:
    """Write about ``size`` bytes of varied files under ``root``; returns (files, bytes)."""
    rng = random.Random(seed)
    root.mkdir(parents=True, exist_ok=True)
    written, files = 0, 0

    def put(rel: str, data: bytes) -> None:
        nonlocal written, files
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        written += len(data)
        files += 1

    big = int(size * 0.4)
    put("large/blob.bin", rng.randbytes(big))  # incompressible
    put("empty.txt", b"")
    (root / "empty-dir").mkdir(exist_ok=True)
    biggest = max(4096, min(256 * 1024, size // 50))
    n = 0
    while written < size:
        remaining = size - written
        kind = n % 4
        chunk = min(remaining, rng.randint(1024, biggest) if kind != 3 else rng.randint(10, 4096))
        folder = f"data/{n % 7}/{n % 3}"
        if kind == 0:
            line = " ".join(rng.choice(WORDS) for _ in range(12)) + "\n"
            text = (line * (chunk // len(line) + 1))[:chunk]
            put(f"{folder}/notes-{n}.txt", text.encode())
        elif kind == 1:
            put(f"{folder}/random-{n}.bin", rng.randbytes(chunk))
        elif kind == 2:
            pattern = rng.randbytes(64)
            put(f"{folder}/table-{n}.dat", (pattern * (chunk // 64 + 1))[:chunk])
        else:
            put(f"{folder}/small-{n}.json", (f'{{"id": {n}, "pad": "' + "x" * chunk + '"}').encode()[:chunk])
        n += 1
    links = root / "links"
    links.mkdir(exist_ok=True)
    for name, target in (
        ("to-blob", "../large/blob.bin"),
        ("to-data-dir", "../data"),
        ("dangling", "../does-not-exist"),
    ):
        link = links / name
        if not link.is_symlink():
            os.symlink(target, link)
    return files, written


async def _get(session: aiohttp.ClientSession, url: str) -> Any:
    async with session.get(url) as resp:
        resp.raise_for_status()
        return await resp.json()


async def fill(
    server: str, namespace: str = "shop", size: int | str = "200MB", seed: int = 0, wait: float = 30.0
) -> list[Filled]:
    """Fill every Bound PVC of ``namespace`` (waiting up to ``wait`` s for them all to bind)."""
    total = parse_size(size)
    deadline = time.monotonic() + wait
    async with aiohttp.ClientSession() as session:
        while True:
            claims = (await _get(session, f"{server}/api/v1/namespaces/{namespace}/persistentvolumeclaims"))[
                "items"
            ]
            if claims and all((c.get("status") or {}).get("phase") == "Bound" for c in claims):
                break
            if time.monotonic() > deadline:
                raise TimeoutError(f"PVCs in {namespace} are not all Bound after {wait}s")
            await asyncio.sleep(0.1)
        targets = []
        for c in claims:
            pv = await _get(session, f"{server}/api/v1/persistentvolumes/{c['spec']['volumeName']}")
            path = pv_path(pv)
            if path is None:
                raise RuntimeError(f"PV {pv['metadata']['name']} has no local directory")
            targets.append((c["metadata"]["name"], path))
    share = total // len(targets)
    results = []
    for i, (claim, path) in enumerate(targets):
        files, written = await asyncio.to_thread(fill_directory, path, share, seed + i)
        results.append(Filled(claim, path, files, written))
    return results
