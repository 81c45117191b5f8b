"""A live tree against its snapshot: ``compare`` names each difference, delta restore undoes exactly them.

Local-directory repositories with small chunks (16-256 KiB), so that a few-MiB file has many chunks
and a delta restore of a 4 KiB change can be seen to write one chunk, not the file.
"""

from __future__ import annotations

import os
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from shared.repository import DamagedFiles, IntegrityError, Repository, backup, compare, restore
from shared.repository.comparing import EXTRA, MISSING
from shared.repository.walking import walk
from shared.store import LocalStore, layout
from tests.repository.trees import describe
from tests.store.conftest import FAST_SCRYPT, PASSWORD

CHUNKER = (16 * 1024, 64 * 1024, 256 * 1024)
BIG = 3 * 1024 * 1024
LOG = "a line of the application's log\n" * 200


@pytest.fixture
def local(tmp_path: Path) -> Repository:
    store = LocalStore(tmp_path / "repo")
    return Repository.init(store, PASSWORD, scrypt_n=FAST_SCRYPT, pack_size=1024 * 1024, chunker=CHUNKER)


def volume(root: Path) -> None:
    """A volume of every kind of entry a delta restore has to handle."""
    rng = random.Random(11)
    root.mkdir()
    (root / "big.bin").write_bytes(rng.randbytes(BIG))
    (root / "log.txt").write_text(LOG)
    (root / "gone.txt").write_text("deleted after the backup\n")
    (root / "becomes-dir.txt").write_text("a file, then a directory\n")
    (root / "run.sh").write_text("#!/bin/sh\n")
    (root / "run.sh").chmod(0o755)
    (root / "conf").mkdir()
    (root / "conf" / "app.yaml").write_text("replicas: 3\n")
    os.symlink("log.txt", root / "current")
    (root / "data.bin").write_bytes(rng.randbytes(200_000))
    os.link(root / "data.bin", root / "conf" / "data-link")
    with open(root / "sparse.img", "wb") as f:
        f.seek(2 * 1024 * 1024)
        f.write(rng.randbytes(100_000))
        f.truncate(8 * 1024 * 1024)


