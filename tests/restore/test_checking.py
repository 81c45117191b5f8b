"""Volume verification inside the repository: a re-read volume compared with its snapshot, by path."""

from __future__ import annotations

import os
from pathlib import Path

from services.restore.checking import compare_trees
from shared.repository import Repository, backup, restore
from shared.store import LocalStore
from tests.repository.trees import random_files
from tests.store.conftest import FAST_SCRYPT, PASSWORD


def test_an_intact_restore_verifies_and_each_kind_of_damage_is_named(tmp_path: Path) -> None:
    repo = Repository.init(LocalStore(tmp_path / "repo"), PASSWORD, scrypt_n=FAST_SCRYPT, pack_size=1 << 20)
    source = tmp_path / "src"
    random_files(source, 6, 50_000)
    (source / "sub").mkdir()
    (source / "sub" / "note.txt").write_text("hello\n")
    os.symlink("sub/note.txt", source / "link")
    original = backup(repo, source, name="shop/data").snapshot_id

    volume = tmp_path / "volume"
    restore(repo, original, volume)
    (volume / "lost+found").mkdir()
    same = backup(repo, volume, name="verify", parent=None).snapshot_id
    files, size, problems = compare_trees(repo, original, same)
    assert (files, size, problems) == (7, 6 * 50_000 + 6, {})

    (volume / "file-0001.bin").write_bytes(b"x" * 50_000)  # same size, other content
    (volume / "file-0002.bin").unlink()
    (volume / "extra.txt").write_text("not in the snapshot")
    (volume / "sub" / "note.txt").chmod(0o600)
    (volume / "link").unlink()
    os.symlink("elsewhere", volume / "link")
    damaged = backup(repo, volume, name="verify", parent=None).snapshot_id
    _files, _size, problems = compare_trees(repo, original, damaged)
    assert set(problems) == {"file-0001.bin", "file-0002.bin", "extra.txt", "sub/note.txt", "link"}
    assert "content differs" in problems["file-0001.bin"]
    assert "missing" in problems["file-0002.bin"]
    assert "not in the snapshot" in problems["extra.txt"]
    assert "mode 600" in problems["sub/note.txt"]
    assert "points to 'elsewhere'" in problems["link"]
