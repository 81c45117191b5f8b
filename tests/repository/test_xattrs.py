"""Extended attributes (and so POSIX ACLs) travel with their files, directories and symlinks."""

from __future__ import annotations

import errno
import os
from pathlib import Path

import pytest

from shared.repository import Repository, backup, restore
from shared.repository.files import read_xattrs
from shared.repository.walking import walk


@pytest.fixture
def src(tmp_path: Path) -> Path:
    root = tmp_path / "src"
    (root / "conf").mkdir(parents=True)
    (root / "conf" / "app.yaml").write_text("replicas: 3\n")
    (root / "plain.txt").write_text("no attributes\n")
    (root / "link").symlink_to("plain.txt")
    try:
        os.setxattr(root / "conf" / "app.yaml", "user.checksum", b"sha256:1f2e")
    except OSError as e:
        if e.errno in (errno.ENOTSUP, errno.EOPNOTSUPP):
            pytest.skip(f"{tmp_path} has no user extended attributes")
        raise
    os.setxattr(root / "conf" / "app.yaml", "user.owner", "équipe-données".encode())
    os.setxattr(root / "conf", "user.backup", b"\x00\x01binary\xff")
    return root


def _attributes(root: Path) -> dict[str, dict[str, bytes]]:
    found = {}
    for path in sorted(root.rglob("*")):
        attributes = read_xattrs(str(path))
        if attributes:
            found[str(path.relative_to(root))] = attributes
    return found


def test_extended_attributes_are_restored_with_their_files(
    repo: Repository, src: Path, tmp_path: Path
) -> None:
    result = backup(repo, src, name="vol")
    restored = restore(repo, result.snapshot_id, tmp_path / "dst")

    expected = {
        "conf": {"user.backup": b"\x00\x01binary\xff"},
        "conf/app.yaml": {"user.checksum": b"sha256:1f2e", "user.owner": "équipe-données".encode()},
    }
    assert _attributes(src) == expected
    assert _attributes(tmp_path / "dst") == expected
    assert restored.warnings == []
    assert (tmp_path / "dst" / "link").readlink() == Path("plain.txt")


def test_a_restore_over_older_files_leaves_none_of_their_attributes(
    repo: Repository, src: Path, tmp_path: Path
) -> None:
    """An ACL or attribute left on the target by an older copy must not survive: it could grant
    access the snapshot did not."""
    result = backup(repo, src, name="vol")
    restore(repo, result.snapshot_id, tmp_path / "dst")
    os.setxattr(tmp_path / "dst" / "plain.txt", "user.stale", b"from an older copy")
    os.setxattr(tmp_path / "dst" / "conf" / "app.yaml", "user.stale", b"from an older copy")
    os.setxattr(tmp_path / "dst" / "conf", "user.backup", b"an older value")

    assert restore(repo, result.snapshot_id, tmp_path / "dst").warnings == []
    assert _attributes(tmp_path / "dst") == _attributes(src)


def test_an_attribute_changed_alone_is_in_the_next_snapshot_without_rereading_the_file(
    repo: Repository, src: Path, tmp_path: Path
) -> None:
    """setxattr changes ctime, not mtime: the content is reused, the attributes are read afresh."""
    backup(repo, src, name="vol")
    os.setxattr(src / "conf" / "app.yaml", "user.checksum", b"sha256:9a9a")
    os.removexattr(src / "conf", "user.backup")
    second = backup(repo, src, name="vol")

    assert second.snapshot.stats.reused_files == 2 and second.snapshot.stats.bytes_read == 0
    nodes = {path: node for path, node in walk(repo, second.snapshot.root)}
    assert nodes["conf/app.yaml"].xattrs["user.checksum"] == b"sha256:9a9a"
    assert nodes["conf"].xattrs == {}
    restore(repo, second.snapshot_id, tmp_path / "dst")
    assert _attributes(tmp_path / "dst") == _attributes(src)


def test_attributes_the_target_refuses_are_warned_about_once_per_reason(
    repo: Repository, src: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A target file system without xattrs: the files are whole, one warning says what was lost."""
    result = backup(repo, src, name="vol")

    def refuse(path: object, name: str, value: bytes, *, follow_symlinks: bool = True) -> None:
        raise OSError(errno.ENOTSUP, os.strerror(errno.ENOTSUP))

    monkeypatch.setattr(os, "setxattr", refuse)
    restored = restore(repo, result.snapshot_id, tmp_path / "dst")

    assert restored.damaged == {}
    assert restored.warnings == [
        f"3 extended attribute(s) not restored: {os.strerror(errno.ENOTSUP)} (the first: user.checksum of conf/app.yaml)"
    ]
    assert (tmp_path / "dst" / "conf" / "app.yaml").read_text() == "replicas: 3\n"
