"""Recovering packs an interrupted backup uploaded but did not get to index.

Packs are written whole (an S3 PUT or an atomic rename), so a pack found under ``data/`` is complete
even if its backup was killed before writing the index file naming it. Packs missing from the index
have their header read (two small range reads each) and are indexed, so the rerun of a killed
backup uploads nothing that already reached the store. A pack whose header does not authenticate is
left alone (``check`` reports it, ``prune`` removes it).

Finding them means listing every pack of the repository: a thousand LIST requests for a 15 TB one.
So a backup looks only when there is a reason to. A backup that ends, fails or is interrupted
indexes what it uploaded, then deletes its lock. One that was killed, or that could not write that
index, leaves its lock behind. The next backup finds packs to index only when it sees another lock
object, live or expired. ``ferry-mover unlock`` indexes them before it deletes expired locks.

Once they are indexed, the expired locks have done their job and are deleted
(``index_orphan_packs`` ends with it), so a killed process's lock does not stay for good: the next
backup, transfer or unlock that meets it cleans up after it. ``recovering_lock`` is a repository
lock that does so by itself when it meets an expired one.
"""

from __future__ import annotations

import logging
from concurrent.futures import ThreadPoolExecutor

from shared.repository.errors import IntegrityError
from shared.repository.formats import IndexedPack
from shared.repository.indexes import write_index
from shared.repository.locking import Lock, remove_expired
from shared.repository.packing import read_header
from shared.repository.repo import Repository
from shared.store import ObjectInfo, StoreError, layout

log = logging.getLogger("ferry.repository")


def unindexed_packs(repo: Repository) -> list[ObjectInfo]:
    index = repo.index
    return [info for info in repo.store.list(layout.DATA) if layout.id_of(info.key) not in index.packs]


def index_orphan_packs(repo: Repository, threads: int = 8) -> int:
    """Index every complete pack the index does not know, then delete expired locks (their holders'
    packs are indexed now); return how many packs were recovered."""
    recovered = _index_orphans(repo, threads)
    remove_expired(repo.store)
    return recovered


def recovering_lock(repo: Repository, *, purpose: str, exclusive: bool = False) -> Lock:
    """``repo.lock()`` that, meeting expired locks, indexes their holders' packs and deletes them."""
    return Lock(repo.store, exclusive=exclusive, purpose=purpose, recover=lambda: _index_orphans(repo))


def _index_orphans(repo: Repository, threads: int = 8) -> int:
    orphans = unindexed_packs(repo)
    if not orphans:
        return 0

    def header(info: ObjectInfo) -> IndexedPack | None:
        name = layout.id_of(info.key)
        try:
            return IndexedPack(name, info.size, read_header(repo.store, repo.cipher, name))
        except (IntegrityError, StoreError, ValueError) as e:
            log.warning("pack %s is not readable, leaving it to prune: %s", name, e)
            return None

    with ThreadPoolExecutor(threads, thread_name_prefix="ferry-recover") as pool:
        recovered = [pack for pack in pool.map(header, orphans) if pack is not None]
    if recovered:
        for pack in recovered:
            repo.index.add_pack(pack)
        repo.index.files.add(write_index(repo.store, repo.cipher, recovered))
        log.info("indexed %d pack(s) left by an interrupted backup", len(recovered))
    return len(recovered)
