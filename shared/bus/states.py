"""Request state in the ``ferry-requests`` KV bucket, changed only by compare-and-set.

``update`` reads the state and its revision, applies a pure change, and writes it back only if the
revision is still the same; on a conflict it reads again and re-applies the change. Two writers
(two replicas, a step and a cancel) therefore never lose each other's update.

Every write keeps the state within ``MAX_STATE_BYTES`` (shared.contracts.states): a step result that
would push it past the bound goes whole into the ``ferry-inventories`` object store and the state
keeps a summary naming it; free text (a reason, a step's error) is cut last. A state that still
does not fit is refused with a permanent error instead of being written. A stored state that does
not decode is ``StateUnreadable``; ``entries`` reports it and goes on, so one bad entry never
breaks a list.
"""

from __future__ import annotations

import datetime as dt
import functools
import logging
from collections.abc import AsyncIterator, Callable

import msgspec
from nats.errors import Error as NatsError
from nats.js import JetStreamContext
from nats.js.errors import Error as JsError
from nats.js.errors import KeyNotFoundError, KeyWrongLastSequenceError
from nats.js.kv import KeyValue
from nats.js.object_store import ObjectStore

from shared.bus.buckets import compare_and_set, stream_keys
from shared.contracts import subjects
from shared.contracts.errors import FerryError, PermanentError, TemporaryError, clipped
from shared.contracts.states import (
    MAX_STATE_BYTES,
    RequestState,
    StepState,
    Unreadable,
    result_document,
    result_output,
    state_decoder,
    state_encoder,
)
from shared.contracts.steps import StepResult
from shared.retrying import RetryPolicy

log = logging.getLogger("ferry.bus")

Change = Callable[[RequestState], bool]  # mutates the state in place; returns False for "no change"


class StateConflict(FerryError):
    """Someone else wrote the state first (and retries ran out), or the request already exists."""


class RequestNotFound(PermanentError):
    def __init__(self, request_id: str) -> None:
        super().__init__(f"no request with id {request_id!r}")
        self.request_id = request_id


class StateUnreadable(PermanentError):
    """The stored state of a request does not decode (written by an older Ferry, or damaged)."""

    def __init__(self, request_id: str, why: str) -> None:
        super().__init__(f"the stored state of request {request_id} cannot be read: {why}")
        self.request_id = request_id


SUMMARY_WARNINGS = 10  # warnings a summarised step result keeps in the state
TEXT_LIMIT = 4096  # characters of a reason or a step error kept when a state must shrink


def utcnow() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