def rewrite_middle(root: Path) -> None:
    with open(root / "big.bin", "r+b") as f:
        f.seek(BIG // 2)
        f.write(os.urandom(4096))


def drift_behind_the_mtime(root: Path) -> None:
    st = (root / "big.bin").stat()
    rewrite_middle(root)
    os.utime(root / "big.bin", ns=(st.st_atime_ns, st.st_mtime_ns))


def write_into_a_hole(root: Path) -> None:
    with open(root / "sparse.img", "r+b") as f:
        f.seek(6 * 1024 * 1024)
        f.write(b"not a hole any more")


def break_the_hard_link(root: Path, content: bytes | None = None) -> None:
    link = root / "conf" / "data-link"
    data = link.read_bytes() if content is None else content
    link.unlink()
    link.write_bytes(data)


def to_dir(root: Path) -> None:
    (root / "becomes-dir.txt").unlink()
    (root / "becomes-dir.txt").mkdir()
    (root / "becomes-dir.txt" / "inside").write_text("x")


def extra_dir(root: Path) -> None:
    (root / "cache").mkdir()
    (root / "cache" / "a").write_text("a")
    (root / "cache" / "b").write_text("b")


def retarget(root: Path) -> None:
    (root / "current").unlink()
    os.symlink("gone.txt", root / "current")


@dataclass
class Case:
    change: Callable[[Path], None]
    differences: dict[str, str]
    written: int = 0  # files the delta restore writes
    removed: int = 0
    at_most: int | None = None  # bytes the delta restore may write
    fixed: bool = True  # whether the delta restore's quick check sees the change
    also: list[str] = field(default_factory=list)


CASES = {
    "bytes changed in the middle of a big file": Case(
        rewrite_middle,
        {"big.bin": f"content differs ({BIG} bytes restored, {BIG} in the snapshot)"},
        written=1,
        at_most=2 * CHUNKER[2],
    ),
    "a file appended to": Case(
        lambda root: (root / "log.txt").write_text(LOG + "one more line\n"),
        {"log.txt": f"content differs ({len(LOG) + 14} bytes restored, {len(LOG)} in the snapshot)"},
        written=1,
        at_most=0,  # its chunks are all there: it is only cut back
    ),
    "a file deleted": Case(lambda root: (root / "gone.txt").unlink(), {"gone.txt": MISSING}, written=1),
    "a file added": Case(lambda root: (root / "new.txt").write_text("new\n"), {"new.txt": EXTRA}, removed=1),
    "an extra directory": Case(extra_dir, {"cache": EXTRA}, removed=3),
    "a mode changed": Case(
        lambda root: (root / "run.sh").chmod(0o600), {"run.sh": "mode 600, the snapshot has 755"}, at_most=0
    ),
    "a symlink retargeted": Case(retarget, {"current": "points to 'gone.txt', the snapshot to 'log.txt'"}),
    "a file replaced by a directory": Case(
        to_dir, {"becomes-dir.txt": "is a dir, the snapshot has a file"}, written=1, removed=1
    ),
    "data written into a hole of a sparse file": Case(
        write_into_a_hole,
        {
            "sparse.img": f"content differs ({8 * 1024 * 1024} bytes restored, {8 * 1024 * 1024} in the snapshot)"
        },
        written=1,
    ),
    "a hard link broken into an equal copy": Case(break_the_hard_link, {}),
    "a hard link broken into another content": Case(
        lambda root: break_the_hard_link(root, b"other"),
        {"conf/data-link": "content differs (5 bytes restored, 200000 in the snapshot)"},
        written=1,  # conf/data-link is the snapshot's file (first in walk order), data.bin its link
    ),
    "lost+found at the root": Case(lambda root: (root / "lost+found").mkdir(), {}, also=["lost+found"]),
    "a file changed behind its forced-back mtime": Case(
        drift_behind_the_mtime,
        {"big.bin": f"content differs ({BIG} bytes restored, {BIG} in the snapshot)"},
        at_most=0,
        fixed=False,
    ),
}


@pytest.mark.parametrize("case", CASES.values(), ids=CASES.keys())
def test_compare_names_each_difference_and_a_delta_restore_undoes_it(
    local: Repository, tmp_path: Path, case: Case
) -> None:
    root = tmp_path / "vol"
    volume(root)
    snapshot_id = backup(local, root).snapshot_id
    before = describe(root)
    assert compare(local, snapshot_id, root).differences == {}, "a tree equals its own snapshot"

    case.change(root)
    found = compare(local, snapshot_id, root)
    assert found.differences == case.differences
    assert found.files == 8 and found.bytes == sum(
        node.size for _, node in walk(local, local.load_snapshot(snapshot_id)[1].root) if node.type == "file"
    )

    result = restore(local, snapshot_id, root, delta=True)
    assert (result.files_written, result.removed, result.damaged) == (case.written, case.removed, {})
    assert result.files_skipped == 8 - case.written and result.files == 8
    if case.at_most is not None:
        assert result.bytes_written <= case.at_most
    after = describe(root)
    for name in case.also:
        assert after.pop(name)[0] == "dir", f"{name} is left alone"
    if case.fixed:
        assert after == before, "bytes, modes, mtimes, links and extras as in the snapshot"
        assert compare(local, snapshot_id, root).differences == {}
    else:  # the quick check (size, mtime, mode) cannot see it: only compare can
        assert compare(local, snapshot_id, root).differences == case.differences
    again = restore(local, snapshot_id, root, delta=True)
    assert (again.files_written, again.bytes_written, again.removed) == (0, 0, 0)


def test_all_changes_at_once_then_a_second_delta_restore_writes_nothing(
    local: Repository, tmp_path: Path
) -> None:
    root = tmp_path / "vol"
    volume(root)
    snapshot_id = backup(local, root).snapshot_id
    before = describe(root)
    expected: dict[str, str] = {}
    for name, case in CASES.items():
        if case.fixed and "equal copy" not in name:
            case.change(root)
            expected |= case.differences
    assert compare(local, snapshot_id, root).differences == expected

    result = restore(local, snapshot_id, root, delta=True)
    # big.bin, log.txt, gone.txt, becomes-dir.txt, sparse.img, conf/data-link; new.txt, cache (3), inside
    assert (result.files_written, result.removed) == (6, 5)
    assert result.bytes_written < 3 * 1024 * 1024, "the big file's untouched chunks are not fetched"
    after = describe(root)
    after.pop("lost+found")
    assert after == before
    again = restore(local, snapshot_id, root, delta=True)
    assert (again.files_written, again.bytes_written, again.removed, again.files_skipped) == (0, 0, 0, 8)
    assert (root / "conf" / "data-link").stat().st_ino == (root / "data.bin").stat().st_ino


def test_a_one_region_change_fetches_one_chunk_not_the_file(local: Repository, tmp_path: Path) -> None:
    root = tmp_path / "vol"
    root.mkdir()
    (root / "db").write_bytes(random.Random(3).randbytes(1024 * 1024))
    snapshot_id = backup(local, root).snapshot_id
    original = (root / "db").read_bytes()
    with open(root / "db", "r+b") as f:
        f.seek(512 * 1024)
        f.write(b"\xff" * 4096)
    result = restore(local, snapshot_id, root, delta=True)
    assert (root / "db").read_bytes() == original
    assert result.files_written == 1 and 0 < result.bytes_written <= 2 * CHUNKER[2]
    assert result.bytes_written < len(original) // 4, "one or two chunks of about 64 KiB, not the file"


def _objects(root: Path) -> list[tuple[str, int, int]]:
    return sorted(
        (str(path.relative_to(root)), path.stat().st_size, path.stat().st_mtime_ns)
        for path in root.rglob("*")
        if path.is_file()
    )


def test_compare_writes_nothing_to_the_repository(local: Repository, tmp_path: Path) -> None:
    root = tmp_path / "vol"
    volume(root)
    snapshot_id = backup(local, root).snapshot_id
    rewrite_middle(root)
    stored = _objects(tmp_path / "repo")
    fresh = Repository.open(LocalStore(tmp_path / "repo"), PASSWORD)
    found = compare(fresh, snapshot_id, root)
    assert list(found.differences) == ["big.bin"]
    assert found.bytes_read >= found.bytes - 8 * 1024 * 1024 + 100_000, "every byte of every file is read"
    assert _objects(tmp_path / "repo") == stored, "no lock, no snapshot, no pack, no index"


def test_a_chunk_missing_from_the_index_is_a_difference_not_a_crash(
    local: Repository, tmp_path: Path
) -> None:
    root = tmp_path / "vol"
    volume(root)
    snapshot_id = backup(local, root).snapshot_id
    _, record = local.load_snapshot(snapshot_id)
    node = next(node for path, node in walk(local, record.root) if path == "log.txt")
    del local.index._blobs[node.content[0]]
    found = compare(local, snapshot_id, root)
    assert found.differences == {
        "log.txt": f"content cannot be proven: chunk {node.content[0].hex()[:16]} is not in the repository index"
    }


def test_a_damaged_pack_during_a_delta_restore_names_the_damaged_files(
    local: Repository, tmp_path: Path
) -> None:
    root = tmp_path / "vol"
    root.mkdir()
    rng = random.Random(5)
    for i in range(8):
        (root / f"file-{i}.bin").write_bytes(rng.randbytes(300_000))
    snapshot_id = backup(local, root).snapshot_id
    originals = {p.name: p.read_bytes() for p in root.iterdir()}
    _, record = local.load_snapshot(snapshot_id)
    first = next(node for path, node in walk(local, record.root) if path == "file-2.bin")
    found = local.index.get(first.content[0])
    assert found is not None
    pack = found[0]
    victims = {
        path
        for path, node in walk(local, record.root)
        if any((where := local.index.get(chunk)) is not None and where[0] == pack for chunk in node.content)
    }
    assert "file-2.bin" in victims and len(victims) < 8
    for name in ("file-2.bin", *sorted(victims), "file-7.bin"):
        (root / name).write_bytes(os.urandom(300_000))  # every one of them needs fetching
    LocalStore(tmp_path / "repo").delete(layout.pack(pack))

    with pytest.raises(DamagedFiles) as raised:
        restore(local, snapshot_id, root, delta=True)
    assert set(raised.value.damaged) == victims
    result = restore(local, snapshot_id, root, delta=True, allow_partial=True)
    assert set(result.damaged) == victims
    healthy = set(originals) - victims
    assert {name: (root / name).read_bytes() for name in healthy} == {
        name: originals[name] for name in healthy
    }


def test_a_delta_restore_into_an_empty_directory_is_a_full_restore(local: Repository, tmp_path: Path) -> None:
    volume(tmp_path / "src")
    snapshot_id = backup(local, tmp_path / "src").snapshot_id
    result = restore(local, snapshot_id, tmp_path / "dst", delta=True)
    assert describe(tmp_path / "dst") == describe(tmp_path / "src")
    assert (result.files_written, result.files_skipped, result.removed) == (8, 0, 0)
    restored = (tmp_path / "dst" / "sparse.img").stat()
    assert restored.st_blocks * 512 < 1024 * 1024, "holes stay holes"
    _, record = local.load_snapshot(snapshot_id)
    stored = sum(
        sum(n for _, n in node.extents) if node.extents is not None else node.size
        for _, node in walk(local, record.root)
        if node.type == "file"
    )
    assert result.bytes_written == stored
    plain = restore(local, snapshot_id, tmp_path / "plain")
    assert (plain.files_written, plain.bytes_written, plain.files_skipped) == (8, stored, 0)
    assert describe(tmp_path / "plain") == describe(tmp_path / "src")


@pytest.mark.parametrize(
    ("path", "delta"),
    [
        pytest.param("conf", False, id="a directory restored alone into an empty tree"),
        pytest.param("conf/app.yaml", False, id="a single file restored alone"),
        pytest.param("conf", True, id="a directory refreshed alone leaves what is beside it"),
    ],
)
def test_a_single_path_is_restored_and_compared_and_nothing_beside_it_is_touched(
    local: Repository, tmp_path: Path, path: str, delta: bool
) -> None:
    source = tmp_path / "src"
    volume(source)
    snapshot_id = backup(local, source, name="v").snapshot_id
    target = tmp_path / "dst"
    target.mkdir()
    (target / "mine.txt").write_text("the target's own file, outside the path\n")
    if delta:
        (target / "conf").mkdir()
        (target / "conf" / "app.yaml").write_text("replicas: 1\n")
        (target / "conf" / "stale.yaml").write_text("not in the snapshot\n")
    result = restore(local, snapshot_id, target, path=path, delta=delta)
    assert (target / "conf" / "app.yaml").read_text() == "replicas: 3\n"
    assert (target / "mine.txt").exists()  # beside the path: neither removed nor reported
    assert not (target / "big.bin").exists() and not (target / "conf" / "stale.yaml").exists()
    if path == "conf/app.yaml":
        assert sorted(p.name for p in (target / "conf").iterdir()) == ["app.yaml"]
        assert result.files == 1
    assert compare(local, snapshot_id, target, path=path).differences == {}
    assert "big.bin" in compare(local, snapshot_id, target).differences  # the whole tree does differ
    (target / "conf" / "app.yaml").write_text("replicas: 9\n")
    assert list(compare(local, snapshot_id, target, path=path).differences) == ["conf/app.yaml"]


def test_a_path_the_snapshot_does_not_have_is_an_error_naming_it(local: Repository, tmp_path: Path) -> None:
    source = tmp_path / "src"
    volume(source)
    snapshot_id = backup(local, source, name="v").snapshot_id
    with pytest.raises(IntegrityError, match="base/16 is not in the snapshot"):
        restore(local, snapshot_id, tmp_path / "dst", path="/base/16")
    with pytest.raises(IntegrityError, match="base/16 is not in the snapshot"):
        compare(local, snapshot_id, source, path="base/16")
