"""Back up and restore real trees: every byte, mode, mtime, link and hole must come back."""

from __future__ import annotations

import errno
import os
import random
import threading
from pathlib import Path

import pytest
from pyfastcdc import FastCDC

from shared.repository import (
    Progress,
    Repository,
    WrongKey,
    backing,
    backup,
    kdf,
    put_blob,
    read_blob,
    restore,
)
from shared.repository.checking import check
from shared.repository.files import ExtentReader
from shared.repository.walking import walk
from shared.store import ObjectStore, layout
from tests.repository.trees import OWNER, awkward_tree, describe, file_hashes, random_files
from tests.store.conftest import FAST_SCRYPT, PASSWORD


def test_an_awkward_tree_comes_back_identical(repo: Repository, tmp_path: Path) -> None:
    awkward_tree(tmp_path / "src")
    result = backup(repo, tmp_path / "src", name="data")
    assert result.snapshot.stats.warnings == []
    restore(repo, result.snapshot_id, tmp_path / "dst")
    assert describe(tmp_path / "dst") == describe(tmp_path / "src")
    if os.geteuid() == 0:
        for given_away in ("secret.key", "readonly-dir"):
            owner = (tmp_path / "dst" / given_away).stat()
            assert (owner.st_uid, owner.st_gid) == (OWNER, OWNER), f"{given_away} keeps its owner"
    restored = (tmp_path / "dst" / "sparse.img").stat()
    assert restored.st_size == 20 * 1024 * 1024
    assert restored.st_blocks * 512 < 1024 * 1024, "the holes of a sparse file must stay holes"
    disk = (tmp_path / "dst" / "disk.img").stat()
    assert disk.st_size == 40 * 1024 * 1024 and disk.st_blocks * 512 < 2 * 1024 * 1024
    links = tmp_path / "dst" / "links"
    assert (links / "hard-to-text").stat().st_ino == (tmp_path / "dst" / "text.txt").stat().st_ino
    assert (links / "second-hard").stat().st_nlink == 3


def test_a_second_backup_reads_and_stores_only_what_changed(repo: Repository, tmp_path: Path) -> None:
    random_files(tmp_path / "src", 20, 200_000)
    first = backup(repo, tmp_path / "src", name="vol")
    changed = tmp_path / "src" / "file-0007.bin"
    changed.write_bytes(os.urandom(200_000))
    (tmp_path / "src" / "new.txt").write_text("new file\n")
    second = backup(repo, tmp_path / "src", name="vol")
    stats = second.snapshot.stats
    assert second.snapshot.parent == first.snapshot_id
    assert stats.reused_files == 19
    assert stats.bytes_read == 200_000 + len("new file\n")
    assert 200_000 <= stats.new_bytes < 200_000 + 20_000  # the changed data plus two small trees
    restore(repo, second.snapshot_id, tmp_path / "dst")
    assert file_hashes(tmp_path / "dst") == file_hashes(tmp_path / "src")


def test_identical_files_are_stored_once(repo: Repository, tmp_path: Path) -> None:
    random_files(tmp_path / "a", 1, 500_000, seed=3)
    random_files(tmp_path / "b", 1, 500_000, seed=3)
    (tmp_path / "src").mkdir()
    os.rename(tmp_path / "a", tmp_path / "src" / "a")
    os.rename(tmp_path / "b", tmp_path / "src" / "b")
    result = backup(repo, tmp_path / "src")
    assert result.snapshot.stats.bytes == 1_000_000
    assert result.snapshot.stats.new_bytes < 520_000


def test_a_file_growing_while_read_is_stored_as_read_and_reported(repo: Repository, tmp_path: Path) -> None:
    src = tmp_path / "src"
    src.mkdir()
    log = src / "app.log"
    log.write_bytes(b"line\n" * 2_000_000)
    stop = threading.Event()

    def append() -> None:
        with open(log, "ab") as f:
            while not stop.is_set():
                f.write(b"more\n" * 1000)
                f.flush()

    writer = threading.Thread(target=append)
    writer.start()
    try:
        result = backup(repo, src)
    finally:
        stop.set()
        writer.join()
    assert any("changed while it was read" in w and "app.log" in w for w in result.snapshot.stats.warnings)
    restore(repo, result.snapshot_id, tmp_path / "dst")
    restored = (tmp_path / "dst" / "app.log").read_bytes()
    assert len(restored) >= 10_000_000
    assert log.read_bytes().startswith(restored)
    again = backup(repo, src)
    assert again.snapshot.stats.bytes_read > 0, "a file changed during the last backup is read again"