class RequestStore:
    def __init__(
        self,
        kv: KeyValue,
        js: JetStreamContext,
        *,
        max_conflicts: int = 50,
        max_bytes: int = MAX_STATE_BYTES,
    ) -> None:
        self._kv = kv
        self._js = js
        # A conflict means another writer just succeeded: read again at once, no wait.
        self._conflicts = RetryPolicy(attempts=max_conflicts, initial=0.0, jitter=0.0)
        self._max_bytes = max_bytes
        self._documents: ObjectStore | None = None

    async def create(self, state: RequestState) -> int:
        state.created_at = state.updated_at = state.created_at or utcnow()
        data = await self.bounded(state)
        try:
            return await self._kv.create(state.id, data)
        except KeyWrongLastSequenceError as e:
            raise StateConflict(f"request {state.id} exists already") from e
        except (NatsError, JsError, TimeoutError) as e:
            raise TemporaryError(f"could not store request {state.id}: {e}") from e

    async def get(self, request_id: str) -> tuple[RequestState, int]:
        try:
            entry = await self._kv.get(request_id)
        except KeyNotFoundError as e:
            raise RequestNotFound(request_id) from e
        except (NatsError, JsError, TimeoutError) as e:
            raise TemporaryError(f"could not read request {request_id}: {e}") from e
        if entry.value is None:
            raise RequestNotFound(request_id)
        try:
            state = state_decoder.decode(entry.value)
        except msgspec.DecodeError as e:  # a ValidationError too
            why = f"{clipped(str(e))} ({len(entry.value)} bytes)"
            raise StateUnreadable(request_id, why) from e
        return state, int(entry.revision or 0)

    async def put_if(self, state: RequestState, revision: int) -> int:
        """Write ``state`` only if the stored revision is still ``revision``."""
        state.updated_at = utcnow()
        data = await self.bounded(state)
        try:
            return await self._kv.update(state.id, data, last=revision)
        except KeyWrongLastSequenceError as e:
            raise StateConflict(f"request {state.id} changed since revision {revision}") from e
        except (NatsError, JsError, TimeoutError) as e:
            raise TemporaryError(f"could not update request {state.id}: {e}") from e

    async def update(self, request_id: str, change: Change) -> RequestState:
        """Apply ``change`` atomically (read, change, compare-and-set, retry on conflict)."""

        try:
            return await compare_and_set(
                functools.partial(self.get, request_id),
                change,
                self.put_if,
                policy=self._conflicts,
                conflict=StateConflict,
                what=f"compare-and-set of request {request_id}",
            )
        except StateConflict as e:
            raise StateConflict(
                f"request {request_id}: gave up after {self._conflicts.attempts} conflicting writes"
            ) from e

    async def keys(self) -> list[str]:
        """Every request id in the bucket (deleted ones included: ``get`` skips them), read from the
        bucket's stream (``buckets.stream_keys`` says why)."""
        return await stream_keys(self._kv, self._js, "requests")

    async def entries(self) -> AsyncIterator[RequestState | Unreadable]:
        """Every stored request: its state, or what says why it could not be read."""
        for key in await self.keys():
            try:
                state, _ = await self.get(key)
            except RequestNotFound:
                continue
            except (StateUnreadable, TemporaryError) as e:
                yield Unreadable(id=key, reason=str(e))
                continue
            yield state

    async def all(self) -> AsyncIterator[RequestState]:
        """Every stored request that can be read (the others are logged and left out)."""
        async for entry in self.entries():
            if isinstance(entry, Unreadable):
                log.warning("left out of the list: %s", entry.reason)
                continue
            yield entry

    # --- the size bound ---------------------------------------------------------------------
    async def bounded(self, state: RequestState) -> bytes:
        """The state encoded within the bound: large step results moved out first (largest first),
        then free text cut. Changes ``state`` in place, so the caller holds what was stored."""
        data = state_encoder.encode(state)
        if len(data) <= self._max_bytes:
            return data
        by_size = sorted(state.steps, key=lambda s: len(state_encoder.encode(s.result)), reverse=True)
        for step in by_size:
            if step.result is None or result_output(step.step) in step.result.outputs:
                continue  # nothing to move, or moved already
            await self._move_out(state.id, step)
            data = state_encoder.encode(state)
            if len(data) <= self._max_bytes:
                return data
        state.reason = _cut(state.reason)
        for step in state.steps:
            step.error = _cut(step.error)
        data = state_encoder.encode(state)
        if len(data) > self._max_bytes:
            raise PermanentError(
                f"request {state.id}: its state would be {len(data)} bytes, more than the "
                f"{self._max_bytes} a stored state may be, even with its step results moved out"
            )
        return data

    async def _move_out(self, request_id: str, step: StepState) -> None:
        """Keep a step's whole result in the object store; leave a summary naming it in the state."""
        result = step.result
        assert result is not None
        name = result_document(request_id, step.step)
        try:
            if self._documents is None:
                self._documents = await self._js.object_store(subjects.INVENTORY_STORE)
            await self._documents.put(name, state_encoder.encode(result))
        except (NatsError, JsError, TimeoutError) as e:
            raise TemporaryError(f"could not keep the {step.step.value} result of {request_id}: {e}") from e
        warnings = [_cut(w, 300) for w in result.warnings[:SUMMARY_WARNINGS]]
        if len(result.warnings) > SUMMARY_WARNINGS:
            warnings.append(f"… {len(result.warnings)} warnings in all: see the document {name}")
        counts = result.counts if len(state_encoder.encode(result.counts)) <= 8192 else {}
        step.result = StepResult(
            outputs={**result.outputs, result_output(step.step): name},
            counts=counts,
            warnings=warnings,
            partial=result.partial,
            message=_cut(result.message, 1000),
            bytes_moved=result.bytes_moved,
        )
        log.info(
            "request %s: the %s result is kept as %s (the state was too large)",
            request_id,
            step.step.value,
            name,
        )


def _cut(text: str, limit: int = TEXT_LIMIT) -> str:
    return text if len(text) <= limit else f"{text[:limit]}… ({len(text)} characters in all)"
