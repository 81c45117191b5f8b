"""A durable pull consumer on the work-queue stream: the loop every step service runs.

Each replica of a service binds the same durable consumer, so JetStream shares the work among them.
The loop keeps at most ``concurrency`` messages in hand and, for each one, classifies how the
handler ended: success acks; a temporary error NAKs with a delay from Ferry's one retry policy
(``shared.retrying``: attempt n/N, Retry-After honoured) until the attempts run out; a permanent
error — or a message that does not decode — is recorded and TERMinated. On drain, in-flight
handlers get a grace period; those still running are cancelled and NAKed so another replica resumes.

The ack wait is short (5 s by default) so that a message whose replica was killed comes back within
seconds; a healthy step however long keeps its message with ``in_progress`` heartbeats, three per
ack wait. ``bind`` creates the durable consumer *or updates it*, so a changed ack wait reaches a
consumer that an older release created.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import msgspec
from nats.aio.msg import Msg
from nats.errors import Error as NatsError
from nats.errors import TimeoutError as NatsTimeout
from nats.js import JetStreamContext
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy

from shared.contracts.errors import Cancelled, PermanentError, TemporaryError
from shared.retrying import RetryPolicy, delay

log = logging.getLogger("ferry.bus")


class Deferred(TemporaryError):
    """Not a failure: come back later (another replica holds the work). Never counts as final."""


@dataclass(frozen=True)
class Backoff(RetryPolicy):
    """The NAK delays of a failed step message: Ferry's one retry policy with a step's patience.

    A redelivery waits ``initial * 2^(attempt-1)`` seconds (up to ``maximum``, less up to 10 %
    jitter) or what the error's ``retry_after`` asks, capped at ``maximum``. The number of attempts
    is the consumer's ``max_attempts``, counted by JetStream's deliveries, not ``attempts``.
    """

    initial: float = 1.0
    maximum: float = 60.0
    jitter: float = 0.1


# Pauses between failed fetches while NATS restarts: 0.1 s doubling to 5 s, no jitter needed.
FETCH_PAUSE = RetryPolicy(initial=0.1, maximum=5.0, jitter=0.0)


async def stop_background(task: asyncio.Task[None], stop: asyncio.Event, grace: float = 5.0) -> None:
    """Stop a helper loop for sure: signal it, cancel it, and wait a bounded time.

    Signalling matters: a library call inside the loop may swallow a cancellation (nats-py turns
    some into timeouts), and a bare ``await task`` would then wait forever.
    """
    stop.set()
    task.cancel()
    done, _ = await asyncio.wait({task}, timeout=grace)
    if not done:
        log.warning("%s did not stop within %.0fs", task.get_name(), grace)


@dataclass(frozen=True)
class Delivery:
    msg: Msg
    attempt: int  # 1 for the first delivery, counting redeliveries after a crash too
    max_attempts: int

    @property
    def data(self) -> bytes:
        return self.msg.data


Handler = Callable[[Delivery], Awaitable[None]]
# Called when a handler failed: (delivery, error, final) — final means the message is given up.
FailureHook = Callable[[Delivery, BaseException, bool], Awaitable[None]]


class StepConsumer:
    def __init__(
        self,
        js: JetStreamContext,
        *,
        stream: str,
        durable: str,
        subject: str,
        handler: Handler,
        on_failure: FailureHook | None = None,
        concurrency: int = 4,
        ack_wait: float = 30.0,
        max_attempts: int = 5,
        backoff: RetryPolicy | None = None,
    ) -> None:
        self._js = js
        self._stream, self._durable, self._subject = stream, durable, subject
        self._handler = handler
        self._on_failure = on_failure
        self._slots = asyncio.Semaphore(concurrency)
        self._concurrency = concurrency
        self._ack_wait = ack_wait
        self._max_attempts = max_attempts
        self._backoff = backoff or Backoff()
        self._stopping = asyncio.Event()
        self._tasks: set[asyncio.Task[None]] = set()
        self.handled = 0
        self._sub: JetStreamContext.PullSubscription | None = None

    async def bind(self) -> None:
        """Create (or join) the durable consumer. Idempotent; ``run`` calls it if needed."""
        if self._sub is not None:
            return
        config = ConsumerConfig(
            name=self._durable,
            durable_name=self._durable,
            ack_policy=AckPolicy.EXPLICIT,
            deliver_policy=DeliverPolicy.ALL,
            ack_wait=self._ack_wait,
            max_deliver=-1,
            filter_subject=self._subject,
            max_ack_pending=max(64, self._concurrency * 4),
        )
        try:  # create, or update the ack wait of a consumer created with other settings
            await self._js.add_consumer(self._stream, config)
        except NatsError as e:
            log.warning("could not create or update consumer %s (%s); binding as it is", self._durable, e)
        self._sub = await self._js.pull_subscribe(
            self._subject, durable=self._durable, stream=self._stream, config=config
        )

    async def run(self) -> None:
        """Fetch and handle messages until ``drain`` is called."""
        await self.bind()
        sub = self._sub
        assert sub is not None
        failures = 0  # fetches failed in a row
        try:
            while not self._stopping.is_set():
                free = await self._wait_for_slot()
                if free == 0:
                    break
                try:
                    messages = await sub.fetch(batch=free, timeout=1.0)
                    failures = 0
                except (NatsTimeout, TimeoutError):
                    continue
                except Exception as e:  # a NATS restart: keep trying, the client reconnects
                    failures += 1
                    pause = delay(FETCH_PAUSE, failures)
                    log.warning("fetch from %s raised %r; retrying in %.1fs", self._durable, e, pause)
                    await asyncio.sleep(pause)
                    continue
                for msg in messages:
                    await self._slots.acquire()
                    task = asyncio.create_task(self._handle(msg), name=f"{self._durable}:{msg.reply}")
                    self._tasks.add(task)
                    task.add_done_callback(self._tasks.discard)
        finally:
            with contextlib.suppress(NatsError, TimeoutError):
                await sub.unsubscribe()

    async def _wait_for_slot(self) -> int:
        while not self._stopping.is_set():
            free = self._concurrency - len(self._tasks)
            if free > 0:
                return free
            await asyncio.wait(set(self._tasks), return_when=asyncio.FIRST_COMPLETED, timeout=1.0)
        return 0

    async def drain(self, grace: float = 30.0) -> None:
        """Stop fetching; let in-flight handlers finish within ``grace``, then cancel them (idempotent)."""
        self._stopping.set()
        if not self._tasks:
            return
        _, pending = await asyncio.wait(set(self._tasks), timeout=grace)
        for task in pending:
            task.cancel()
        if pending:
            await asyncio.gather(*pending, return_exceptions=True)

    async def _heartbeat(self, msg: Msg, stop: asyncio.Event) -> None:
        while not stop.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), self._ack_wait / 3)
                return
            with contextlib.suppress(NatsError, TimeoutError):
                await msg.in_progress()

    async def _handle(self, msg: Msg) -> None:
        attempt = int(msg.metadata.num_delivered or 1)
        delivery = Delivery(msg=msg, attempt=attempt, max_attempts=self._max_attempts)
        stop = asyncio.Event()
        beat = asyncio.create_task(self._heartbeat(msg, stop), name=f"heartbeat:{self._durable}")
        try:
            await self._handler(delivery)
        except asyncio.CancelledError:
            with contextlib.suppress(NatsError, TimeoutError):
                await msg.nak()  # drained mid-step: let another replica resume it now
            raise
        except Cancelled:
            await self._settle(msg.ack())
        except Deferred as e:
            await self._settle(msg.nak(delay=delay(self._backoff, 1, e.retry_after)))
        except TemporaryError as e:
            final = attempt >= self._max_attempts
            await self._report(delivery, e, final)
            if final:
                await self._settle(msg.term())
            else:
                wait = delay(self._backoff, attempt, e.retry_after)
                log.warning(
                    "attempt %d/%d of %s failed, retrying in %.1fs: %s",
                    attempt,
                    self._max_attempts,
                    self._durable,
                    wait,
                    e,
                )
                await self._settle(msg.nak(delay=wait))
        except (PermanentError, msgspec.DecodeError, msgspec.ValidationError) as e:
            await self._report(delivery, e, True)
            await self._settle(msg.term())
        except Exception as e:  # a bug or an unwrapped library error: retry like a temporary one
            log.exception(
                "unexpected error in %s (attempt %d/%d)", self._durable, attempt, self._max_attempts
            )
            final = attempt >= self._max_attempts
            await self._report(delivery, e, final)
            await self._settle(msg.term() if final else msg.nak(delay=delay(self._backoff, attempt)))
        else:
            await self._settle(msg.ack())
            self.handled += 1
        finally:
            await stop_background(beat, stop)
            self._slots.release()

    async def _report(self, delivery: Delivery, error: BaseException, final: bool) -> None:
        if self._on_failure is None:
            return
        try:
            await self._on_failure(delivery, error, final)
        except Exception:
            log.exception("recording the failure of %s failed", self._durable)

    @staticmethod
    async def _settle(action: Awaitable[None]) -> None:
        try:
            await action
        except (NatsError, TimeoutError) as e:  # the message will be redelivered; steps are idempotent
            log.warning("could not settle a message: %s", e)
