"""Request intake on ``ferry.requests`` (request-reply), plus get, list and cancel.

Stateless: everything lives in JetStream KV, so any number of replicas answer in one queue group.
A submission is checked (the reply names the bad field and nothing is stored), de-duplicated by its
idempotency key (the same key and the same body return the same request id; the same key with a
different body is refused as a ``conflict`` naming the request that has it), stored as Queued, its ``phase → Queued``
event published, and only then its first step: a watcher of the request's events never sees a step
start before the request was queued. Both publishes carry de-duplicating message ids, so a crash
between any two of those writes is repaired by the client's retry with the same key: the stored
state is found, and the Queued event and the first step are published again (a no-op for whichever
JetStream has already).

A list reads every stored state, leaves out (and reports in ``skipped``) any that cannot be read, and
answers one page: at most ``limit`` items and never more bytes than one NATS message holds, with the
cursor of the next page in ``next``. The migration plans (``ferry.requests.migrations``) are computed
from the same stored states each time (nothing is stored twice), the most recently active first,
bounded the same way: at most ``MAX_LIST_LIMIT`` plans, within one NATS message.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import logging
import secrets

import msgspec

from shared.bus.micro import JetStreamContext, KeyNotFoundError, KeyWrongLastSequenceError, Request
from shared.bus.publishing import publish_event, publish_step
from shared.bus.states import RequestNotFound, RequestStore, StateConflict, StateUnreadable
from shared.contracts import subjects
from shared.contracts.errors import VALUE_LIMIT, Conflict, FerryError, TemporaryError, json_path
from shared.contracts.events import PhaseChanged
from shared.contracts.migrations import MigrationPlan, plans
from shared.contracts.requests import MobilityRequest, RequestInvalid, decode_request
from shared.contracts.states import (
    MAX_LIST_LIMIT,
    Accepted,
    ListQuery,
    Phase,
    Rejected,
    RequestList,
    RequestState,
    StepState,
    StepStatus,
    Unreadable,
)
from shared.contracts.steps import StepCommand, itinerary_for
from shared.runtime import Service

log = logging.getLogger("ferry.intake")
encoder = msgspec.json.Encoder()
list_query_decoder = msgspec.json.Decoder(ListQuery)
canonical = msgspec.json.Encoder(order="deterministic")  # maps sorted: the same request, the same bytes


class IdempotencyRecord(msgspec.Struct, frozen=True):
    """The value under an idempotency key's digest: the request it names and a digest of its body."""

    id: str
    body: str = ""  # "" in records written before bodies were compared


record_decoder = msgspec.json.Decoder(IdempotencyRecord)


def new_request_id(request: MobilityRequest) -> str:
    stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%d-%H%M%S")
    return f"{request.kind.value}-{stamp}-{secrets.token_hex(3)}"


