"""The object-store interface the repository is written against, and how its calls are retried.

The interface is deliberately small and *blocking*: the repository calls it from thread pools sized on
purpose (uploads are I/O bound and boto3 releases the GIL while it waits on the socket), so an async
interface would only add a hop. Two implementations exist: ``S3Store`` (boto3) and ``LocalStore`` (a
directory). Both promise that an object is either fully written or absent — a reader never sees half a
pack — which is what keeps an interrupted backup consistent.

Retries are Ferry's one policy (``shared.retrying``): ``retried`` runs a call in its blocking
loop, retrying only temporary ``StoreError``s (with an S3 ``Retry-After`` honoured), each attempt
logged as ``attempt n/N``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Protocol, TypeVar

from shared.retrying import RetryPolicy, retrying_sync
from shared.store.errors import StoreError

log = logging.getLogger("ferry.store")

T = TypeVar("T")


@dataclass(frozen=True)
class ObjectInfo:
    """One listed object: its key (relative to the store's prefix) and its size in bytes."""

    key: str
    size: int


def is_temporary(error: BaseException) -> bool:
    """Whether a store error is worth another attempt (a permanent one never is)."""
    return isinstance(error, StoreError) and error.temporary


def retried(policy: RetryPolicy, what: str, call: Callable[[], T]) -> T:
    """Run ``call``; retry it while it raises a temporary ``StoreError``, up to ``policy.attempts``."""
    return retrying_sync(policy, retry_on=is_temporary, what=what, logger=log)(call)


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
