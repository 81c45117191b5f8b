"""Ferry's repository: content-addressed, deduplicated, compressed and encrypted snapshots of volumes.

The public API the services and ``ferry-mover`` use (all blocking; from async code call them with
``asyncio.to_thread``):

    settings = RepositorySettings("s3://bucket/prefix", password, S3Settings(bucket="", endpoint=...))
    repo = open_repository(settings, create=True)                # or Repository.open(open_store(url), pw)
    result = backup(repo, "/data", name="data-0", group=ferry_snapshot_id, tags={"app": "shop"})
    restore(repo, result.snapshot_id, "/restore", allow_partial=False)
    restore(repo, result.snapshot_id, "/restore", delta=True)   # write only what differs, remove extras
    compare(repo, result.snapshot_id, "/restore").differences  # read-only proof, every byte hashed
    blob_id = put_blob(repo, manifests_tar, name="manifests", group=ferry_snapshot_id)
    read_blob(repo, blob_id)
    repo.snapshots(group=ferry_snapshot_id)
    copy_group(source_repo, target_repo, ferry_snapshot_id)    # target made with like=source_repo
    forget(repo, Policy(keep_last=3)); prune(repo); check(repo, read_data=True)

See docs/repository.md for the format, and each module's docstring for why it is built as it is.

The names below are imported on first use (PEP 562), so that a process pays only for what it runs:
``ferry-mover backup`` does not load restore, prune or check, and the errors (``errors.py``, loaded
with the package) cost nothing to import for whoever only maps them to exit codes.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from shared.lazy import lazy_names
from shared.repository.errors import (
    DamagedFiles,
    IntegrityError,
    RepositoryError,
    RepositoryExists,
    RepositoryLocked,
    RepositoryNotFound,
    SnapshotNotFound,
    WrongKey,
)

if TYPE_CHECKING:
    from shared.repository.backing import BackupResult, Progress, ProgressFn, backup
    from shared.repository.blobs import put_blob, read_blob
    from shared.repository.checking import CheckReport, check
    from shared.repository.comparing import Comparison, compare
    from shared.repository.copying import COPIED_FROM, CopyResult, copy_group, copy_snapshot
    from shared.repository.formats import Node, Snapshot, SnapshotStats, Tree
    from shared.repository.opening import RepositorySettings, open_repository
    from shared.repository.pruning import ForgetResult, Policy, PruneResult, forget, prune
    from shared.repository.repo import Repository
    from shared.repository.restoration import restore
    from shared.repository.restoring import RestoreResult

_MODULES = {
    "backing": ["BackupResult", "Progress", "ProgressFn", "backup"],
    "blobs": ["put_blob", "read_blob"],
    "checking": ["CheckReport", "check"],
    "comparing": ["Comparison", "compare"],
    "copying": ["COPIED_FROM", "CopyResult", "copy_group", "copy_snapshot"],
    "formats": ["Node", "Snapshot", "SnapshotStats", "Tree"],
    "opening": ["RepositorySettings", "open_repository"],
    "pruning": ["ForgetResult", "Policy", "PruneResult", "forget", "prune"],
    "repo": ["Repository"],
    "restoration": ["restore"],
    "restoring": ["RestoreResult"],
}
__getattr__ = lazy_names(__name__, _MODULES)


__all__ = [
    "COPIED_FROM",
    "CheckReport",
    "Comparison",
    "CopyResult",
    "ForgetResult",
    "Policy",
    "PruneResult",
    "RepositorySettings",
    "check",
    "compare",
    "copy_group",
    "copy_snapshot",
    "forget",
    "open_repository",
    "prune",
    "BackupResult",
    "DamagedFiles",
    "IntegrityError",
    "Node",
    "Progress",
    "ProgressFn",
    "Repository",
    "RepositoryError",
    "RepositoryExists",
    "RepositoryLocked",
    "RepositoryNotFound",
    "RestoreResult",
    "Snapshot",
    "SnapshotNotFound",
    "SnapshotStats",
    "Tree",
    "WrongKey",
    "backup",
    "put_blob",
    "read_blob",
    "restore",
]
