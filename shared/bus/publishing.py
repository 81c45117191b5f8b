"""Publishing step commands (de-duplicated by Nats-Msg-Id) and events.

A step command's message id is ``<request-id>.<step>.<generation>``: whoever forwards a request to a
step — the intake, a replica finishing the previous step, a redelivery of it — publishes the same id,
so JetStream stores the command once within the de-duplication window.
"""

from __future__ import annotations

import logging
import uuid

from nats.errors import Error as NatsError
from nats.js import JetStreamContext
from nats.js.errors import Error as JsError
from nats.js.errors import NoStreamResponseError, ServiceUnavailableError

from shared.contracts import subjects
from shared.contracts.errors import TemporaryError
from shared.contracts.events import Event, event_encoder, event_kind
from shared.contracts.steps import StepCommand, command_encoder
from shared.retrying import RetryPolicy, retrying

log = logging.getLogger("ferry.bus")


async def publish_step(js: JetStreamContext, command: StepCommand, *, generation: int = 0) -> bool:
    """Publish a step command once; returns False when JetStream had it already (a duplicate)."""
    msg_id = f"{command.request_id}.{command.step.value}.{generation}"
    try:
        ack = await js.publish(
            subjects.step_subject(command.step),
            command_encoder.encode(command),
            headers={"Nats-Msg-Id": msg_id},
        )
    except (NatsError, JsError, TimeoutError) as e:
        raise TemporaryError(f"could not queue step {command.step.value} of {command.request_id}: {e}") from e
    return not ack.duplicate


# What a stream leader election (a lost NATS node) looks like to a publisher: no stream answers, it
# answers 503, or the ack times out. Seconds, not minutes; an event is worth waiting that long for.
_ELECTION = (NoStreamResponseError, ServiceUnavailableError, TimeoutError)  # nats' timeout is one
EVENT_RETRY = RetryPolicy(attempts=10, initial=0.2, maximum=2.0, budget=15.0)


async def publish_event(
    js: JetStreamContext, event: Event, *, msg_id: str = "", policy: RetryPolicy = EVENT_RETRY
) -> None:
    """Publish an event into the events stream. Losing an event must not fail a step: log and go on.

    While the stream elects a leader (a NATS node lost) the publish is retried for ``policy``'s
    budget, under one message id so that a retry after a lost ack stores the event once; ``msg_id``
    makes a repeated publish (a retry after a crash) a no-op within the stream's de-duplication window."""
    kind = event_kind(event)
    headers = {"Nats-Msg-Id": msg_id or f"{event.request_id}.{kind}.{uuid.uuid4().hex}"}
    publish = retrying(policy, retry_on=_ELECTION, what=f"event {kind} of {event.request_id}", logger=log)
    try:
        await publish(
            js.publish,
            subjects.event_subject(event.request_id, kind),
            event_encoder.encode(event),
            headers=headers,
        )
    except (NatsError, JsError, TimeoutError) as e:
        log.warning("event %s of %s not published: %s", kind, event.request_id, e)
