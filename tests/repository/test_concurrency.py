"""Locks, concurrent backups, interrupted backups, forget and prune."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import msgspec
import pytest

from shared.repository import Repository, RepositoryLocked, backup, restore
from shared.repository.checking import check
from shared.repository.locking import Lock
from shared.repository.pruning import Policy, forget, prune
from shared.store import ObjectStore, PermanentStoreError, layout
from tests.repository.trees import file_hashes, random_files
from tests.store.conftest import PASSWORD, Recording


def test_two_backups_at_once_both_restore(repo: Repository, tmp_path: Path) -> None:
    random_files(tmp_path / "a", 6, 300_000, seed=1)
    random_files(tmp_path / "b", 6, 300_000, seed=1)  # the same content: both race to store it
    (tmp_path / "b" / "extra").write_bytes(os.urandom(500_000))
    results: dict[str, str] = {}
    errors: list[BaseException] = []

    def run(name: str) -> None:
        try:
            results[name] = backup(repo, tmp_path / name, name=name).snapshot_id
        except BaseException as e:
            errors.append(e)

    threads = [threading.Thread(target=run, args=(name,)) for name in ("a", "b")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors
    reopened = Repository.open(repo.store, PASSWORD)
    for name in ("a", "b"):
        restore(reopened, results[name], tmp_path / f"dst-{name}")
        assert file_hashes(tmp_path / f"dst-{name}") == file_hashes(tmp_path / name)
    assert check(reopened, read_data=True).ok


def test_prune_waits_for_a_running_backup(repo: Repository) -> None:
    with repo.lock(purpose="backup data-0"), pytest.raises(RepositoryLocked, match="backup data-0"):
        prune(repo)


def test_a_lock_whose_holder_died_does_not_block(repo: Repository, store: ObjectStore) -> None:
    dead = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True, check=True
    )
    record = {
        "hostname": os.uname().nodename,
        "pid": int(dead.stdout),
        "exclusive": True,
        "time": datetime.now().timestamp(),
    }
    store.put(layout.lock("dead-holder"), msgspec.json.encode(record))
    with Lock(store, exclusive=True, purpose="prune"):
        pass
    silent = {**record, "hostname": "another-node", "time": datetime.now().timestamp() - 3600}
    store.put(layout.lock("silent-holder"), msgspec.json.encode(silent))
    with Lock(store, exclusive=True):
        pass
    alive = {**record, "hostname": "another-node"}
    store.put(layout.lock("live-holder"), msgspec.json.encode(alive))
    with pytest.raises(RepositoryLocked, match="another-node"):
        Lock(store, exclusive=False).acquire()


def _age(repo: Repository, snapshot_id: str, days: int) -> None:
    """Rewrite a snapshot record as if it had been taken ``days`` ago."""
    _, record = repo.load_snapshot(snapshot_id)
    record.time = (datetime.fromisoformat(record.time) - timedelta(days=days)).isoformat()
    repo.save_snapshot(record)
    repo.delete_snapshot(snapshot_id)


def test_forget_and_prune_keep_exactly_what_the_policy_says(
    repo: Repository, store: ObjectStore, tmp_path: Path
) -> None:
    contents = {}
    for generation in range(5):
        random_files(tmp_path / "src", 2, 300_000, seed=100 + generation)  # all new data each time
        backup(repo, tmp_path / "src", name="data-0", tags={"app": "shop"})
        contents[generation] = file_hashes(tmp_path / "src")
    random_files(tmp_path / "other", 1, 100_000)
    other = backup(repo, tmp_path / "other", name="other").snapshot_id
    ids = [sid for sid, _ in repo.snapshots(name="data-0")]
    for days, snapshot_id in zip([40, 30, 20, 2, 0], ids, strict=True):
        _age(repo, snapshot_id, days)

    result = forget(repo, Policy(keep_last=1, keep_within=timedelta(days=10)))
    assert len(result.removed) == 3
    kept = repo.snapshots(name="data-0")
    assert len(kept) == 2
    assert [sid for sid, _ in repo.snapshots(name="other")] == [other], (
        "another series keeps its own snapshots"
    )

    size_before = sum(info.size for info in store.list(layout.DATA))
    pruned = prune(repo)
    assert pruned.packs_deleted >= 3 and pruned.missing == []
    assert sum(info.size for info in store.list(layout.DATA)) < size_before - 1_500_000
    assert check(repo, read_data=True).ok
    for n, (snapshot_id, _) in enumerate(kept):
        restore(repo, snapshot_id, tmp_path / f"dst-{n}")
        assert file_hashes(tmp_path / f"dst-{n}") == contents[3 + n]


class _FailingAfter:
    """The real store, except that PUTs of packs fail after ``packs`` succeeded (a network cut)."""

    def __init__(self, store: ObjectStore, packs: int) -> None:
        self.store, self.left = store, packs

    def __getattr__(self, name: str) -> Any:
        return getattr(self.store, name)

    def put(self, key: str, data: bytes) -> None:
        if key.startswith(layout.DATA):
            if self.left <= 0:
                raise PermanentStoreError(f"put {key}: connection cut")
            self.left -= 1
        self.store.put(key, data)


class _CutWithIndex(_FailingAfter):
    """As ``_FailingAfter``, and the index of the packs that got through cannot be written either."""

    def put(self, key: str, data: bytes) -> None:
        if key.startswith(layout.INDEX) and self.left <= 0:
            raise PermanentStoreError(f"put {key}: connection cut")
        super().put(key, data)


@pytest.mark.parametrize(
    "cut, locks_left",
    [(_FailingAfter, 0), (_CutWithIndex, 1)],
    ids=["its index written", "its index lost too"],
)
def test_an_interrupted_backup_leaves_packs_the_next_one_reuses(
    repo: Repository, store: ObjectStore, tmp_path: Path, cut: type[_FailingAfter], locks_left: int
) -> None:
    """The failed backup indexes the packs it uploaded or, when it cannot, leaves its lock behind (to go
    stale), which tells the next backup to look for them."""
    random_files(tmp_path / "src", 10, 400_000)
    failing = Repository.open(cut(store, packs=2), PASSWORD)  # type: ignore[arg-type]
    with pytest.raises(PermanentStoreError, match="connection cut"):
        backup(failing, tmp_path / "src", upload_threads=1)
    assert repo.snapshots() == []
    assert len(list(store.list(layout.DATA))) == 2
    assert len(list(store.list(layout.LOCKS))) == locks_left
    assert check(Repository.open(store, PASSWORD)).ok, "the interrupted backup left the repository consistent"
    resumed = backup(Repository.open(store, PASSWORD), tmp_path / "src")
    assert resumed.snapshot.stats.new_bytes <= 4_000_000 - 2 * 1024 * 1024 + 100_000
    restore(repo, resumed.snapshot_id, tmp_path / "dst")
    assert file_hashes(tmp_path / "dst") == file_hashes(tmp_path / "src")


def test_backups_list_the_repository_packs_only_when_another_lock_is_there(
    repo: Repository, store: ObjectStore, tmp_path: Path
) -> None:
    """Looking for unindexed packs lists them all (a thousand requests for a big repository)."""
    listing = Recording(store)
    random_files(tmp_path / "src", 3, 100_000)
    for seed in (1, 2):
        backup(Repository.open(listing, PASSWORD), tmp_path / "src")  # type: ignore[arg-type]
        random_files(tmp_path / "src", 3, 100_000, seed=seed)
    assert layout.DATA not in listing.lists
    other = repo.lock(purpose="another backup").acquire()
    try:
        backup(Repository.open(listing, PASSWORD), tmp_path / "src")  # type: ignore[arg-type]
    finally:
        other.release()
    assert layout.DATA in listing.lists


def test_a_backup_whose_lock_could_not_be_refreshed_saves_no_snapshot(
    repo: Repository, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """If the lock went stale, a prune may have run: the snapshot would point at deleted data."""
    random_files(tmp_path / "src", 2, 10_000)
    monkeypatch.setattr(Lock, "acquire", _acquire_then_go_silent)
    with pytest.raises(RepositoryLocked, match="lost the repository lock"):
        backup(repo, tmp_path / "src")
    assert repo.snapshots() == []


_real_acquire = Lock.acquire


def _acquire_then_go_silent(self: Lock) -> Lock:
    _real_acquire(self)
    self._refreshed -= self.stale_after  # as if every refresh had failed since
    return self


# A process on another node (its hostname says so, so the same-host pid check cannot see it die)
# takes an exclusive lock with a 2 s lifetime, uploads packs it never indexes, and waits to be killed.
_HOLDER = """
import os, socket, sys, time
socket.gethostname = lambda: "node-b"
from shared.repository import Repository
from shared.repository.formats import DATA
from shared.repository.locking import Lock
from shared.repository.packing import Packer
from shared.store import LocalStore, layout
repo = Repository.open(LocalStore(sys.argv[1]), sys.argv[2].encode())
Lock(repo.store, exclusive=True, purpose="prune", stale_after=2.0).acquire()
packer = Packer(repo.store, repo.cipher, repo.index, 64 * 1024, upload_threads=1)
for _ in range(3):
    data = os.urandom(100_000)
    packer.add(repo.cipher.chunk_id(data), DATA, data)
