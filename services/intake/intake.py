"""Request intake on ``ferry.requests`` (request-reply), plus get, list and cancel.

Stateless: everything lives in JetStream KV, so any number of replicas answer in one queue group.
A submission is checked (the reply names the bad field and nothing is stored), de-duplicated by its
idempotency key (the same key returns the same request id), stored as Queued, its ``phase → Queued``
event published, and only then its first step: a watcher of the request's events never sees a step
start before the request was queued. Both publishes carry de-duplicating message ids, so a crash
between any two of those writes is repaired by the client's retry with the same key: the stored
state is found, and the Queued event and the first step are published again (a no-op for whichever
JetStream has already).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import logging
import secrets

import msgspec
from nats.js import JetStreamContext
from nats.js.errors import KeyNotFoundError, KeyWrongLastSequenceError
from nats.micro.request import Request

from shared.bus.publishing import publish_event, publish_step
from shared.bus.states import RequestNotFound, RequestStore, StateConflict
from shared.contracts import subjects
from shared.contracts.errors import FerryError, TemporaryError, json_path
from shared.contracts.events import PhaseChanged
from shared.contracts.requests import MobilityRequest, RequestInvalid, decode_request
from shared.contracts.states import (
    Accepted,
    ListQuery,
    Phase,
    Rejected,
    RequestList,
    RequestState,
    StepState,
    StepStatus,
)
from shared.contracts.steps import StepCommand, itinerary_for
from shared.runtime import Service

log = logging.getLogger("ferry.intake")
encoder = msgspec.json.Encoder()
list_query_decoder = msgspec.json.Decoder(ListQuery)


def new_request_id(request: MobilityRequest) -> str:
    stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%d-%H%M%S")
    return f"{request.kind.value}-{stamp}-{secrets.token_hex(3)}"


def idempotency_digest(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def queued_state(request_id: str, request: MobilityRequest) -> RequestState:
    """A new request's state: Queued, every step of its itinerary pending."""
    itinerary = itinerary_for(request)
    return RequestState(
        id=request_id,
        request=request,
        phase=Phase.QUEUED,
        itinerary=itinerary,
        steps=[StepState(step=step) for step in itinerary],
    )


async def announce_queued(js: JetStreamContext, request_id: str) -> None:
    """Publish the request's ``phase → Queued`` event, once per request (its message id makes a
    retry's second publish a no-op within the events stream's de-duplication window)."""
    event = PhaseChanged(request_id=request_id, phase=Phase.QUEUED)
    await publish_event(js, event, msg_id=f"{request_id}.phase.{Phase.QUEUED.value}")


