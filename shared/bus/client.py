"""A client of Ferry's bus contract: submit, get, cancel, list requests and follow their events.

This is what the ``ferry`` command uses with ``--bus`` and what the gateway uses for everything —
and it is a worked example for automation in another language: plain JSON on documented subjects.

``policy_*`` speak to the policy service (``shared.contracts.policies``: create, get, list, pause,
resume, delete, and for disaster recovery drill, failover, failback) and ``drills`` /
``drill_report`` to the drill reports (``shared.contracts.drills``); every one raises
``RequestRejected`` for a ``Rejected`` reply, so a caller renders a policy's refusal as any other.

``migrations`` answers the migration plans (``shared.contracts.migrations``) and ``rollback`` submits
the rollback of a stored migrate, built from its state by ``rollback_request`` — so the CLI, the
gateway and automation build the same request, with the same idempotency key.

A reply that does not decode (cut short, or not what the subject promises) is a ``BadReply``, a
permanent error naming the subject, never a bare decoding error. Lists come in pages
(``list_page``); ``list`` follows them up to the query's limit.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from typing import TypeVar

import msgspec
from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.errors import Error as NatsError
from nats.errors import NoRespondersError
from nats.errors import TimeoutError as NatsTimeout
from nats.js.api import ConsumerConfig, DeliverPolicy
from nats.js.errors import Error as JsError
from nats.js.errors import ObjectNotFoundError

from shared.contracts import subjects
from shared.contracts.drills import DRILLS_GET, DRILLS_LIST, DrillList, DrillQuery, DrillReport
from shared.contracts.drills import list_decoder as _drill_list
from shared.contracts.drills import report_decoder as _drill_report
from shared.contracts.errors import PermanentError, TemporaryError, clipped
from shared.contracts.events import Event, PhaseChanged, event_decoder
from shared.contracts.migrations import MigrationPlan, rollback_request
from shared.contracts.policies import (
    POLICY_CREATE,
    POLICY_DELETE,
    POLICY_DRILL,
    POLICY_FAILBACK,
    POLICY_FAILOVER,
    POLICY_GET,
    POLICY_LIST,
    POLICY_PAUSE,
    POLICY_RESUME,
    Policy,
    PolicyDeleted,
    PolicyList,
    PolicyState,
)
from shared.contracts.requests import MobilityRequest, RequestKind, encode_request
from shared.contracts.snapshots import RetentionQuery, RetentionResult, SnapshotDetail
from shared.contracts.states import Accepted, ListQuery, Rejected, RequestList, RequestState, reply_decoder
from shared.retrying import RetryPolicy, retrying

log = logging.getLogger("ferry.bus")

T = TypeVar("T")
# No responders for a moment is normal during a rolling restart of the intake: wait 0.2, 0.5, 1 s.
_NO_RESPONDERS = RetryPolicy(attempts=4, initial=0.2, multiplier=2.5, maximum=1.0, jitter=0.0)
_rejected = msgspec.json.Decoder(Rejected)
_state = msgspec.json.Decoder(RequestState)
_list = msgspec.json.Decoder(RequestList)
Plans = list[MigrationPlan]  # an alias: the classes below have a method named `list`
_plans = msgspec.json.Decoder(Plans)
_fields = msgspec.json.Decoder(dict[str, msgspec.Raw])
_policy_state = msgspec.json.Decoder(PolicyState)
_policy_list = msgspec.json.Decoder(PolicyList)
_policy_deleted = msgspec.json.Decoder(PolicyDeleted)
_accepted = msgspec.json.Decoder(Accepted)
_snapshot_detail = msgspec.json.Decoder(SnapshotDetail)
_retention = msgspec.json.Decoder(RetentionResult)

_encoder = msgspec.json.Encoder()
DOCUMENTS = (
    "inventory",
    "restore_report",
    "rendered",
    "expectation",
    "verification",
)  # step outputs kept as documents


def _is_rejected(data: bytes) -> bool:
    try:
        return bytes(_fields.decode(data).get("type", b"")) == b'"rejected"'
    except msgspec.DecodeError:
        return False


class RequestRejected(PermanentError):
    def __init__(self, rejected: Rejected) -> None:
        super().__init__(rejected.error)
        self.rejected = rejected


class BadReply(PermanentError):
    """A reply that is not what the subject promises (cut short, not JSON, another shape)."""


def _decoded(decoder: msgspec.json.Decoder[T], data: bytes, subject: str) -> T:
    try:
        return decoder.decode(data)
    except msgspec.DecodeError as e:  # a ValidationError too
        raise BadReply(f"the reply on {subject} cannot be read: {clipped(str(e))} ({len(data)} bytes)") from e


class BusClient:
    def __init__(self, nc: Client, *, timeout: float = 10.0) -> None:
        self.nc = nc
        self.timeout = timeout

    async def _call(self, subject: str, payload: bytes) -> bytes:
        # Logged at INFO: a command-line user sees only the outcome, not the brief waits.
        loop = retrying(
            _NO_RESPONDERS,
            retry_on=NoRespondersError,
            what=f"request on {subject}",
            logger=log,
            level=logging.INFO,
        )
        try:
            reply: Msg = await loop(self.nc.request, subject, payload, timeout=self.timeout)
        except NoRespondersError as e:
            raise TemporaryError(f"no Ferry intake service answers on {subject}: is it running?") from e
        except (NatsTimeout, TimeoutError) as e:
            raise TemporaryError(f"no reply on {subject} within {self.timeout}s") from e
        return reply.data

    async def submit_raw(self, payload: bytes) -> Accepted | Rejected:
        reply: Accepted | Rejected = _decoded(
            reply_decoder, await self._call(subjects.REQUESTS, payload), subjects.REQUESTS
        )
        return reply

    async def submit(self, request: MobilityRequest) -> str:
        reply = await self.submit_raw(encode_request(request))
        if isinstance(reply, Rejected):
            raise RequestRejected(reply)
        return reply.id

    async def get(self, request_id: str) -> RequestState:
        data = await self._call(subjects.REQUEST_GET, request_id.encode())
        if _is_rejected(data):
            raise RequestRejected(_decoded(_rejected, data, subjects.REQUEST_GET))
        return _decoded(_state, data, subjects.REQUEST_GET)

    async def cancel(self, request_id: str) -> RequestState:
        data = await self._call(subjects.REQUEST_CANCEL, request_id.encode())
        if _is_rejected(data):
            raise RequestRejected(_decoded(_rejected, data, subjects.REQUEST_CANCEL))
        return _decoded(_state, data, subjects.REQUEST_CANCEL)

    async def list_page(self, query: ListQuery | None = None) -> RequestList:
        """One page: at most ``query.limit`` requests, newest first, the cursor of the next page in
        ``next`` and the requests that could not be read in ``skipped``."""
        data = await self._call(subjects.REQUEST_LIST, _encoder.encode(query or ListQuery()))
        if _is_rejected(data):
            raise RequestRejected(_decoded(_rejected, data, subjects.REQUEST_LIST))
        return _decoded(_list, data, subjects.REQUEST_LIST)

    async def list(self, query: ListQuery | None = None) -> list[RequestState]:
        """Up to ``query.limit`` requests, newest first, over as many pages as that takes."""
        query = query or ListQuery()
        items: list[RequestState] = []
        while True:
            page = await self.list_page(query)
            items += page.items
            if not page.next or not page.items or len(items) >= query.limit:
                return items[: max(1, query.limit)]
            query = msgspec.structs.replace(query, cursor=page.next, limit=query.limit - len(items))

    async def _ask(self, subject: str, payload: bytes, decoder: msgspec.json.Decoder[T]) -> T:
        """One call on a subject that answers a document or a ``Rejected`` (raised)."""
        data = await self._call(subject, payload)
        if _is_rejected(data):
            raise RequestRejected(_decoded(_rejected, data, subject))
        return _decoded(decoder, data, subject)

    # --- replication policies (shared.contracts.policies) -------------------------------------
    async def policy_create(self, policy: Policy | bytes) -> PolicyState:
        """Create a policy (a ``Policy`` or its JSON, checked by the service); the same body again
        answers the stored policy, another body under the same name is a ``conflict``."""
        body = policy if isinstance(policy, bytes) else _encoder.encode(policy)
        return await self._ask(POLICY_CREATE, body, _policy_state)

    async def policy_get(self, name: str) -> PolicyState:
        """One policy with its RPO as of now (``not-found`` when there is none)."""
        return await self._ask(POLICY_GET, name.encode(), _policy_state)

    async def policy_list(self) -> PolicyList:
        return await self._ask(POLICY_LIST, b"", _policy_list)

    async def policy_pause(self, name: str) -> PolicyState:
        return await self._ask(POLICY_PAUSE, name.encode(), _policy_state)

    async def policy_resume(self, name: str) -> PolicyState:
        return await self._ask(POLICY_RESUME, name.encode(), _policy_state)

    async def policy_delete(self, name: str) -> PolicyDeleted:
        return await self._ask(POLICY_DELETE, name.encode(), _policy_deleted)

    async def policy_drill(self, name: str, *, snapshot: str = "latest", keep: bool = False) -> Accepted:
        """Start a drill of the policy's DR side: the drill request's id."""
        body = _encoder.encode({"name": name, "snapshot": snapshot or "latest", "keep": keep})
        return await self._ask(POLICY_DRILL, body, _accepted)

    async def policy_failover(self, name: str) -> PolicyState:
        """Fail the application over to the policy's DR side (``failover_request`` follows it)."""
        return await self._ask(POLICY_FAILOVER, name.encode(), _policy_state)

    async def policy_failback(self, name: str) -> PolicyState:
        """Bring the application back to its primary (``failback_request`` follows it)."""
        return await self._ask(POLICY_FAILBACK, name.encode(), _policy_state)

    # --- drill reports (shared.contracts.drills) ----------------------------------------------
    async def drills(self, policy: str = "", *, limit: int = 100) -> DrillList:
        """The drill reports, newest first: every drill, or one policy's."""
        body = _encoder.encode(DrillQuery(policy=policy, limit=limit))
        return await self._ask(DRILLS_LIST, body, _drill_list)

    async def drill_report(self, drill_id: str) -> DrillReport:
        """One drill's report, by its request id (``not-found`` when there is no such drill)."""
        return await self._ask(DRILLS_GET, drill_id.encode(), _drill_report)

    # --- the snapshot catalog (shared.contracts.snapshots; the snapshot service answers) ----------
    async def snapshot_describe(self, snapshot_id: str, repository: str = "") -> SnapshotDetail:
        """One snapshot of a repository ("": the default one); ``not-found`` when it has none."""
        body = _encoder.encode({"id": snapshot_id, "repository": repository})
        return await self._ask(subjects.SNAPSHOTS_DESCRIBE, body, _snapshot_detail)

    async def snapshots_retain(self, query: RetentionQuery) -> RetentionResult:
        """Apply a retention (and prune what it frees unless ``query.prune`` is off): pruning a
        large repository takes a while, so give this client a timeout to match."""
        return await self._ask(subjects.SNAPSHOTS_RETAIN, _encoder.encode(query), _retention)

    async def migrations(self) -> Plans:
        """Every application's migration plan, the most recently active first."""
        return await self._ask(subjects.MIGRATION_LIST, b"", _plans)

    async def rollback(self, request_id: str) -> Accepted:
        """Submit the rollback of a stored migrate (``not-found`` when there is none, ``invalid`` when
        it is not a migrate); asked twice, the same rollback request (its idempotency key)."""
        state = await self.get(request_id)
        if state.request.kind is not RequestKind.MIGRATE:
            raise RequestRejected(
                Rejected(
                    error=f"request {request_id} is a {state.request.kind.value}: only a migrate can be "
                    "rolled back",
                    field="id",
                )
            )
        reply = await self.submit_raw(encode_request(rollback_request(state)))
        if isinstance(reply, Rejected):
            raise RequestRejected(reply)
        return reply

    async def document(self, request_id: str, output: str) -> bytes:
        """A JSON document a step of the request left in the ``ferry-inventories`` object store:
        ``inventory`` (discover), ``restore_report`` and ``rendered`` (restore; a dry run's objects),
        ``verification`` (verify)."""
        if output not in DOCUMENTS:
            raise RequestRejected(
                Rejected(
                    error=f"unknown document {output!r} (one of: {', '.join(DOCUMENTS)})", field="document"
                )
            )
        state = await self.get(request_id)
        name = state.outputs.get(output)
        if not name:
            present = ", ".join(d for d in DOCUMENTS if d in state.outputs) or "none yet"
            raise RequestRejected(
                Rejected(
                    error=f"request {request_id} has no {output} document (it has: {present})",
                    field="document",
                    code="not-found",
                )
            )
        try:
            store = await self.nc.jetstream().object_store(subjects.INVENTORY_STORE)
            found = await store.get(name)
        except ObjectNotFoundError:
            raise RequestRejected(
                Rejected(
                    error=f"the {output} document of {request_id} is gone", field="document", code="not-found"
                )
            ) from None
        except (NatsError, JsError, TimeoutError) as e:
            raise TemporaryError(f"could not read the {output} document of {request_id}: {e}") from e
        return bytes(found.data or b"")

    async def events(
        self, request_id: str, *, after: int = 0, follow: bool = True, idle: float = 1.0
    ) -> AsyncIterator[tuple[int, Event]]:
        """History then live events of one request, as (stream sequence, event).

        Resumable: pass the last sequence seen as ``after``. With ``follow`` the iterator ends after
        the request reaches a final phase; without it, once the history is exhausted.
        """
        js = self.nc.jetstream()
        config = ConsumerConfig(
            deliver_policy=DeliverPolicy.BY_START_SEQUENCE if after else DeliverPolicy.ALL,
            opt_start_seq=after + 1 if after else None,
            filter_subject=subjects.events_of(request_id),
        )
        sub = await js.subscribe(subjects.events_of(request_id), ordered_consumer=True, config=config)
        try:
            while True:
                try:
                    msg = await sub.next_msg(timeout=idle)
                except (NatsTimeout, TimeoutError):
                    if not follow:
                        return
                    continue
                event = event_decoder.decode(msg.data)
                yield int(msg.metadata.sequence.stream), event
                if follow and isinstance(event, PhaseChanged) and event.phase.final:
                    return
        finally:
            await sub.unsubscribe()

    async def wait(self, request_id: str, *, within: float = 60.0) -> RequestState:
        """Poll until the request reaches a final phase (bounded by ``within`` seconds)."""
        deadline = asyncio.get_running_loop().time() + within
        delay = 0.05
        phase = "unknown"
        while True:
            try:
                state = await self.get(request_id)
            except TemporaryError:  # the bus is restarting: keep polling until the deadline
                state = None
            if state is not None and state.phase.final:
                return state
            phase = state.phase.value if state is not None else phase
            if asyncio.get_running_loop().time() > deadline:
                raise TimeoutError(f"request {request_id} still {phase} after {within}s")
            await asyncio.sleep(delay)
            delay = min(delay * 1.5, 0.5)