def test_a_small_file_growing_after_it_was_listed_is_stored_as_read_and_reported(
    repo: Repository, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A file of one chunk is read with one call of the size it was listed with; the change shows."""
    src = tmp_path / "src"
    src.mkdir()
    small = src / "small.log"
    small.write_bytes(b"first\n" * 1000)
    real_readv = os.readv

    def readv(fd: int, buffers: list[memoryview]) -> int:  # the file grows just before it is read
        if os.readlink(f"/proc/self/fd/{fd}") == str(small) and small.stat().st_size == 6000:
            with open(small, "ab") as f:
                f.write(b"appended\n")
        return real_readv(fd, buffers)

    monkeypatch.setattr(os, "readv", readv)
    result = backup(repo, src)
    monkeypatch.undo()
    assert any("changed while it was read" in w and "small.log" in w for w in result.snapshot.stats.warnings)
    restore(repo, result.snapshot_id, tmp_path / "dst")
    restored = (tmp_path / "dst" / "small.log").read_bytes()
    assert restored.startswith(b"first\n" * 1000) and small.read_bytes().startswith(restored)
    again = backup(repo, src)
    assert again.snapshot.stats.bytes_read == small.stat().st_size, "read again, whole"
    restore(repo, again.snapshot_id, tmp_path / "again")
    assert (tmp_path / "again" / "small.log").read_bytes() == small.read_bytes()


def test_a_wrong_password_is_a_clear_error_and_writes_nothing(repo: Repository, store: ObjectStore) -> None:
    before = sorted(info.key for info in store.list(""))
    with pytest.raises(WrongKey, match="wrong password or key file"):
        Repository.open(store, b"not the password")
    assert sorted(info.key for info in store.list("")) == before


def test_scrypt_started_early_serves_only_its_own_password_and_key_object(
    repo: Repository, store: ObjectStore
) -> None:
    key = repo.key_file
    assert key is not None
    kdf.derive_early(b"not the password", key.salt, key.n, key.r, key.p)
    assert Repository.open(store, PASSWORD).key_id == repo.key_id
    kdf.derive_early(PASSWORD, key.salt, key.n, key.r, key.p)
    with pytest.raises(WrongKey):
        Repository.open(store, b"not the password")
    kdf.derive_early(PASSWORD, key.salt, key.n, key.r, key.p)
    kdf.derive_early(PASSWORD, bytes(32), key.n, key.r, key.p)  # a stale hint: no key object has it
    assert Repository.open(store, PASSWORD).key_id == repo.key_id


def test_rotating_the_key_rewraps_it_without_rewriting_data(
    repo: Repository, store: ObjectStore, tmp_path: Path
) -> None:
    random_files(tmp_path / "src", 3, 100_000)
    snap = backup(repo, tmp_path / "src").snapshot_id
    packs = sorted(info.key for info in store.list(layout.DATA))
    repo.rotate_key(b"new password", scrypt_n=FAST_SCRYPT)
    with pytest.raises(WrongKey):
        Repository.open(store, PASSWORD)
    reopened = Repository.open(store, b"new password")
    assert sorted(info.key for info in store.list(layout.DATA)) == packs
    restore(reopened, snap, tmp_path / "dst")
    assert file_hashes(tmp_path / "dst") == file_hashes(tmp_path / "src")


def test_a_manifests_blob_shares_the_group_of_its_volumes(repo: Repository, tmp_path: Path) -> None:
    random_files(tmp_path / "data", 2, 50_000)
    backup(repo, tmp_path / "data", name="data-0", group="snap-1", tags={"app": "shop"})
    archive = os.urandom(300_000) + b"kind: Secret\n" * 100
    blob_id = put_blob(repo, archive, name="manifests", group="snap-1", tags={"app": "shop"})
    assert read_blob(repo, blob_id) == archive
    assert sorted((r.kind, r.name) for _, r in repo.snapshots(group="snap-1")) == [
        ("blob", "manifests"),
        ("tree", "data-0"),
    ]
    stored = b"".join(repo.store.get(info.key) for info in repo.store.list(layout.DATA))
    assert b"kind: Secret" not in stored, "manifests (with Secrets) are encrypted like volume data"


def test_progress_counts_every_byte_and_file_both_ways(repo: Repository, tmp_path: Path) -> None:
    random_files(tmp_path / "src", 5, 600_000)
    (tmp_path / "src" / "empty").write_bytes(b"")
    seen: list[tuple[int, int, int, int]] = []

    def record(p: Progress) -> None:
        seen.append((p.bytes_done, p.bytes_total, p.files_done, p.files_total))

    snapshot_id = backup(repo, tmp_path / "src", progress=record).snapshot_id
    assert seen[-1] == (3_000_000, 3_000_000, 6, 6)
    seen.clear()
    restore(repo, snapshot_id, tmp_path / "dst", progress=record)
    assert seen[-1] == (3_000_000, 3_000_000, 6, 6)


def test_small_files_share_packs_instead_of_costing_an_object_each(
    repo: Repository, store: ObjectStore, tmp_path: Path
) -> None:
    rng = random.Random(5)
    for n in range(500):
        folder = tmp_path / "src" / f"dir-{n % 25:02d}"
        folder.mkdir(parents=True, exist_ok=True)
        (folder / f"small-{n:03d}.bin").write_bytes(rng.randbytes(rng.randint(1, 8192)))
    result = backup(repo, tmp_path / "src")
    assert result.snapshot.stats.files == 500
    packs = list(store.list(layout.DATA))
    stored = sum(info.size for info in packs)
    # ~2 MB of incompressible data in 1 MiB packs: two or three data packs, one of directory listings.
    assert len(packs) <= 5, f"500 small files cost {len(packs)} objects under {layout.DATA}"
    assert stored < 2 * sum(f.stat().st_size for f in (tmp_path / "src").rglob("*") if f.is_file())
    assert len(list(store.list(layout.INDEX))) <= 2
    restore(repo, result.snapshot_id, tmp_path / "dst")
    assert file_hashes(tmp_path / "dst") == file_hashes(tmp_path / "src")


SMALL_CHUNKS = (16 * 1024, 64 * 1024, 256 * 1024)  # min, average, max: many chunks in a few MB


def _small_blocks_repo(store: ObjectStore, monkeypatch: pytest.MonkeyPatch) -> Repository:
    """A repository with small chunks, backed up through 1 MiB read blocks: cuts cross blocks often."""
    monkeypatch.setattr(backing, "READ_BLOCK", 1024 * 1024)
    return Repository.init(store, PASSWORD, scrypt_n=FAST_SCRYPT, pack_size=1024 * 1024, chunker=SMALL_CHUNKS)


def _assert_cut_as_one_fastcdc_pass(repo: Repository, root: bytes, src: Path) -> None:
    full_pass = FastCDC(SMALL_CHUNKS[1], min_size=SMALL_CHUNKS[0], max_size=SMALL_CHUNKS[2])
    for path, node in walk(repo, root):
        cuts = (
            [chunk.length for chunk in full_pass.cut_buf(data)] if (data := (src / path).read_bytes()) else []
        )
        stored = [repo.index.get(chunk)[1].size for chunk in node.content]  # type: ignore[index]
        assert stored == cuts, f"{path}: chunk sizes {stored} != {cuts}"


def test_chunks_are_cut_as_a_streaming_chunker_cuts_them_across_read_blocks(
    store: ObjectStore, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Files share small read blocks and carry their uncut tail over: the cuts must not move."""
    repo = _small_blocks_repo(store, monkeypatch)
    rng = random.Random(5)
    src = tmp_path / "src"
    src.mkdir()
    sizes = {
        "a-empty": 0,
        "b-tiny": 10,
        "c-small": 12_000,
        "d-blocks": 3_500_000,
        "e-mid": 700_000,
        "f-big": 2_600_000,
        "g-min": SMALL_CHUNKS[0],  # the largest file read whole, as one chunk, with no cutting
        "h-min-plus": SMALL_CHUNKS[0] + 1,
        **{f"i-{n:02d}": 15_000 + n for n in range(90)},  # small files that fill more than one block
    }
    for name, size in sizes.items():
        (src / name).write_bytes(rng.randbytes(size // 2) + bytes(size - size // 2))
    result = backup(repo, src, name="cuts", threads=2)
    _assert_cut_as_one_fastcdc_pass(repo, result.snapshot.root, src)
    restore(repo, result.snapshot_id, tmp_path / "dst")
    assert file_hashes(tmp_path / "dst") == file_hashes(src)


def test_a_changed_file_is_hashed_against_its_parents_chunks_and_cut_only_where_it_changed(
    store: ObjectStore, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Rewritten in place, grown, shifted by an insertion, truncated: the chunks must be exactly those a
    full FastCDC pass cuts, yet only the changed regions go through the chunker and the workers."""
    repo = _small_blocks_repo(store, monkeypatch)
    rng = random.Random(9)
    src = tmp_path / "src"
    src.mkdir()
    original = rng.randbytes(4_000_000)
    (src / "db").write_bytes(original)
    (src / "shifted").write_bytes(original)
    (src / "truncated").write_bytes(original)
    first = backup(repo, src, name="vol")

    with open(src / "db", "r+b") as f:  # a page rewritten in the middle, then the file grows
        f.seek(2_000_000)
        f.write(rng.randbytes(8192))
        f.seek(0, os.SEEK_END)
        f.write(rng.randbytes(300_000))
    (src / "shifted").write_bytes(original[:1_000_000] + b"inserted" + original[1_000_000:])
    os.truncate(src / "truncated", 2_500_000)
    submitted: list[int] = []
    submit = backing._Backup._submit

    def counting(self: backing._Backup, data: memoryview, block: backing._Block) -> object:
        submitted.append(len(data))
        return submit(self, data, block)

    monkeypatch.setattr(backing._Backup, "_submit", counting)
    second = backup(repo, src, name="vol")

    assert second.snapshot.parent == first.snapshot_id
    _assert_cut_as_one_fastcdc_pass(repo, second.snapshot.root, src)
    # The files were read whole (10.8 MB), but only what surrounds the changes was cut and sent on:
    # the new page and the growth of db, the insertion in shifted (which never resynchronises with
    # the parent's offsets, so the rest of that file is cut as it would be without a parent), the
    # new last chunk of truncated.
    assert second.snapshot.stats.bytes_read == 4_300_000 + 4_000_008 + 2_500_000
    assert sum(submitted) < 1_000_000 + 3_000_008
    restore(repo, second.snapshot_id, tmp_path / "dst")
    assert file_hashes(tmp_path / "dst") == file_hashes(src)


def test_pages_rewritten_across_a_file_are_re_cut_from_small_reads_not_whole_blocks(
    store: ObjectStore, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A database touched in three pages: each re-cut reads a step or two (what a cut needs ahead of
    it), not a read block plus the next one read ahead, which read more than the whole file."""
    repo = _small_blocks_repo(store, monkeypatch)
    rng = random.Random(9)
    src = tmp_path / "src"
    src.mkdir()
    (src / "db").write_bytes(rng.randbytes(4_000_000))
    backup(repo, src, name="vol")
    with open(src / "db", "r+b") as f:
        for offset in (500_000, 2_000_000, 3_000_000):
            f.seek(offset)
            f.write(rng.randbytes(8192))
    read: list[int] = []
    readinto = ExtentReader.readinto

    def counting(self: ExtentReader, buffer: memoryview) -> int:
        read.append(readinto(self, buffer))
        return read[-1]

    monkeypatch.setattr(ExtentReader, "readinto", counting)
    second = backup(repo, src, name="vol")

    _assert_cut_as_one_fastcdc_pass(repo, second.snapshot.root, src)
    max_chunk = SMALL_CHUNKS[2]
    assert 0 < sum(read) <= 3 * 3 * max_chunk  # three regions; the old reads came to 5.7 MB
    restore(repo, second.snapshot_id, tmp_path / "dst")
    assert file_hashes(tmp_path / "dst") == file_hashes(src)


def test_a_read_error_in_the_middle_of_a_file_fails_the_backup_and_leaves_the_repository_sound(
    store: ObjectStore, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The reader thread's error reaches the backup (no hang, no half-written snapshot); a rerun works."""
    repo = _small_blocks_repo(store, monkeypatch)
    random_files(tmp_path / "src", 3, 3_000_000, seed=11)
    readinto = ExtentReader.readinto
    calls = 0

    def failing(self: ExtentReader, buffer: memoryview) -> int:
        nonlocal calls
        calls += 1
        if calls == 4:  # past the first block: in the reader thread, while a block is cut
            raise OSError(errno.EIO, "Input/output error")
        return readinto(self, buffer)

    monkeypatch.setattr(ExtentReader, "readinto", failing)
    with pytest.raises(OSError, match="Input/output error"):
        backup(repo, tmp_path / "src", name="vol")
    assert repo.snapshots() == []
    monkeypatch.setattr(ExtentReader, "readinto", readinto)
    assert check(repo).ok
    result = backup(repo, tmp_path / "src", name="vol")
    restore(repo, result.snapshot_id, tmp_path / "dst")
    assert file_hashes(tmp_path / "dst") == file_hashes(tmp_path / "src")
    assert check(repo, read_data=True).ok
