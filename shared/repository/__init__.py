"""Ferry's repository: content-addressed, deduplicated, compressed and encrypted snapshots of volumes.

The public API the services and ``ferry-mover`` use (all blocking; from async code call them with
``asyncio.to_thread``):

    settings = RepositorySettings("s3://bucket/prefix", password, S3Settings(bucket="", endpoint=...))
    repo = open_repository(settings, create=True)                # or Repository.open(open_store(url), pw)
    result = backup(repo, "/data", name="data-0", group=ferry_snapshot_id, tags={"app": "shop"})
    restore(repo, result.snapshot_id, "/restore", allow_partial=False)
    blob_id = put_blob(repo, manifests_tar, name="manifests", group=ferry_snapshot_id)
    read_blob(repo, blob_id)
    repo.snapshots(group=ferry_snapshot_id)
    copy_group(source_repo, target_repo, ferry_snapshot_id)    # target made with like=source_repo
    forget(repo, Policy(keep_last=3)); prune(repo); check(repo, read_data=True)

See docs/repository.md for the format, and each module's docstring for why it is built as it is.
"""

from shared.repository.backing import BackupResult, Progress, ProgressFn, backup
from shared.repository.blobs import put_blob, read_blob
from shared.repository.checking import CheckReport, check
from shared.repository.copying import COPIED_FROM, CopyResult, copy_group, copy_snapshot
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
from shared.repository.formats import Node, Snapshot, SnapshotStats, Tree
from shared.repository.opening import RepositorySettings, open_repository
from shared.repository.pruning import ForgetResult, Policy, PruneResult, forget, prune
from shared.repository.repo import Repository
from shared.repository.restoring import RestoreResult, restore

__all__ = [
    "COPIED_FROM",
    "CheckReport",
    "CopyResult",
    "ForgetResult",
    "Policy",
    "PruneResult",
    "RepositorySettings",
    "check",
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
