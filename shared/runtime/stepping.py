"""A step service: consume ``ferry.step.<step>``, do the step once, record it, forward the slip.

For each delivered command the runner (1) claims the step by compare-and-set on the request state
— a finished step is not done again, a step another replica holds with a live lease is retried
later, a step whose holder died is taken over; (2) runs ``handle`` with a ``StepContext`` that
renews the lease, emits events and checks for cancellation; (3) reads the handler's typed outcome
(``shared.runtime.outcomes``) in one ``match``: a success is recorded and the next step of the
itinerary published with a de-duplicating message id; a retry, a failure or a cancellation goes to
the consumer as Ferry's error, which NAKs with backoff, TERMinates or acks. Any crash between those
writes is repaired by the redelivery: the claim sees the recorded result and only forwards again.

Recovery takes seconds, not minutes (docs/recovery.md). The lease is short (10 s by default) and
renewed four times per lease while the handler runs; the message's ack wait is shorter still and
kept alive by heartbeats. So a killed replica's message comes back after the ack wait, and its step
is taken over as soon as the lease runs out; a healthy step is never taken over, however long it
runs. A holder that finds its lease taken (it stalled, or lost NATS for longer than a lease) stops
its handler instead of finishing twice. A replica that drains hands a step it cannot finish within
the grace period back — lease cleared, message NAKed — so another one starts it at once.

A cutover (``request.cutover``) that fails finally or is cancelled leaves its source quiesced, so
the runner then submits its rollback (``rollbacks``) and records it on the request before it says
the request ended; a cutover the intake cancelled between two steps is caught by the next step's
delivery, which finds it over.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import ClassVar

from shared.bus.consuming import Backoff, Deferred, Delivery, StepConsumer, stop_background
from shared.bus.publishing import publish_event, publish_step
from shared.bus.states import RequestStore, utcnow
from shared.contracts import subjects
from shared.contracts.errors import Cancelled, PermanentError, TemporaryError, error_for
from shared.contracts.events import Event, PhaseChanged, Progress, StepCompleted, StepStarted, Warning
from shared.contracts.events import Failed as FailedEvent
from shared.contracts.requests import MobilityRequest
from shared.contracts.states import Phase, RequestState, StepStatus
from shared.contracts.steps import StepCommand, StepName, StepResult, command_decoder
from shared.runtime.lifecycle import Service
from shared.runtime.logs import request_context
from shared.runtime.outcomes import Failed, Outcome, RetryAfter, Succeeded, WasCancelled, outcome, reason_of
from shared.runtime.rollbacks import needs_rollback, noted, submit_rollback
from shared.runtime.settings import Settings

# Steps that run even after their request failed or was cancelled: they undo what earlier steps made.
RUN_AFTER_END = frozenset({StepName.CLEANUP})

log = logging.getLogger("ferry.runtime")


@dataclass(frozen=True)
class NotRun:
    """The request is over: nothing to do."""

    reason: str


@dataclass(frozen=True)
class CancelRequested:
    """The request was cancelled before this step started."""


@dataclass(frozen=True)
class AlreadyDone:
    """An earlier delivery finished the step: only forward the slip again."""


@dataclass(frozen=True)
class Busy:
    """Another replica holds a live lease on the step: try again after it."""

    retry_after: float


@dataclass(frozen=True)
class Claimed:
    """This replica now runs the step, as attempt ``attempt``."""

    attempt: int


# What claiming a delivered step decided (by compare-and-set on the request state), handled in one match.
Claim = NotRun | CancelRequested | AlreadyDone | Busy | Claimed


class StepContext:
    """What a step handler gets: the command, the state store, events, cancellation checkpoints."""

    def __init__(self, service: StepService, command: StepCommand, attempt: int) -> None:
        self.service = service
        self.command = command
        self.attempt = attempt
        self.bytes_counted = 0  # bytes already added to ferry_bytes_total by ``count_bytes``
        self._last_progress: dict[str, float] = {}

    @property
    def request_id(self) -> str:
        return self.command.request_id

    @property
    def request(self) -> MobilityRequest:
        return self.command.request

    @property
    def outputs(self) -> dict[str, str]:
        return self.command.outputs

    async def emit(self, event: Event) -> None:
        await publish_event(self.service.js, event)

    async def warn(self, message: str, obj: str = "") -> None:
        await self.emit(
            Warning(request_id=self.request_id, step=self.command.step, message=message, object=obj)
        )

    async def progress(
        self,
        *,
        throttle: float = 0.5,
        bytes_done: int = 0,
        bytes_total: int = 0,
        items_done: int = 0,
        items_total: int = 0,
        volume: str = "",
        message: str = "",
    ) -> None:
        """Publish progress at most every ``throttle`` seconds per volume (always when done)."""
        now = time.monotonic()
        done = bytes_total and bytes_done == bytes_total
        if not done and now - self._last_progress.get(volume, 0.0) < throttle:
            return
        self._last_progress[volume] = now
        await self.emit(
            Progress(
                request_id=self.request_id,
                step=self.command.step,
                bytes_done=bytes_done,
                bytes_total=bytes_total,
                items_done=items_done,
                items_total=items_total,
                volume=volume,
                message=message,
            )
        )

    def count_bytes(self, n: int) -> None:
        """Add bytes to ``ferry_bytes_total`` as they move, so that an attempt that fails or is
        interrupted counts its work too (the result's ``bytes_moved`` only tops up the rest)."""
        if n > 0:
            self.service.metrics.bytes(step=self.command.step.value).inc(n)
            self.bytes_counted += n

    async def checkpoint(self) -> None:
        """Raise Cancelled if the request was cancelled. Call between units of work. A step that runs
        after the end (a drill's cleanup) is never cancelled: it is what a cancellation still owes."""
        if self.command.step in RUN_AFTER_END:
            return
        state, _ = await self.service.store.get(self.request_id)
        if state.cancel_requested or state.phase is Phase.CANCELLED:
            raise Cancelled(f"request {self.request_id} was cancelled")


Checkpoint = Callable[[], Awaitable[None]]


def throttled(check: Checkpoint, every: float) -> Checkpoint:
    """``check`` at most every ``every`` seconds (a cancellation check reads the request's state)."""
    last = 0.0

    async def maybe() -> None:
        nonlocal last
        if time.monotonic() - last >= every:
            last = time.monotonic()
            await check()

    return maybe


class StepService(Service):
    """Subclass, set ``step``, implement ``handle``. Runs ``settings.concurrency`` steps at once."""

    step: ClassVar[StepName]

    def __init__(self, settings: Settings, *, instance: str = "") -> None:
        super().__init__(settings, instance=instance)
        self._consumer: StepConsumer | None = None
        self.store: RequestStore

    async def handle(self, ctx: StepContext) -> Outcome | StepResult:
        """Do the step once; say how it ended (``shared.runtime.outcomes``). A bare ``StepResult``
        means ``Succeeded``; an exception raised inside becomes an outcome in ``outcome_of``."""
        raise NotImplementedError

    async def setup(self) -> None:
        self.store = RequestStore(self.topology.requests, self.topology.js)
        self._consumer = StepConsumer(
            self.js,
            stream=subjects.STEPS_STREAM,
            durable=subjects.step_consumer(self.step),
            subject=subjects.step_subject(self.step),
            handler=self._deliver,
            on_failure=self._failed,
            concurrency=self.settings.concurrency,
            ack_wait=self.settings.ack_wait,
            max_attempts=self.settings.max_attempts,
            backoff=Backoff(),
        )
        await self._consumer.bind()
        self.spawn("consumer", self._consumer.run())

    async def on_drain(self) -> None:
        if self._consumer is not None:
            await self._consumer.drain(self.settings.drain_grace)

    # --- the routing slip -------------------------------------------------------------------
    async def _deliver(self, delivery: Delivery) -> None:
        command = command_decoder.decode(delivery.data)
        with request_context(command.request_id, command.step.value):
            await self._run(command, delivery)

    async def _run(self, command: StepCommand, delivery: Delivery) -> None:
        decision, state = await self._claim(command)
        match decision:
            case NotRun(reason=reason):
                log.info("step %s not run: %s", command.step.value, reason)
                await self._start_rollback_late(command, state)
                if state.phase in (Phase.FAILED, Phase.CANCELLED):  # cancelled between steps
                    await self._start_cleanup(command, state)
            case CancelRequested():
                await self._finish_cancelled(command)
            case Busy(retry_after=wait):
                raise Deferred("another replica is running this step", retry_after=wait)
            case AlreadyDone():
                log.info("step %s already done; forwarding again", command.step.value)
                await self._forward(command, state)
            case Claimed(attempt=attempt):
                await self._announce(command, attempt)
                ctx = StepContext(self, command, attempt)
                started = time.monotonic()
                await self._conclude(ctx, await self._supervise(ctx), started)

    async def _claim(self, command: StepCommand) -> tuple[Claim, RequestState]:
        """Decide, by compare-and-set on the request state, what this delivery does."""
        lease = self.settings.lease
        decision: Claim = Claimed(attempt=0)

        def claim(state: RequestState) -> bool:
            nonlocal decision
            step = state.step_state(command.step)
            now = time.time()
            after_end = command.step in RUN_AFTER_END  # a drill's cleanup runs even when it failed
            if state.phase.final and not (after_end and state.phase in (Phase.FAILED, Phase.CANCELLED)):
                decision = NotRun(reason=f"request is {state.phase.value}")
            elif state.cancel_requested and not after_end:
                decision = CancelRequested()
            elif step.status.done:
                decision = AlreadyDone()
            elif step.status is StepStatus.RUNNING and step.owner != self.instance and step.lease_until > now:
                decision = Busy(retry_after=step.lease_until - now)
            else:
                step.status, step.owner, step.lease_until = StepStatus.RUNNING, self.instance, now + lease
                step.attempts += 1
                step.started_at = step.started_at or utcnow()
                if not state.phase.final:  # a cleanup after the end leaves the request's outcome
                    state.phase = Phase.IN_PROGRESS
                decision = Claimed(attempt=step.attempts)
            return isinstance(decision, Claimed)

        state = await self.store.update(command.request_id, claim)
        return decision, state

    async def _announce(self, command: StepCommand, attempt: int) -> None:
        log.info("step %s started (attempt %d)", command.step.value, attempt)
        await publish_event(
            self.js, StepStarted(request_id=command.request_id, step=command.step, attempt=attempt)
        )
        if attempt == 1 and command.index == 0:
            await publish_event(self.js, PhaseChanged(request_id=command.request_id, phase=Phase.IN_PROGRESS))

    async def _supervise(self, ctx: StepContext) -> Outcome:
        """Run the handler while renewing the lease; its outcome, whatever it raised.

        Cancelled from outside, it does not return: a lost lease defers the message (the new holder
        records the step), a drain lets the handler stop and hands the step back.
        """
        command = ctx.command
        stop_renewing, lost = asyncio.Event(), asyncio.Event()
        work = asyncio.create_task(outcome(self.handle(ctx)), name=f"step:{command.request_id}")
        renewer = asyncio.create_task(
            self._renew_lease(command, stop_renewing, work, lost), name=f"lease:{command.request_id}"
        )
        self.metrics.in_progress.inc()
        try:
            return await work
        except asyncio.CancelledError:
            current = asyncio.current_task()
            if lost.is_set() and current is not None and not current.cancelling():
                # Another replica holds the step now: leave it alone, never record it twice.
                raise Deferred(
                    "lost the lease: another replica took this step over", retry_after=self.settings.lease
                ) from None
            # Drained mid-step: let the handler stop (it saves what it can), then hand the step back.
            work.cancel()
            await asyncio.gather(work, return_exceptions=True)
            await stop_background(renewer, stop_renewing)
            await self._hand_back(command)
            raise
        finally:
            self.metrics.in_progress.dec()
            await stop_background(renewer, stop_renewing)

    async def _conclude(self, ctx: StepContext, ending: Outcome, started: float) -> None:
        """Act on the handler's outcome: the one place that reads it.

        A success is recorded and forwarded here; a retry or a failure is raised to the consumer as
        Ferry's error, which NAKs with backoff (honouring the delay) or TERMinates, and records it
        through ``_failed``; a cancellation ends the request as Cancelled and acks the message.
        """
        command = ctx.command
        match ending:
            case Succeeded(result=result):
                log.info("step %s finished in %.1fs", command.step.value, time.monotonic() - started)
                self.metrics.step_seconds(step=command.step.value).observe(time.monotonic() - started)
                await self._succeeded(ctx, result)
            case RetryAfter(reason=reason, delay=delay, error=error):
                raise TemporaryError(reason, retry_after=delay) from error
            case Failed(reason=reason, code=code, error=error):
                coded = error_for(code, reason)  # the taxonomy's class: the code reaches the consumer
                raise (coded if isinstance(coded, PermanentError) else PermanentError(reason)) from error
            case WasCancelled(reason=reason):
                await self._finish_cancelled(command)
                raise Cancelled(reason)

    async def _succeeded(self, ctx: StepContext, result: StepResult) -> None:
        command = ctx.command
        self.metrics.steps(
            step=command.step.value, outcome="partial" if result.partial else "succeeded"
        ).inc()
        ctx.count_bytes(result.bytes_moved - ctx.bytes_counted)
        state = await self._record(command, result)
        await publish_event(
            self.js,
            StepCompleted(
                request_id=command.request_id,
                step=command.step,
                outputs=result.outputs,
                counts=result.counts,
                partial=result.partial,
                message=result.message,
            ),
        )
        await self._forward(command, state)

    async def _renew_lease(
        self, command: StepCommand, stop: asyncio.Event, work: asyncio.Task[Outcome], lost: asyncio.Event
    ) -> None:
        """Renew the lease four times per lease; if another replica took the step, stop ``work``."""
        taken: list[str] = []  # who holds the step instead of us, as the last renewal found
        while not stop.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), self.settings.lease / 4)
                return

            def renew(state: RequestState) -> bool:
                step = state.step_state(command.step)
                taken.clear()
                if step.status.done or state.phase.final:
                    return False  # recorded meanwhile (by us, or cancelled): nothing to renew
                if step.owner != self.instance or step.status is not StepStatus.RUNNING:
                    taken.append(step.owner or step.status.value)
                    return False
                step.lease_until = time.time() + self.settings.lease
                return True

            try:
                await self.store.update(command.request_id, renew)
            except Exception as e:  # a missed renewal is not fatal; the next one may pass
                log.warning("lease renewal failed: %s", e)
                continue
            if taken and not stop.is_set():
                log.warning("lease of step %s lost to %s; stopping this run", command.step.value, taken[0])
                lost.set()
                work.cancel()
                return

    async def _hand_back(self, command: StepCommand) -> None:
        """Give a step this replica stops before its end back: Pending, no owner, no lease, so the
        next delivery starts it without waiting for the lease to run out. Bounded: shutting down."""

        def release(state: RequestState) -> bool:
            step = state.step_state(command.step)
            if step.owner != self.instance or step.status is not StepStatus.RUNNING:
                return False
            step.status, step.owner, step.lease_until = StepStatus.PENDING, "", 0.0
            return True

        try:
            await asyncio.wait_for(asyncio.shield(self.store.update(command.request_id, release)), 3.0)
            log.info("step %s handed back", command.step.value)
        except Exception as e:  # the lease then simply runs out
            log.warning("could not hand step %s back: %s", command.step.value, e)

    async def _record(self, command: StepCommand, result: StepResult) -> RequestState:
        last = command.index == len(command.itinerary) - 1

        def done(state: RequestState) -> bool:
            step = state.step_state(command.step)
            step.status = StepStatus.PARTIALLY_FAILED if result.partial else StepStatus.SUCCEEDED
            step.result, step.finished_at, step.owner, step.error = result, utcnow(), "", ""
            if last and not state.phase.final:
                partial = any(s.status is StepStatus.PARTIALLY_FAILED for s in state.steps)
                state.phase = Phase.PARTIALLY_FAILED if partial else Phase.COMPLETED
                if partial:
                    state.reason = "; ".join(
                        f"{s.step.value}: {s.result.message}"
                        for s in state.steps
                        if s.result and s.result.partial
                    )
            return True

        return await self.store.update(command.request_id, done)

    async def _forward(self, command: StepCommand, state: RequestState) -> None:
        nxt = command.index + 1
        if nxt >= len(command.itinerary):
            if state.phase.final:
                await publish_event(
                    self.js,
                    PhaseChanged(request_id=command.request_id, phase=state.phase, reason=state.reason),
                )
            return
        following = StepCommand(
            request_id=command.request_id,
            step=command.itinerary[nxt],
            index=nxt,
            itinerary=command.itinerary,
            request=command.request,
            outputs={**command.outputs, **state.outputs},
        )
        await publish_step(self.js, following)

    async def _finish_cancelled(self, command: StepCommand) -> None:
        def cancel(state: RequestState) -> bool:
            if state.phase is Phase.CANCELLED:
                return False
            step = state.step_state(command.step)
            step.status, step.owner, step.finished_at = StepStatus.CANCELLED, "", utcnow()
            state.phase, state.reason = Phase.CANCELLED, state.reason or "cancelled by request"
            return True

        state = await self._start_rollback(await self.store.update(command.request_id, cancel))
        await self._start_cleanup(command, state)
        await publish_event(
            self.js, PhaseChanged(request_id=command.request_id, phase=Phase.CANCELLED, reason=state.reason)
        )

    async def _start_cleanup(self, command: StepCommand, state: RequestState) -> None:
        """A drill that failed or was cancelled before its cleanup step: send the slip on to that step
        now, so what it restored is removed (and the drill measured) however it ended."""
        steps = list(command.itinerary)
        later = [s for s in steps[command.index + 1 :] if s in RUN_AFTER_END]
        if not later:
            return
        index = steps.index(later[0])
        await publish_step(
            self.js,
            StepCommand(
                request_id=command.request_id,
                step=later[0],
                index=index,
                itinerary=command.itinerary,
                request=command.request,
                outputs={**command.outputs, **state.outputs},
            ),
        )

    async def _start_rollback(self, state: RequestState) -> RequestState:
        """A cutover that just ended failed or cancelled: submit its rollback and record it (or why it
        could not be), so the reason the request ends with says what happens to the source."""
        if not needs_rollback(state) or self.nc is None:
            return state
        rollback_id, note = await submit_rollback(self.nc, state)
        return await self.store.update(state.id, lambda s: noted(s, rollback_id, note))

    async def _start_rollback_late(self, command: StepCommand, state: RequestState) -> None:
        """A cutover the intake cancelled while no step ran (so no runner saw it end): its next step's
        delivery finds it over and starts the rollback, with a warning event saying so."""
        if not needs_rollback(state):
            return
        before = state.reason
        state = await self._start_rollback(state)
        if state.reason != before:
            await publish_event(
                self.js, Warning(request_id=command.request_id, step=command.step, message=state.reason)
            )

    async def _failed(self, delivery: Delivery, error: BaseException, final: bool) -> None:
        try:
            command = command_decoder.decode(delivery.data)
        except Exception:
            log.error("dropped a step message that does not decode: %s", error)
            return
        temporary = not final and not isinstance(error, PermanentError)
        reason = reason_of(error)
        with request_context(command.request_id, command.step.value):
            self.metrics.steps(step=command.step.value, outcome="failed" if final else "retried").inc()

            def fail(state: RequestState) -> bool:
                step = state.step_state(command.step)
                if step.status.done:
                    return False
                step.error, step.owner = reason, ""
                if final:
                    step.status, step.finished_at = StepStatus.FAILED, utcnow()
                    state.phase = Phase.FAILED
                    state.reason = (
                        f"{command.step.value} failed after {delivery.attempt} attempt(s): {reason}"
                    )
                else:
                    step.status = StepStatus.PENDING
                return True

            state = await self.store.update(command.request_id, fail)
            if final:
                state = await self._start_rollback(state)
                await self._start_cleanup(command, state)
            await publish_event(
                self.js,
                FailedEvent(
                    request_id=command.request_id,
                    step=command.step,
                    reason=reason,
                    temporary=temporary,
                    attempt=delivery.attempt,
                    max_attempts=delivery.max_attempts,
                ),
            )
            if final:
                await publish_event(
                    self.js,
                    PhaseChanged(request_id=command.request_id, phase=Phase.FAILED, reason=state.reason),
                )
