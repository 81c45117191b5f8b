"""Ferry's repository: content-addressed, deduplicated, compressed and encrypted snapshots of volumes.

The public API the services and ``ferry-mover`` use (all blocking; from async code call them with
``asyncio.to_thread``):

    store = open_store("s3://bucket/prefix", S3Settings(...))   # or open_store("/path")
    repo = Repository.init(store, passphrase)                    # or Repository.open(store, passphrase)
    result = backup(repo, "/data", name="data-0", group=ferry_snapshot_id, tags={"app": "shop"})
    restore(repo, result.snapshot_id, "/restore", allow_partial=False)
    blob_id = put_blob(repo, manifests_tar, name="manifests", group=ferry_snapshot_id)
    read_blob(repo, blob_id)
    repo.snapshots(group=ferry_snapshot_id)
    copy_group(source_repo, target_repo, ferry_snapshot_id)
    forget(repo, Policy(keep_last=3)); prune(repo); check(repo, read_data=True)

See docs/repository.md for the format, and each module's docstring for why it is built as it is.
"""

from shared.repository.backing import BackupResult, Progress, ProgressFn, backup
from shared.repository.blobs import put_blob, read_blob
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
from shared.repository.repo import Repository
from shared.repository.restoring import RestoreResult, restore

__all__ = [
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
