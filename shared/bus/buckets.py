"""What both key-value stores (``states.RequestStore``, ``policies.PolicyStore``) do alike: list
their keys from the bucket's stream, and update an entry with compare-and-set.

The keys come from the stream, as the subjects holding a message, and not from ``KeyValue.keys()``:
its watcher may mark the end of the initial values before they all arrived and return some of the
keys, or none (nats.py issue 842), which made a list come back empty now and then.

An update reads the entry, lets the caller change it, and writes it only if the revision is still
the one read; a conflict (another writer came first) is retried at once, logged at DEBUG: it is
routine, and the store says what gave up after too many.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import TypeVar

from nats.errors import Error as NatsError
from nats.js import JetStreamContext
from nats.js.errors import Error as JsError
from nats.js.kv import KeyValue

from shared.contracts.errors import TemporaryError
from shared.retrying import RetryPolicy, retrying

log = logging.getLogger("ferry.bus")
S = TypeVar("S")


async def stream_keys(kv: KeyValue, js: JetStreamContext, what: str) -> list[str]:
    """Every key of the bucket with a message (a deleted one too: its purge marker); ``what`` names
    them in the ``TemporaryError`` of a failed read ("could not list <what>")."""
    try:
        status = await kv.status()
        prefix = f"$KV.{status.bucket}."
        info = await js.stream_info(status.stream_info.config.name or "", subjects_filter=f"{prefix}>")
    except (NatsError, JsError, TimeoutError) as e:
        raise TemporaryError(f"could not list {what}: {e}") from e
    return [subject.removeprefix(prefix) for subject in info.state.subjects or {}]


async def compare_and_set(
    read: Callable[[], Awaitable[tuple[S, int]]],
    change: Callable[[S], bool],
    write: Callable[[S, int], Awaitable[object]],
    *,
    policy: RetryPolicy,
    conflict: type[Exception],
    what: str,
) -> S:
    """Read an entry and its revision, ``change`` it (True: write it back), ``write`` it at that
    revision; again from the read while ``write`` raises ``conflict``, up to ``policy.attempts``
    (then the last conflict is raised). Returns the entry as last read and changed."""

    async def attempt() -> S:
        entry, revision = await read()
        if change(entry):
            await write(entry, revision)
        return entry

    loop = retrying(policy, retry_on=conflict, what=what, logger=log, level=logging.DEBUG)
    entry: S = await loop(attempt)
    return entry
