"""Proving a restored volume equals its snapshot, file by file, inside the repository.

The verify step's mover Job backs the restored volume up again into the same repository with
``--parent none``: every file is read and chunked afresh, with no size/mtime shortcut. Inside one
repository chunk ids are keyed hashes of content, so two files are equal exactly when their chunk-id
lists are equal — comparing the two trees proves the content without moving any data (the second
backup stores nothing but trees, deduplication sees to that).

Compared per path: presence, type, size, content, symlink target and permission bits. Ownership is
not compared (a restore not running as root cannot set it) and neither are times. ``lost+found`` at
the root of the restored volume is the filesystem's, not the application's.
"""

from __future__ import annotations

from shared.repository import Node, Repository
from shared.repository.walking import walk

IGNORED_ROOT_ENTRIES = {"lost+found"}


def _files(repo: Repository, snapshot_id: str) -> dict[str, Node]:
    _, record = repo.load_snapshot(snapshot_id)
    return {path: node for path, node in walk(repo, record.root)}


def compare_trees(repo: Repository, expected_id: str, actual_id: str) -> tuple[int, int, dict[str, str]]:
    """(files, bytes, differences by path) of the snapshot ``expected_id`` against ``actual_id``."""
    expected, actual = _files(repo, expected_id), _files(repo, actual_id)
    problems: dict[str, str] = {}
    files = total = 0
    for path, want in expected.items():
        if want.type == "file":
            files += 1
            total += want.size
        have = actual.get(path)
        if have is None:
            problems[path] = "missing from the restored volume"
        elif have.type != want.type:
            problems[path] = f"is a {have.type}, the snapshot has a {want.type}"
        elif want.type == "file" and (have.size != want.size or have.content != want.content):
            problems[path] = f"content differs ({have.size} bytes restored, {want.size} in the snapshot)"
        elif want.type == "symlink" and have.target != want.target:
            problems[path] = f"points to {have.target!r}, the snapshot to {want.target!r}"
        elif (have.mode & 0o7777) != (want.mode & 0o7777) and want.type != "symlink":
            problems[path] = f"mode {have.mode & 0o7777:o}, the snapshot has {want.mode & 0o7777:o}"
    for path in actual.keys() - expected.keys():
        if path.split("/", 1)[0] in IGNORED_ROOT_ENTRIES:
            continue
        problems[path] = "not in the snapshot (an extra file in the restored volume)"
    return files, total, problems


def forget_verification(repo: Repository, group: str) -> None:
    """Drop the records a verification wrote (their trees go with the next prune)."""
    for snapshot_id, _record in repo.snapshots(group=group):
        repo.delete_snapshot(snapshot_id)
