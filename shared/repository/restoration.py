"""Restore a snapshot's tree into a directory: whole (``restoring``) or as a delta over an older state
of it (``syncing``). Both engines run here under the same shared lock; this module sits above them so
neither imports the other."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from shared.repository.backing import ProgressFn
from shared.repository.errors import DamagedFiles, IntegrityError
from shared.repository.repo import Repository
from shared.repository.restoring import RestoreResult, _Restore, selected
from shared.repository.syncing import Delta


def restore(
    repo: Repository,
    snapshot_id: str,
    target: str | Path,
    *,
    allow_partial: bool = False,
    progress: ProgressFn | None = None,
    threads: int = 6,
    delta: bool = False,
    path: str = "",
) -> RestoreResult:
    """Write snapshot ``snapshot_id`` under ``target``; raise ``DamagedFiles`` unless ``allow_partial``.

    With ``delta``, ``target`` may hold an older state of the tree: only what differs is fetched and
    written, and what the snapshot does not have is removed (``syncing.py``). With ``path`` (relative
    to the snapshot's root, e.g. ``base/16``), only that file or directory is restored; nothing
    outside it is written or removed.
    """
    target = Path(target).absolute()
    with repo.lock(purpose="restore"):
        snapshot_id, record = repo.load_snapshot(snapshot_id, kind="tree")
        if record.kind != "tree":
            raise IntegrityError(f"snapshot {snapshot_id[:8]} holds a blob ({record.name}), not a file tree")
        target.mkdir(parents=True, exist_ok=True)
        job = Delta(repo, target, progress) if delta else _Restore(repo, target, progress)
        tree, where, rel, only = selected(repo, record.root, target, path)
        job.walk(tree, where, rel, only)
        job.prepare()
        plan = job.plan()
        with ThreadPoolExecutor(threads, thread_name_prefix="ferry-restore") as pool:
            for _ in pool.map(lambda item: job.restore_pack(*item), plan.items()):
                pass
        job.finish()
    result = job.result(snapshot_id)
    # One line per reason (a target file system without xattrs would otherwise warn for every file).
    for why, (count, first) in sorted(job.xattr_failures.items()):
        result.warnings.append(f"{count} extended attribute(s) not restored: {why} (the first: {first})")
    if job.damaged and not allow_partial:
        raise DamagedFiles(job.damaged)
    return result