class IntakeService(Service):
    name = "intake"
    description = "Accepts mobility requests, answers their state, cancels them"

    async def setup(self) -> None:
        self.store = RequestStore(self.topology.requests, self.topology.js)
        assert self.micro is not None
        await self.micro.add_endpoint(
            name="submit", subject=subjects.REQUESTS, handler=self._submit, queue_group="ferry-intake"
        )
        await self.micro.add_endpoint(
            name="get", subject=subjects.REQUEST_GET, handler=self._get, queue_group="ferry-intake"
        )
        await self.micro.add_endpoint(
            name="cancel", subject=subjects.REQUEST_CANCEL, handler=self._cancel, queue_group="ferry-intake"
        )
        await self.micro.add_endpoint(
            name="list", subject=subjects.REQUEST_LIST, handler=self._list, queue_group="ferry-intake"
        )

    # --- submit -----------------------------------------------------------------------------
    async def _submit(self, req: Request) -> None:
        try:
            request = decode_request(req.data)
        except RequestInvalid as e:
            self.metrics.requests(outcome="rejected").inc()
            await req.respond(encoder.encode(Rejected(error=str(e), field=e.field)))
            return
        try:
            accepted = await self.submit(request)
        except FerryError as e:
            log.warning("submission failed: %s", e)
            await req.respond(encoder.encode(Rejected(error=str(e), code="unavailable")))
            return
        self.metrics.requests(outcome="duplicate" if accepted.duplicate else "accepted").inc()
        await req.respond(encoder.encode(accepted))

    async def submit(self, request: MobilityRequest) -> Accepted:
        request_id = new_request_id(request)
        if request.idempotency_key:
            digest = idempotency_digest(request.idempotency_key)
            try:
                await self.topology.idempotency.create(digest, request_id.encode())
            except KeyWrongLastSequenceError:
                entry = await self.topology.idempotency.get(digest)
                existing = (entry.value or b"").decode()
                try:
                    state, _ = await self.store.get(existing)
                except RequestNotFound:  # the first submission died before storing its state
                    return await self._store_and_queue(existing, request, duplicate=True)
                await self._queue(state)  # de-duplicated: a no-op unless the first submission died
                return Accepted(id=existing, duplicate=True)
            except KeyNotFoundError as e:  # the key expired between our create and get
                raise TemporaryError("idempotency key expired during submission; retry") from e
        return await self._store_and_queue(request_id, request, duplicate=False)

    async def _store_and_queue(
        self, request_id: str, request: MobilityRequest, *, duplicate: bool
    ) -> Accepted:
        state = queued_state(request_id, request)
        try:
            await self.store.create(state)
        except StateConflict:
            state, _ = await self.store.get(request_id)
        try:
            await self._queue(state)
        except TemporaryError as e:
            if not request.idempotency_key:  # nobody can resume it: say so in its state, not Queued forever
                await self._undispatchable(request_id, str(e))
            raise  # with a key, a retry of the same submission dispatches it
        log.info("accepted %s (%s, %d steps)", request_id, request.kind.value, len(state.itinerary))
        return Accepted(id=request_id, duplicate=duplicate)

    async def _undispatchable(self, request_id: str, why: str) -> None:
        """Fail a stored request whose first step could not be queued (best effort: NATS is ailing)."""
        reason = f"{why}; the submission was refused, submit again"

        def fail(state: RequestState) -> bool:
            if state.phase is not Phase.QUEUED or state.steps[0].status is not StepStatus.PENDING:
                return False
            state.phase, state.reason = Phase.FAILED, reason
            return True

        try:
            state = await self.store.update(request_id, fail)
        except FerryError as e:
            log.warning("could not mark %s failed: %s", request_id, e)
            return
        if state.phase is Phase.FAILED:
            await publish_event(
                self.js, PhaseChanged(request_id=request_id, phase=Phase.FAILED, reason=reason)
            )

    async def _queue(self, state: RequestState) -> None:
        """Announce a stored, not yet started request as Queued, then dispatch its first step.

        In this order, and both de-duplicated, so that a retry after a crash anywhere in between
        repeats them safely and no step's events ever precede ``phase → Queued``.
        """
        if state.phase.final or (state.steps and state.steps[0].status is not StepStatus.PENDING):
            return  # cancelled, or the first step has started: both were published
        await announce_queued(self.js, state.id)
        if not state.itinerary:
            return
        first = StepCommand(
            request_id=state.id,
            step=state.itinerary[0],
            index=0,
            itinerary=state.itinerary,
            request=state.request,
        )
        await publish_step(self.js, first)

    # --- queries ----------------------------------------------------------------------------
    async def _get(self, req: Request) -> None:
        request_id = req.data.decode(errors="replace").strip()
        try:
            state, _ = await self.store.get(request_id)
        except RequestNotFound as e:
            await req.respond(encoder.encode(Rejected(error=str(e), field="id", code="not-found")))
            return
        except FerryError as e:
            await req.respond(encoder.encode(Rejected(error=str(e), code="unavailable")))
            return
        await req.respond(encoder.encode(state))

    async def _cancel(self, req: Request) -> None:
        request_id = req.data.decode(errors="replace").strip()

        def cancel(state: RequestState) -> bool:
            if state.phase.final or state.cancel_requested:
                return False
            state.cancel_requested = True
            state.reason = "cancelled by request"
            if not any(s.status is StepStatus.RUNNING for s in state.steps):
                state.phase = Phase.CANCELLED  # nothing runs: the queued step will find it cancelled
            return True

        try:
            state = await self.store.update(request_id, cancel)
        except RequestNotFound as e:
            await req.respond(encoder.encode(Rejected(error=str(e), field="id", code="not-found")))
            return
        except FerryError as e:
            await req.respond(encoder.encode(Rejected(error=str(e), code="unavailable")))
            return
        if state.phase is Phase.CANCELLED:
            await publish_event(
                self.js, PhaseChanged(request_id=request_id, phase=Phase.CANCELLED, reason=state.reason)
            )
        await req.respond(encoder.encode(state))

    async def _list(self, req: Request) -> None:
        try:
            query = list_query_decoder.decode(req.data or b"{}")
        except (msgspec.DecodeError, msgspec.ValidationError) as e:
            await req.respond(encoder.encode(Rejected(error=f"bad list query: {e}", field=json_path(e))))
            return
        label_key, _, label_value = query.label.partition("=")
        items = []
        async for state in self.store.all():
            if query.phase and state.phase.value != query.phase:
                continue
            if query.kind and state.request.kind.value != query.kind:
                continue
            if query.label and state.request.labels.get(label_key) != label_value:
                continue
            if query.since and state.created_at < query.since:
                continue
            items.append(state)
        items.sort(key=lambda s: s.created_at, reverse=True)
        await req.respond(encoder.encode(RequestList(items=items[: max(1, query.limit)])))
