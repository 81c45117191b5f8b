"""The local copy of index files and snapshot records: fewer requests, and the store stays the authority."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from pathlib import Path

from shared.repository import Policy, Repository, backup, forget, prune, restore
from shared.store import ObjectInfo, ObjectStore, layout
from shared.store.cached import CachedStore
from tests.repository.trees import file_hashes, random_files
from tests.store.conftest import FAST_SCRYPT, PASSWORD


class Counting:
    """A store that counts the GETs it serves, by kind of object."""

    def __init__(self, inner: ObjectStore) -> None:
        self.inner = inner
        self.gets: Counter[str] = Counter()

    @property
    def location(self) -> str:
        return self.inner.location

    def put(self, key: str, data: bytes | bytearray | memoryview) -> None:
        self.inner.put(key, data)

    def get(self, key: str) -> bytes:
        self.gets[key.split("/", 1)[0]] += 1
        return self.inner.get(key)

    def get_range(self, key: str, offset: int, length: int) -> bytes:
        return self.inner.get_range(key, offset, length)

    def delete(self, key: str) -> None:
        self.inner.delete(key)

    def list(self, prefix: str) -> Iterator[ObjectInfo]:
        return self.inner.list(prefix)

    def exists(self, key: str) -> bool:
        return self.inner.exists(key)

    def close(self) -> None:
        self.inner.close()


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

    counting = Counting(store)
    reopened = Repository.open(CachedStore(counting, cache), PASSWORD)
    listed = reopened.snapshots()
    blobs = len(reopened.index)
    assert counting.gets["index"] == 0 and counting.gets["snapshots"] == 0, counting.gets
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
