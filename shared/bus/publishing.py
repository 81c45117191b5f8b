"""Publishing step commands (de-duplicated by Nats-Msg-Id) and events.

A step command's message id is ``<request-id>.<step>.<generation>``: whoever forwards a request to a
step — the intake, a replica finishing the previous step, a redelivery of it — publishes the same id,
so JetStream stores the command once within the de-duplication window.
"""

from __future__ import annotations

import logging

from nats.errors import Error as NatsError
from nats.js import JetStreamContext
from nats.js.errors import Error as JsError

from shared.contracts import subjects
from shared.contracts.errors import TemporaryError
from shared.contracts.events import Event, event_encoder, event_kind
from shared.contracts.steps import StepCommand, command_encoder

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


async def publish_event(js: JetStreamContext, event: Event, *, msg_id: str = "") -> None:
    """Publish an event into the events stream. Losing an event must not fail a step: log and go on.

    ``msg_id`` makes a repeated publish (a retry after a crash) a no-op within the stream's
    de-duplication window."""
    try:
        await js.publish(
            subjects.event_subject(event.request_id, event_kind(event)),
            event_encoder.encode(event),
            headers={"Nats-Msg-Id": msg_id} if msg_id else None,
        )
    except (NatsError, JsError, TimeoutError) as e:
        log.warning("event %s of %s not published: %s", event_kind(event), event.request_id, e)
