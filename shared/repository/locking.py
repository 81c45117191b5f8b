"""Repository locks: many shared holders (backup, restore, copy, check) or one exclusive one (prune).

Object stores have no atomic compare-and-swap we can count on everywhere, so locks follow restic's
scheme: write ``locks/<id>``, then list the others; if a conflicting live lock exists, remove ours and
fail with ``RepositoryLocked`` (temporary: the Job retries). Two racing writers may both back off,
never both proceed. A holder refreshes its lock every ``refresh`` seconds from a daemon thread; a lock
not refreshed for ``stale_after`` seconds — or whose process is gone on this very host — is stale and
ignored, so a killed Job never blocks the repository for longer than that.
"""

from __future__ import annotations

import logging
import os
import secrets
import socket
import threading
import time
from types import TracebackType

import msgspec

from shared.repository.errors import RepositoryLocked
from shared.store import ObjectNotFound, ObjectStore, StoreError, layout

log = logging.getLogger("ferry.repository")
STALE_AFTER = 300.0
REFRESH_EVERY = 60.0


class LockRecord(msgspec.Struct, frozen=True):
    hostname: str
    pid: int
    exclusive: bool
    time: float
    purpose: str = ""


_DECODER = msgspec.json.Decoder(LockRecord)


def _stale(record: LockRecord, stale_after: float) -> bool:
    if time.time() - record.time > stale_after:
        return True
    if record.hostname == socket.gethostname():
        try:
            os.kill(record.pid, 0)
        except ProcessLookupError:
            return True
        except PermissionError:
            return False
    return False


class Lock:
    """A context manager holding one lock on a repository store."""

    def __init__(
        self,
        store: ObjectStore,
        *,
        exclusive: bool,
        purpose: str = "",
        stale_after: float = STALE_AFTER,
        refresh: float = REFRESH_EVERY,
    ) -> None:
        self.store, self.exclusive, self.purpose = store, exclusive, purpose
        self.stale_after, self.refresh = stale_after, refresh
        self.id = secrets.token_hex(16)
        self._refreshed = time.monotonic()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.others = 0  # other lock objects seen at acquire, live or stale

    def _write(self) -> None:
        record = LockRecord(socket.gethostname(), os.getpid(), self.exclusive, time.time(), self.purpose)
        self.store.put(layout.lock(self.id), msgspec.json.encode(record))

    def conflicts(self) -> list[str]:
        """Live locks of other holders that conflict with ours, described for a person."""
        found = []
        self.others = 0
        for info in self.store.list(layout.LOCKS):
            other = layout.id_of(info.key)
            if other == self.id:
                continue
            self.others += 1
            try:
                record = _DECODER.decode(self.store.get(info.key))
            except (ObjectNotFound, msgspec.DecodeError):
                continue
            if _stale(record, self.stale_after):
                continue
            if self.exclusive or record.exclusive:
                kind = "exclusive" if record.exclusive else "shared"
                found.append(
                    f"{kind} lock by {record.hostname} pid {record.pid} ({record.purpose or 'unknown'})"
                )
        return found

    def acquire(self) -> Lock:
        self._write()
        conflicts = self.conflicts()
        if conflicts:
            self.store.delete(layout.lock(self.id))
            raise RepositoryLocked("repository is locked: " + "; ".join(conflicts))
        self._thread = threading.Thread(target=self._refresh_loop, name="ferry-lock-refresh", daemon=True)
        self._thread.start()
        return self

    def _refresh_loop(self) -> None:
        while not self._stop.wait(self.refresh):
            try:
                self._write()
                self._refreshed = time.monotonic()
            except StoreError as e:  # keep trying: the lock only goes stale after stale_after
                log.warning("could not refresh repository lock: %s", e)

    def check(self) -> None:
        """Raise if the lock may have gone stale (refreshes failed): a prune could have run meanwhile,
        so a backup must not write a snapshot that relies on data it did not upload itself."""
        if time.monotonic() - self._refreshed > self.stale_after * 0.8:
            raise RepositoryLocked(
                f"lost the repository lock: not refreshed for {self.stale_after * 0.8:.0f}s"
            )

    def abandon(self) -> None:
        """Stop refreshing but leave the lock object: it goes stale, and tells the next backup to look
        for packs this process uploaded and could not index (``recovering``)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
            self._thread = None

    def release(self) -> None:
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


def remove_stale(store: ObjectStore, stale_after: float = STALE_AFTER) -> int:
    """Delete stale lock objects (``ferry-mover unlock``); return how many were removed."""
    removed = 0
    for info in store.list(layout.LOCKS):
        try:
            record = _DECODER.decode(store.get(info.key))
        except (ObjectNotFound, msgspec.DecodeError):
            continue
        if _stale(record, stale_after):
            store.delete(info.key)
            removed += 1
    return removed
