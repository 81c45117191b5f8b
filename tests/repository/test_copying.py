"""Copying a Ferry snapshot between repositories (the transfer step): only what the target lacks."""

from __future__ import annotations

import os
from pathlib import Path

from shared.repository import Repository, backup, put_blob, read_blob, restore
from shared.repository.checking import check
from shared.repository.copying import COPIED_FROM, copy_group, copy_snapshot
from shared.store import LocalStore, ObjectStore
from tests.repository.trees import awkward_tree, describe, file_hashes, random_files
from tests.store.conftest import FAST_SCRYPT


def _target(tmp_path: Path, like: Repository | None) -> Repository:
    return Repository.init(
        LocalStore(tmp_path / "target"), b"target password", like=like, scrypt_n=FAST_SCRYPT
    )


def test_a_group_is_copied_whole_and_only_changed_chunks_travel_the_second_time(
    repo: Repository, tmp_path: Path
) -> None:
    awkward_tree(tmp_path / "src")
    first = backup(repo, tmp_path / "src", name="data-0", group="snap-1", tags={"app": "shop"})
    put_blob(
        repo, b"apiVersion: v1\nkind: Secret\n" * 50, name="manifests", group="snap-1", tags={"app": "shop"}
    )
    target = _target(tmp_path, like=repo)

    copied = copy_group(repo, target, "snap-1")
    assert sum(result.bytes_copied for result in copied) > 3_000_000
    records = {record.name: (sid, record) for sid, record in target.snapshots(group="snap-1")}
    assert set(records) == {"data-0", "manifests"}
    assert records["data-0"][1].tags[COPIED_FROM] == first.snapshot_id
    restore(target, records["data-0"][0], tmp_path / "dst")
    assert describe(tmp_path / "dst") == describe(tmp_path / "src")
    assert read_blob(target, records["manifests"][0]).startswith(b"apiVersion: v1")

    assert copy_snapshot(repo, target, first.snapshot_id).blobs_copied == 0, "copying again does nothing"
    (tmp_path / "src" / "new.bin").write_bytes(os.urandom(300_000))
    second = backup(repo, tmp_path / "src", name="data-0", group="snap-2", tags={"app": "shop"})
    again = copy_group(repo, target, "snap-2")
    assert 300_000 <= again[0].bytes_copied < 400_000, "only the new chunk and the changed trees are sent"
    restore(target, again[0].target_id, tmp_path / "dst2")
    assert file_hashes(tmp_path / "dst2") == file_hashes(tmp_path / "src")
    assert check(target, read_data=True).ok
    assert second.snapshot_id != again[0].target_id


def test_repositories_with_different_keys_get_re_hashed_copies(
    repo: Repository, store: ObjectStore, tmp_path: Path
) -> None:
    random_files(tmp_path / "src", 4, 300_000)
    snapshot_id = backup(repo, tmp_path / "src", name="vol").snapshot_id
    target = _target(tmp_path, like=None)
    result = copy_snapshot(repo, target, snapshot_id)
    assert result.blobs_copied >= 4
    restore(target, result.target_id, tmp_path / "dst")
    assert file_hashes(tmp_path / "dst") == file_hashes(tmp_path / "src")
    assert check(target, read_data=True).ok
    assert copy_snapshot(repo, target, snapshot_id).target_id == result.target_id
