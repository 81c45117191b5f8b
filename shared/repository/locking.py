"""Repository locks: many shared holders (backup, restore, copy, check) or one exclusive one (prune).

Object stores have no atomic compare-and-swap we can count on everywhere, so locks follow restic's
scheme: write ``locks/<id>``, then list the others; if a conflicting live lock exists, remove ours and
fail with ``RepositoryLocked`` (temporary: the Job retries). Two racing writers may both back off,
never both proceed.

Every lock carries an expiry (``expires``, unix time). Its holder pushes it forward from a daemon
thread every ``refresh`` seconds (a quarter of ``stale_after``, the lock's lifetime), so a live lock
never expires; a lock whose holder was killed expires ``stale_after`` seconds after its last refresh
— sooner when its process is visibly gone on this very host — and stops blocking from then on.
Nothing can refresh it again, so the next operation that meets it and may clean up after it removes
it: a lock acquired with a ``recover`` hook (``recovering.recovering_lock``: the transfer step;
``ferry-mover unlock``; a backup, through ``recovering.index_orphan_packs``) first indexes the packs
the dead holder uploaded and never indexed, then deletes the expired lock objects. A lock object
deleted while its holder was in fact alive (a long pause) is simply written again by its next refresh.
"""

from __future__ import annotations

import logging
import os
import secrets
import socket
import threading
import time
from collections.abc import Callable
from types import TracebackType

import msgspec

from shared.repository.errors import RepositoryLocked
from shared.store import ObjectNotFound, ObjectStore, StoreError, layout

log = logging.getLogger("ferry.repository")
LOCK_TTL = 120.0  # a lock not refreshed for this long has expired
STALE_AFTER = LOCK_TTL  # the former name
LEGACY_TTL = 300.0  # records written before locks carried ``expires``: their lifetime then


class LockRecord(msgspec.Struct, frozen=True):
    hostname: str
    pid: int
    exclusive: bool
    time: float  # last written (acquired or refreshed)
    purpose: str = ""
    expires: float = 0.0  # unix time after which the lock no longer counts; 0: time + LEGACY_TTL


_DECODER = msgspec.json.Decoder(LockRecord)


def expired(record: LockRecord, now: float | None = None) -> bool:
    """Has this lock expired (not refreshed in time), or is its process gone on this very host?"""
    now = time.time() if now is None else now
    if now > (record.expires or record.time + LEGACY_TTL):
        return True
    if record.hostname == socket.gethostname():
        try:
            os.kill(record.pid, 0)
        except ProcessLookupError:
            return True
        except PermissionError:
            return False
    return False


def describe(record: LockRecord) -> str:
    kind = "exclusive" if record.exclusive else "shared"
    return f"{kind} lock by {record.hostname} pid {record.pid} ({record.purpose or 'unknown'})"


