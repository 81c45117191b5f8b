"""Replication policies on the bus: their store, their schedule messages and their slot consumer.

- ``PolicyStore`` keeps one ``PolicyState`` per policy in the ``ferry-policies`` KV bucket, changed
  only by compare-and-set (as ``RequestStore`` does requests), so two intake replicas recording the
  same policy's slots, or a pause racing a slot, never lose each other's update.
- ``publish_schedule`` / ``cancel_schedule`` write and purge the policy's schedule messages (its
  replication schedule and, when it has one, its drill schedule); from then on nats-server fires the
  slots itself (JetStream message schedules), and no Ferry process keeps a timer. A pattern the
  server refuses comes back as ``Invalid`` naming the field.
- ``SlotConsumer`` reads the slots through one durable consumer shared by every intake replica, with
  at most one slot in hand across all of them (``max_ack_pending=1``): slots are handled in the order
  they fired, and two replicas never decide about two slots of a policy at once, so "is the previous
  run still going?" has one answer. Handling a slot is a few KV reads and one request-reply, so one at
  a time is plenty. Each slot says whether a later slot of its policy is already in the stream
  (``superseded``): one left waiting while Ferry was down is reported missed rather than run late.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import functools
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass

import msgspec
from nats.aio.msg import Msg
from nats.errors import Error as NatsError
from nats.errors import TimeoutError as NatsTimeout
from nats.js import JetStreamContext
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy, Header
from nats.js.errors import APIError, KeyNotFoundError, KeyWrongLastSequenceError
from nats.js.errors import Error as JsError
from nats.js.kv import KeyValue

from shared.bus.buckets import compare_and_set, stream_keys
from shared.bus.consuming import FETCH_PAUSE, Backoff
from shared.bus.states import utcnow
from shared.contracts.errors import Conflict, Invalid, NotFound, PermanentError, TemporaryError, clipped
from shared.contracts.errors import Unreadable as UnreadableError
from shared.contracts.policies import (
    SCHEDULES_STREAM,
    SLOT_CONSUMER,
    SLOT_PREFIX,
    Policy,
    PolicyState,
    Unreadable,
    drill_schedule_subject,
    drill_slot_subject,
    encoder,
    schedule_subject,
    slot_subject,
    state_decoder,
)
from shared.contracts.schedules import ScheduleInvalid, parse_schedule
from shared.retrying import RetryPolicy, delay

log = logging.getLogger("ferry.bus")

PATTERN_INVALID = 10189  # JetStream: "message schedules pattern is invalid"
TARGET_INVALID = 10190
ZONE_INVALID = 10223  # JetStream: "message schedules time zone is invalid"

PolicyChange = Callable[[PolicyState], bool]  # mutates in place; False for "no change"


class PolicyConflict(TemporaryError):
    """Someone else wrote the policy first (and the retries ran out)."""


class PolicyStore:
    """One ``PolicyState`` per policy name, written by compare-and-set."""

    def __init__(self, kv: KeyValue, js: JetStreamContext, *, max_conflicts: int = 50) -> None:
        self._kv, self._js = kv, js
        self._conflicts = RetryPolicy(attempts=max_conflicts, initial=0.0, jitter=0.0)

    async def create(self, state: PolicyState) -> None:
        """Store a new policy; ``Conflict`` naming ``$.name`` when one of that name exists."""
        state.status.created_at = state.status.updated_at = state.status.created_at or utcnow()
        try:
            await self._kv.create(state.policy.name, encoder.encode(state))
        except KeyWrongLastSequenceError as e:
            raise Conflict(f"a policy named {state.policy.name} exists", field="$.name") from e
        except (NatsError, JsError, TimeoutError) as e:
            raise TemporaryError(f"could not store policy {state.policy.name}: {e}") from e

    async def get(self, name: str) -> tuple[PolicyState, int]:
        try:
            entry = await self._kv.get(name)
        except KeyNotFoundError as e:
            raise NotFound(f"no policy named {name[:100]!r}", field="name") from e
        except (NatsError, JsError, TimeoutError) as e:
            raise TemporaryError(f"could not read policy {name}: {e}") from e
        if entry.value is None:
            raise NotFound(f"no policy named {name[:100]!r}", field="name")
        try:
            return state_decoder.decode(entry.value), int(entry.revision or 0)
        except msgspec.DecodeError as e:
            why = f"the stored policy {name} cannot be read: {clipped(str(e))}"
            raise UnreadableError(why, field="name") from e

    async def update(self, name: str, change: PolicyChange) -> PolicyState:
        """Apply ``change`` atomically: read, change, compare-and-set, again on a conflict."""

        async def write(state: PolicyState, revision: int) -> None:
            state.status.updated_at = utcnow()
            try:
                await self._kv.update(name, encoder.encode(state), last=revision)
            except KeyWrongLastSequenceError as e:
                raise PolicyConflict(f"policy {name} changed since revision {revision}") from e
            except (NatsError, JsError, TimeoutError) as e:
                raise TemporaryError(f"could not update policy {name}: {e}") from e

        return await compare_and_set(
            functools.partial(self.get, name),
            change,
            write,
            policy=self._conflicts,
            conflict=PolicyConflict,
            what=f"update of policy {name}",
        )

    async def delete(self, name: str) -> None:
        try:
            await self._kv.purge(name)
        except (NatsError, JsError, TimeoutError) as e:
            raise TemporaryError(f"could not delete policy {name}: {e}") from e

    async def names(self) -> list[str]:
        """Every policy name, read from the bucket's stream (``buckets.stream_keys`` says why)."""
        return sorted(await stream_keys(self._kv, self._js, "policies"))

    async def entries(self) -> AsyncIterator[PolicyState | Unreadable]:
        """Every stored policy, or what says why it could not be read."""
        for name in await self.names():
            try:
                state, _ = await self.get(name)
            except NotFound:
                continue  # deleted: a purge marker
            except (PermanentError, TemporaryError) as e:
                yield Unreadable(name=name, reason=str(e))
                continue
            yield state


