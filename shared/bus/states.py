"""Request state in the ``ferry-requests`` KV bucket, changed only by compare-and-set.

``update`` reads the state and its revision, applies a pure change, and writes it back only if the
revision is still the same; on a conflict it reads again and re-applies the change. Two writers
(two replicas, a step and a cancel) therefore never lose each other's update.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import AsyncIterator, Callable

import msgspec
from nats.errors import Error as NatsError
from nats.js import JetStreamContext
from nats.js.errors import Error as JsError
from nats.js.errors import KeyNotFoundError, KeyWrongLastSequenceError
from nats.js.kv import KeyValue

from shared.contracts.errors import FerryError, PermanentError, TemporaryError
from shared.contracts.states import RequestState, state_decoder, state_encoder

log = logging.getLogger("ferry.bus")

Change = Callable[[RequestState], bool]  # mutates the state in place; returns False for "no change"


class StateConflict(FerryError):
    """Someone else wrote the state first (and retries ran out), or the request already exists."""


class RequestNotFound(PermanentError):
    def __init__(self, request_id: str) -> None:
        super().__init__(f"no request with id {request_id!r}")
        self.request_id = request_id


def utcnow() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


class RequestStore:
    def __init__(self, kv: KeyValue, js: JetStreamContext, *, max_conflicts: int = 50) -> None:
        self._kv = kv
        self._js = js
        self._max_conflicts = max_conflicts

    async def create(self, state: RequestState) -> int:
        state.created_at = state.updated_at = state.created_at or utcnow()
        try:
            return await self._kv.create(state.id, state_encoder.encode(state))
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
        return state_decoder.decode(entry.value), int(entry.revision or 0)

    async def put_if(self, state: RequestState, revision: int) -> int:
        """Write ``state`` only if the stored revision is still ``revision``."""
        state.updated_at = utcnow()
        try:
            return await self._kv.update(state.id, state_encoder.encode(state), last=revision)
        except KeyWrongLastSequenceError as e:
            raise StateConflict(f"request {state.id} changed since revision {revision}") from e
        except (NatsError, JsError, TimeoutError) as e:
            raise TemporaryError(f"could not update request {state.id}: {e}") from e

    async def update(self, request_id: str, change: Change) -> RequestState:
        """Apply ``change`` atomically (read, change, compare-and-set, retry on conflict)."""
        for attempt in range(1, self._max_conflicts + 1):
            state, revision = await self.get(request_id)
            if not change(state):
                return state
            try:
                await self.put_if(state, revision)
                return state
            except StateConflict:
                log.debug("state conflict on %s, attempt %d/%d", request_id, attempt, self._max_conflicts)
        raise StateConflict(f"request {request_id}: gave up after {self._max_conflicts} conflicting writes")

    async def keys(self) -> list[str]:
        """Every request id in the bucket (deleted ones included: ``get`` skips them).

        Read from the bucket's stream, as the subjects holding a message, and not with
        ``KeyValue.keys()``: its watcher may mark the end of the initial values before they all
        arrived and return some of the keys, or none (nats.py issue 842), which made a request
        list come back empty now and then.
        """
        try:
            status = await self._kv.status()
            prefix = f"$KV.{status.bucket}."
            info = await self._js.stream_info(
                status.stream_info.config.name or "", subjects_filter=f"{prefix}>"
            )
        except (NatsError, JsError, TimeoutError) as e:
            raise TemporaryError(f"could not list requests: {e}") from e
        return [subject.removeprefix(prefix) for subject in info.state.subjects or {}]

    async def all(self) -> AsyncIterator[RequestState]:
        for key in await self.keys():
            try:
                state, _ = await self.get(key)
            except (RequestNotFound, msgspec.DecodeError):
                continue
            yield state