class Lock:
    """A context manager holding one lock on a repository store.

    ``recover`` (optional) runs once the lock is held and expired locks of other holders were seen
    — before they are deleted, and again at release if more expired meanwhile: it must index what
    their holders left (``recovering.index_orphan_packs``). Without it, expired locks are ignored
    but left in place for an operation that can clean up after them.
    """

    def __init__(
        self,
        store: ObjectStore,
        *,
        exclusive: bool,
        purpose: str = "",
        stale_after: float = LOCK_TTL,
        refresh: float | None = None,
        recover: Callable[[], object] | None = None,
    ) -> None:
        self.store, self.exclusive, self.purpose = store, exclusive, purpose
        self.stale_after = stale_after
        self.refresh = refresh if refresh is not None else stale_after / 4
        self.recover = recover
        self.id = secrets.token_hex(16)
        self._refreshed = time.monotonic()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.others = 0  # other lock objects seen at acquire, live or expired
        self.expired: list[str] = []  # keys of expired lock objects seen at acquire
        self.removed = 0  # expired lock objects this lock's holder deleted

    def _write(self) -> None:
        now = time.time()
        record = LockRecord(
            socket.gethostname(), os.getpid(), self.exclusive, now, self.purpose, now + self.stale_after
        )
        self.store.put(layout.lock(self.id), msgspec.json.encode(record))

    def _others(self) -> list[tuple[str, LockRecord]]:
        found = []
        for info in self.store.list(layout.LOCKS):
            if layout.id_of(info.key) == self.id:
                continue
            try:
                found.append((info.key, _DECODER.decode(self.store.get(info.key))))
            except (ObjectNotFound, msgspec.DecodeError):
                continue
        return found

    def conflicts(self) -> list[str]:
        """Live locks of other holders that conflict with ours, described for a person."""
        others = self._others()
        self.others = len(others)
        now = time.time()
        self.expired = [key for key, record in others if expired(record, now)]
        return [
            describe(record)
            for key, record in others
            if key not in self.expired and (self.exclusive or record.exclusive)
        ]

    def acquire(self) -> Lock:
        self._write()
        conflicts = self.conflicts()
        if conflicts:
            self.store.delete(layout.lock(self.id))
            raise RepositoryLocked("repository is locked: " + "; ".join(conflicts))
        self._thread = threading.Thread(target=self._refresh_loop, name="ferry-lock-refresh", daemon=True)
        self._thread.start()
        if self.expired and self.recover is not None:
            self._clean_up(self.expired)
        return self

    def _clean_up(self, keys: list[str]) -> None:
        """Index what the expired holders left (``recover``), then delete their lock objects."""
        assert self.recover is not None
        try:
            self.recover()
        except Exception as e:  # leave the locks: the next operation tries again
            log.warning("could not recover after expired repository lock(s), leaving them: %s", e)
            return
        self.removed += remove_expired(self.store, keys)

    def _refresh_loop(self) -> None:
        while not self._stop.wait(self.refresh):
            try:
                self._write()
                self._refreshed = time.monotonic()
            except StoreError as e:  # keep trying: the lock only expires after stale_after
                log.warning("could not refresh repository lock: %s", e)

    def check(self) -> None:
        """Raise if the lock may have expired (refreshes failed): a prune could have run meanwhile,
        so a backup must not write a snapshot that relies on data it did not upload itself."""
        if time.monotonic() - self._refreshed > self.stale_after * 0.8:
            raise RepositoryLocked(
                f"lost the repository lock: not refreshed for {self.stale_after * 0.8:.0f}s"
            )

    def abandon(self) -> None:
        """Stop refreshing but leave the lock object: it expires, and tells the next backup to look
        for packs this process uploaded and could not index (``recovering``)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
            self._thread = None

    def release(self) -> None:
        if self.recover is not None and self._thread is not None:
            try:  # a lock that expired while we held ours: clean it up now rather than never
                late = [key for key, record in self._others() if expired(record)]
            except StoreError as e:
                log.warning("could not look for expired repository locks: %s", e)
                late = []
            if late:
                self._clean_up(late)
        self.abandon()
        try:
            self.store.delete(layout.lock(self.id))
        except StoreError as e:
            log.warning("could not remove repository lock %s: %s", self.id, e)

    def __enter__(self) -> Lock:
        return self.acquire()

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.release()


def remove_expired(store: ObjectStore, keys: list[str] | None = None) -> int:
    """Delete expired lock objects — all of them, or those of ``keys`` that are still expired (each
    is read again just before: a holder may have refreshed it). Returns how many were removed.

    Callers index the packs the holders left first (``recovering.index_orphan_packs``)."""
    removed = 0
    for key in keys if keys is not None else [info.key for info in store.list(layout.LOCKS)]:
        try:
            record = _DECODER.decode(store.get(key))
        except (ObjectNotFound, msgspec.DecodeError):
            continue
        if expired(record):
            store.delete(key)
            log.info("removed expired repository lock %s: %s", layout.id_of(key), describe(record))
            removed += 1
    return removed


def remove_stale(store: ObjectStore, stale_after: float = LOCK_TTL) -> int:
    """``ferry-mover unlock``: delete every expired lock object (the former name of ``remove_expired``)."""
    del stale_after  # each lock carries its own expiry now
    return remove_expired(store)