# --- the schedule message ---------------------------------------------------------------------------
async def publish_schedule(js: JetStreamContext, policy: Policy) -> None:
    """Write (or replace: the server rolls the subject up) the schedule messages of ``policy``: its
    replication schedule, and its drill schedule when it has one."""
    await _publish(js, policy, schedule_subject(policy.name), slot_subject(policy.name), "schedule")
    if policy.drill_schedule.strip():
        subjects = (drill_schedule_subject(policy.name), drill_slot_subject(policy.name))
        await _publish(js, policy, *subjects, "drill_schedule")


async def _publish(js: JetStreamContext, policy: Policy, subject: str, target: str, field: str) -> None:
    pattern = str(getattr(policy, field)).strip()
    headers: dict[str, str] = {Header.SCHEDULE: pattern, Header.SCHEDULE_TARGET: target}
    if policy.time_zone and _is_cron(pattern):  # a zone with @every is refused by the server
        headers[Header.SCHEDULE_TIME_ZONE] = policy.time_zone
    try:
        await js.publish(subject, policy.name.encode(), headers=headers)
    except APIError as e:
        if e.err_code == PATTERN_INVALID:
            raise Invalid(f"nats-server refused the schedule: {e.description}", field=f"$.{field}") from e
        if e.err_code == ZONE_INVALID:
            raise Invalid(f"nats-server refused the time zone: {e.description}", field="$.time_zone") from e
        raise TemporaryError(f"could not schedule policy {policy.name}: {e.description or e}") from e
    except (NatsError, JsError, TimeoutError) as e:
        raise TemporaryError(f"could not schedule policy {policy.name}: {e}") from e


def _is_cron(pattern: str) -> bool:
    try:
        return parse_schedule(pattern).cron
    except ScheduleInvalid:
        return True  # the server says what is wrong with it


async def cancel_schedule(js: JetStreamContext, name: str, *, slots: bool = False) -> None:
    """Stop a policy's slots (purge its schedule messages); with ``slots``, drop its waiting slots too."""
    subjects = [schedule_subject(name), drill_schedule_subject(name)]
    if slots:
        subjects += [slot_subject(name), drill_slot_subject(name)]
    try:
        for subject in subjects:
            await js.purge_stream(SCHEDULES_STREAM, subject=subject)
    except (NatsError, JsError, TimeoutError) as e:
        raise TemporaryError(f"could not stop the schedule of policy {name}: {e}") from e


# --- the slots ----------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Slot:
    """One slot the server fired: the policy, its time (stream time, to the second) and more."""

    policy: str
    kind: str  # "replicate", or "drill" for a slot of the drill schedule
    at: dt.datetime  # UTC, truncated to the second: the same for every delivery of the message
    sequence: int
    attempt: int  # 1 for the first delivery
    superseded: bool  # a later slot of the same policy is in the stream already

    @property
    def at_text(self) -> str:
        return self.at.strftime("%Y-%m-%dT%H:%M:%SZ")

    @property
    def key(self) -> str:
        """The slot as a token of an idempotency key: ``20261205T065901Z``."""
        return self.at.strftime("%Y%m%dT%H%M%SZ")


