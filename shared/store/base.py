"""The object-store interface the repository is written against, and the one retry loop.

The interface is deliberately small and *blocking*: the repository calls it from thread pools sized on
purpose (uploads are I/O bound and boto3 releases the GIL while it waits on the socket), so an async
interface would only add a hop. Two implementations exist: ``S3Store`` (boto3) and ``LocalStore`` (a
directory). Both promise that an object is either fully written or absent — a reader never sees half a
pack — which is what keeps an interrupted backup consistent.

Retries are data (``RetryPolicy``) plus one loop (``retrying``): only temporary errors are retried,
with exponential backoff and jitter, and each attempt is logged as ``attempt n/N``.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Protocol, TypeVar

from shared.store.errors import StoreError

log = logging.getLogger("ferry.store")

T = TypeVar("T")


@dataclass(frozen=True)
class ObjectInfo:
    """One listed object: its key (relative to the store's prefix) and its size in bytes."""

    key: str
    size: int


@dataclass(frozen=True)
class RetryPolicy:
    """How often and how patiently a temporary failure is retried."""

    attempts: int = 6
    initial_delay: float = 0.2
    max_delay: float = 10.0
    multiplier: float = 2.0

    def delay(self, attempt: int, retry_after: float | None = None) -> float:
        if retry_after is not None:
            return min(retry_after, self.max_delay)
        base = min(self.initial_delay * self.multiplier ** (attempt - 1), self.max_delay)
        return base * (0.5 + random.random() / 2)


def retrying(policy: RetryPolicy, what: str, call: Callable[[], T]) -> T:
    """Run ``call``; retry it while it raises a temporary ``StoreError``, up to ``policy.attempts``."""
    attempt = 1
    while True:
        try:
            return call()
        except StoreError as e:
            if not e.temporary or attempt >= policy.attempts:
                raise
            delay = policy.delay(attempt, getattr(e, "retry_after", None))
            log.warning(
                "%s failed (attempt %d/%d), retrying in %.2fs: %s", what, attempt, policy.attempts, delay, e
            )
            time.sleep(delay)
            attempt += 1


class ObjectStore(Protocol):
    """Where a repository's objects live. Keys are relative ('data/ab/ab12...'), '/'-separated."""

    @property
    def location(self) -> str:
        """A human-readable location, e.g. ``s3://bucket/prefix`` or ``/srv/repo``."""
        ...

    def put(self, key: str, data: bytes | bytearray | memoryview) -> None:
        """Write an object atomically (readers see the whole object or nothing); overwrite if present."""
        ...

    def get(self, key: str) -> bytes:
        """Read a whole object; raise ``ObjectNotFound`` if absent."""
        ...

    def get_range(self, key: str, offset: int, length: int) -> bytes:
        """Read ``length`` bytes at ``offset``; a negative offset counts from the end of the object."""
        ...

    def delete(self, key: str) -> None:
        """Remove an object; removing an absent object is not an error."""
        ...

    def list(self, prefix: str) -> Iterator[ObjectInfo]:
        """Every object whose key starts with ``prefix``, in no particular order."""
        ...

    def exists(self, key: str) -> bool: ...

    def close(self) -> None: ...