while len(list(repo.store.list(layout.DATA))) < 2:
    time.sleep(0.05)
print("holding", flush=True)
time.sleep(600)
"""


def test_a_lock_left_by_a_killed_process_expires_and_the_next_operation_cleans_up(tmp_path: Path) -> None:
    from shared.repository.recovering import recovering_lock, unindexed_packs
    from shared.store import LocalStore

    store = LocalStore(tmp_path / "repo")
    Repository.init(store, PASSWORD, scrypt_n=2**10, pack_size=1024 * 1024)
    holder = subprocess.Popen(
        [sys.executable, "-c", _HOLDER, str(tmp_path / "repo"), PASSWORD.decode()],
        cwd=Path(__file__).resolve().parents[2],
        stdout=subprocess.PIPE,
    )
    assert holder.stdout is not None
    with holder, holder.stdout:
        try:
            assert holder.stdout.readline() == b"holding\n"
        finally:
            holder.kill()  # SIGKILL: no cleanup, the lock and the packs stay behind
    killed_at = time.monotonic()
    repo = Repository.open(store, PASSWORD)
    orphans = len(unindexed_packs(repo))
    assert orphans >= 2 and len(list(store.list(layout.LOCKS))) == 1

    with pytest.raises(RepositoryLocked, match="exclusive lock by node-b"):  # still within its lifetime
        recovering_lock(repo, purpose="backup").acquire()
    while time.monotonic() - killed_at < 2.5:  # its 2 s lifetime, counted from its last refresh
        time.sleep(0.1)

    with recovering_lock(repo, purpose="backup") as lock:  # no longer blocks, and is cleaned up
        assert lock.expired and lock.removed == 1
        assert [layout.id_of(info.key) for info in store.list(layout.LOCKS)] == [lock.id]
    assert list(store.list(layout.LOCKS)) == []
    reopened = Repository.open(store, PASSWORD)
    assert unindexed_packs(reopened) == [], "the dead holder's packs were not indexed"
    report = check(reopened, read_data=True)
    assert report.ok and not report.warnings, (report.errors, report.warnings)


def test_an_expired_lock_is_removed_by_the_next_backup_after_indexing_its_packs(
    repo: Repository, store: ObjectStore, tmp_path: Path
) -> None:
    """A backup meeting another lock indexes orphan packs, then deletes the expired locks only."""
    now = datetime.now().timestamp()
    dead = {"hostname": "node-b", "pid": 1, "exclusive": False, "time": now - 10, "expires": now - 5}
    alive = {**dead, "hostname": "node-c", "expires": now + 60}
    legacy = {k: v for k, v in dead.items() if k != "expires"} | {"time": now - 3600}  # an older release's
    for name, record in (("dead", dead), ("alive", alive), ("legacy", legacy)):
        store.put(layout.lock(name), msgspec.json.encode(record))
    random_files(tmp_path / "src", 2, 50_000)
    backup(repo, tmp_path / "src")
    assert sorted(layout.id_of(info.key) for info in store.list(layout.LOCKS)) == ["alive"]
