"""The local copy of index files and snapshot records: fewer requests, and the store stays the authority."""

from __future__ import annotations

from pathlib import Path

from shared.repository import Policy, Repository, backup, forget, prune, restore
from shared.store import ObjectStore, layout
from shared.store.cached import CachedStore
from tests.repository.trees import file_hashes, random_files
from tests.store.conftest import FAST_SCRYPT, PASSWORD, Recording


def _backups(repo: Repository, tmp_path: Path, count: int) -> list[str]:
    made = []
    for n in range(count):
        random_files(tmp_path / "src", 2, 30_000, seed=n)
        made.append(backup(repo, tmp_path / "src", name="vol").snapshot_id)
    return made


def test_a_reopened_repository_reads_its_index_and_snapshots_from_the_cache(
    store: ObjectStore, tmp_path: Path
) -> None:
    Repository.init(store, PASSWORD, scrypt_n=FAST_SCRYPT, pack_size=64 * 1024)
    cache = tmp_path / "cache"
    made = _backups(Repository.open(CachedStore(store, cache), PASSWORD), tmp_path, 3)

    recording = Recording(store)
    reopened = Repository.open(CachedStore(recording, cache), PASSWORD)  # type: ignore[arg-type]
    listed = reopened.snapshots()
    blobs = len(reopened.index)
    assert [key for key in recording.gets if key.startswith((layout.INDEX, layout.SNAPSHOTS))] == []
    plain = Repository.open(store, PASSWORD)
    assert [(i, s.root) for i, s in listed] == [(i, s.root) for i, s in plain.snapshots()]
    assert [i for i, _ in listed] == made and blobs == len(plain.index)

    restore(reopened, made[-1], tmp_path / "dst")
    assert file_hashes(tmp_path / "dst") == file_hashes(tmp_path / "src")


def test_the_store_stays_the_authority_over_its_cached_copies(store: ObjectStore, tmp_path: Path) -> None:
    """Forgotten and pruned objects leave the cache; a damaged copy is read again; no cache still works."""
    repo = Repository.init(store, PASSWORD, scrypt_n=FAST_SCRYPT, pack_size=64 * 1024)
    cache = tmp_path / "cache"
    made = _backups(Repository.open(CachedStore(store, cache), PASSWORD), tmp_path, 3)

    forget(repo, Policy(keep_last=1))  # by a process without the cache
    prune(repo)
    cached = Repository.open(CachedStore(store, cache), PASSWORD)
    assert [i for i, _ in cached.snapshots()] == made[-1:] and len(cached.index) == len(repo.index)
    assert sorted(p.name for p in (cache / "snapshots").iterdir()) == made[-1:]
    assert sorted(p.name for p in (cache / "index").iterdir()) == sorted(
        layout.id_of(info.key) for info in store.list(layout.INDEX)
    )

    [copy] = (cache / "snapshots").iterdir()
    damaged = bytearray(copy.read_bytes())
    damaged[len(damaged) // 2] ^= 0xFF
    copy.write_bytes(bytes(damaged))
    assert Repository.open(CachedStore(store, cache), PASSWORD).load_snapshot(made[-1])[0] == made[-1]
    assert copy.read_bytes() != bytes(damaged), "the damaged copy is replaced by the store's"

    blocked = tmp_path / "not-a-directory"
    blocked.write_text("")
    unwritable = Repository.open(CachedStore(store, blocked), PASSWORD)
    more = _backups(unwritable, tmp_path / "again", 1)
    assert [i for i, _ in unwritable.snapshots()] == made[-1:] + more
