"""Every claim of the snapshot, compared file by file with its volume snapshot where it lies.

For each claim the restore created, refreshed or kept, a mover Job mounts it *read-only* and runs
``ferry-mover verify <volume snapshot> /data``: every byte on the volume is read and hashed with the
repository's keyed hash along the snapshot's own chunk boundaries, and the tree is compared entry
by entry (presence, type, size, content, symlink target, mode). Nothing is written to any
repository — the earlier design backed the volume up again and deleted those records afterwards,
which raced other requests reading the same repository. The mover's JSON summary (the last line of
its log) carries the differences.

A kept claim is compared like the others: keeping the target's data is a choice, but a kept claim
that differs from the snapshot is reported as such ("kept by policy: 3 path(s) differ"), never OK.
A claim the restore could not fill is a problem with the restore's reason; it is not read.
"""

from __future__ import annotations

import asyncio

import msgspec

from shared.contracts.reports import VolumeAction, VolumeResult
from shared.runtime.moving import MOUNT, Movers


def _compared(volume: VolumeResult, said: dict[str, object]) -> VolumeResult:
    damaged = said.get("differences")
    damaged = {str(k): str(v) for k, v in damaged.items()} if isinstance(damaged, dict) else {}
    different = int(str(said.get("different", len(damaged))))
    files, size = int(str(said.get("files", 0))), int(str(said.get("bytes", 0)))
    reason = ""
    if different:
        reason = f"{different} path(s) differ from the snapshot"
        if volume.action is VolumeAction.KEPT:
            reason = f"kept by policy: {reason}"
    return VolumeResult(
        claim=volume.claim,
        snapshot=volume.snapshot,
        ok=not different,
        files=files,
        bytes=size,
        reason=reason,
        damaged=damaged,
        action=volume.action,
        different=different,
        path=volume.path,
    )


async def check_volume(movers: Movers, volume: VolumeResult) -> VolumeResult:
    if not volume.ok:
        why = volume.reason or "the restore did not fill it"
        return msgspec.structs.replace(volume, reason=f"not restored: {why}")
    namespace, _, claim = volume.claim.partition("/")
    args = ["verify", volume.snapshot, MOUNT, "--report"] + (["--path", volume.path] if volume.path else [])
    run = await movers.run(namespace, claim, args, "verify", read_only=True)
    if run.why:
        return msgspec.structs.replace(volume, ok=False, reason=f"could not read it back: {run.why}")
    if "different" not in run.summary:
        return msgspec.structs.replace(volume, ok=False, reason="the verify mover reported no comparison")
    return _compared(volume, run.summary)


async def check_volumes(movers: Movers, volumes: list[VolumeResult], parallel: int) -> list[VolumeResult]:
    gate = asyncio.Semaphore(max(1, parallel))

    async def one(volume: VolumeResult) -> VolumeResult:
        async with gate:
            return await check_volume(movers, volume)

    return list(await asyncio.gather(*(one(v) for v in volumes)))