def idempotency_digest(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def body_digest(request: MobilityRequest) -> str:
    """The same for two submissions of the same request, whatever the order of their keys."""
    return hashlib.sha256(canonical.encode(request)).hexdigest()


def idempotency_record(value: bytes) -> IdempotencyRecord:
    """A record, or one written by an older intake (the bare request id)."""
    try:
        return record_decoder.decode(value)
    except msgspec.DecodeError:
        return IdempotencyRecord(id=value.decode(errors="replace"))


def key_taken(key: str, existing: str) -> Conflict:
    shown = key if len(key) <= VALUE_LIMIT else f"{key[:VALUE_LIMIT]}…"
    return Conflict(
        f"idempotency key {shown} is taken: request {existing} was submitted with it and a different "
        "body; send the same body to get that request back, or use a new key"
    )


def cursor_of(state: RequestState) -> str:
    return f"{state.created_at}|{state.id}"


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
        await self.micro.add_endpoint(
            name="migrations",
            subject=subjects.MIGRATION_LIST,
            handler=self._migrations,
            queue_group="ferry-intake",
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
        except Conflict as e:
            self.metrics.requests(outcome="rejected").inc()
            await req.respond(
                encoder.encode(Rejected(error=str(e), field="$.idempotency_key", code="conflict"))
            )
            return
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
            body = body_digest(request)
            record = IdempotencyRecord(id=request_id, body=body)
            try:
                await self.topology.idempotency.create(digest, encoder.encode(record))
            except KeyWrongLastSequenceError:
                entry = await self.topology.idempotency.get(digest)
                first = idempotency_record(entry.value or b"")
                existing = first.id
                if first.body and first.body != body:
                    raise key_taken(request.idempotency_key, existing) from None
                try:
                    state, _ = await self.store.get(existing)
                except RequestNotFound:  # the first submission died before storing its state
                    return await self._store_and_queue(existing, request, duplicate=True)
                if not first.body and state.request != request:  # an older record: compare the requests
                    raise key_taken(request.idempotency_key, existing) from None
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
        except StateUnreadable as e:
            await req.respond(encoder.encode(Rejected(error=str(e), field="id", code="unreadable")))
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
        except StateUnreadable as e:
            await req.respond(encoder.encode(Rejected(error=str(e), field="id", code="unreadable")))
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
        if query.cursor and "|" not in query.cursor:
            await req.respond(
                encoder.encode(
                    Rejected(error="not a cursor of a request list (its `next`)", field="$.cursor")
                )
            )
            return
        try:
            page = await self.list_page(query)
        except FerryError as e:
            await req.respond(encoder.encode(Rejected(error=str(e), code="unavailable")))
            return
        await req.respond(encoder.encode(page))

    async def list_page(self, query: ListQuery) -> RequestList:
        """One page of the requests the query matches, newest first, within one NATS message."""
        label_key, _, label_value = query.label.partition("=")
        matched: list[RequestState] = []
        skipped: list[Unreadable] = []
        async for entry in self.store.entries():
            if isinstance(entry, Unreadable):
                log.warning("request %s left out of a list: %s", entry.id, entry.reason)
                skipped.append(entry)
                continue
            if query.phase and entry.phase.value != query.phase:
                continue
            if query.kind and entry.request.kind.value != query.kind:
                continue
            if query.label and entry.request.labels.get(label_key) != label_value:
                continue
            if query.since and entry.created_at < query.since:
                continue
            if query.cursor and cursor_of(entry) >= query.cursor:
                continue
            matched.append(entry)
        matched.sort(key=cursor_of, reverse=True)
        budget = self.reply_budget
        budget -= len(encoder.encode(skipped[:100]))
        items: list[RequestState] = []
        used = 0
        for state in matched[: min(max(1, query.limit), MAX_LIST_LIMIT)]:
            size = len(encoder.encode(state)) + 1
            if size > budget:  # a state stored before states were bounded: it cannot be listed
                skipped.append(
                    Unreadable(id=state.id, reason=f"its state ({size} bytes) is too large to list")
                )
                continue
            if used + size > budget:
                break
            items.append(state)
            used += size
        more = len(items) < len(matched) and items
        return RequestList(items=items, next=cursor_of(items[-1]) if more else "", skipped=skipped[:100])

    async def _migrations(self, req: Request) -> None:
        try:
            found = await self.migration_plans()
        except FerryError as e:
            await req.respond(encoder.encode(Rejected(error=str(e), code="unavailable")))
            return
        await req.respond(encoder.encode(found))

    async def migration_plans(self) -> list[MigrationPlan]:
        """Every application's plan, from the readable stored states, the most recently active first;
        as many as one NATS message holds (at most ``MAX_LIST_LIMIT``)."""
        states: list[RequestState] = []
        async for entry in self.store.entries():
            if isinstance(entry, Unreadable):
                log.warning("request %s left out of the migration plans: %s", entry.id, entry.reason)
                continue
            states.append(entry)
        budget = self.reply_budget
        kept: list[MigrationPlan] = []
        used = 0
        for plan in plans(states)[:MAX_LIST_LIMIT]:
            used += len(encoder.encode(plan)) + 1
            if used > budget:
                break
            kept.append(plan)
        return kept