SlotHandler = Callable[[Slot], Awaitable[None]]


class SlotConsumer:
    """The durable consumer of every policy's slots; one slot in hand across all replicas."""

    def __init__(
        self,
        js: JetStreamContext,
        handler: SlotHandler,
        *,
        durable: str = SLOT_CONSUMER,
        ack_wait: float = 30.0,
        backoff: RetryPolicy | None = None,
    ) -> None:
        self._js, self._handler, self._durable = js, handler, durable
        self._ack_wait = ack_wait
        self._backoff = backoff or Backoff(maximum=30.0)
        self._stopping = asyncio.Event()
        self.stopped = asyncio.Event()
        self.handled = 0

    async def run(self) -> None:
        """Fetch and handle slots one at a time until ``stop``."""
        config = ConsumerConfig(
            name=self._durable,
            durable_name=self._durable,
            ack_policy=AckPolicy.EXPLICIT,
            deliver_policy=DeliverPolicy.ALL,
            ack_wait=self._ack_wait,
            max_deliver=-1,
            filter_subject=f"{SLOT_PREFIX}.>",
            max_ack_pending=1,
        )
        try:
            with contextlib.suppress(NatsError):  # exists with other settings: bind as it is
                await self._js.add_consumer(SCHEDULES_STREAM, config)
            sub = await self._js.pull_subscribe(
                f"{SLOT_PREFIX}.>", durable=self._durable, stream=SCHEDULES_STREAM, config=config
            )
            await self._loop(sub)
        finally:
            self.stopped.set()

    async def _loop(self, sub: JetStreamContext.PullSubscription) -> None:
        failures = 0
        try:
            while not self._stopping.is_set():
                try:
                    messages = await sub.fetch(batch=1, timeout=1.0)
                    failures = 0
                except (NatsTimeout, TimeoutError):
                    continue
                except Exception as e:  # a NATS restart: the client reconnects, keep trying
                    failures += 1
                    pause = delay(FETCH_PAUSE, failures)
                    log.warning("fetch from %s raised %r; retrying in %.1fs", self._durable, e, pause)
                    await asyncio.sleep(pause)
                    continue
                for msg in messages:
                    await self._handle(msg)
        finally:
            with contextlib.suppress(NatsError, TimeoutError):
                await sub.unsubscribe()

    def stop(self) -> None:
        self._stopping.set()

    async def _handle(self, msg: Msg) -> None:
        meta = msg.metadata
        attempt = int(meta.num_delivered or 1)
        policy, _, kind = msg.subject.removeprefix(f"{SLOT_PREFIX}.").partition(".")
        slot = Slot(
            policy=policy,
            kind=kind or "replicate",
            at=meta.timestamp.astimezone(dt.UTC).replace(microsecond=0),
            sequence=meta.sequence.stream,
            attempt=attempt,
            superseded=await self._superseded(msg.subject, meta.sequence.stream),
        )
        try:
            await self._handler(slot)
        except TemporaryError as e:
            wait = delay(self._backoff, attempt, e.retry_after)
            log.warning(
                "slot %s of %s (attempt %d) failed, again in %.1fs: %s",
                slot.at_text,
                slot.policy,
                attempt,
                wait,
                e,
            )
            await _settle(msg.nak(delay=wait))
        except PermanentError as e:
            log.error("slot %s of %s given up: %s", slot.at_text, slot.policy, e)
            await _settle(msg.term())
        except Exception:  # a bug or an unwrapped library error: try again later
            log.exception(
                "slot %s of %s failed unexpectedly (attempt %d)", slot.at_text, slot.policy, attempt
            )
            await _settle(msg.nak(delay=delay(self._backoff, attempt)))
        else:
            await _settle(msg.ack())
            self.handled += 1

    async def _superseded(self, subject: str, sequence: int) -> bool:
        """Whether a later slot of this policy is in the stream (best effort: False if unknown)."""
        try:
            last = await self._js.get_last_msg(SCHEDULES_STREAM, subject)
        except (NatsError, JsError, TimeoutError) as e:
            log.debug("could not read the last slot on %s: %s", subject, e)
            return False
        return int(last.seq or 0) > sequence


async def _settle(action: Awaitable[None]) -> None:
    try:
        await action
    except (NatsError, TimeoutError) as e:  # redelivered later: handling a slot is idempotent
        log.warning("could not settle a slot: %s", e)
