"""The nats-py names services and the CLI meet, re-exported from the one package that imports nats.

Services answer request-reply endpoints (``nats.micro``) and clients wait for replies; these are the
types and errors they handle. Importing them from here keeps ``nats`` behind ``shared.bus``, which
import-linter enforces (a service that imports ``nats`` directly fails ``make lint``).
"""

from nats.errors import NoRespondersError
from nats.errors import TimeoutError as ReplyTimeout
from nats.js import JetStreamContext
from nats.js.errors import KeyNotFoundError, KeyWrongLastSequenceError
from nats.micro.request import Request
from nats.micro.service import Service as MicroService

__all__ = [
    "JetStreamContext",
    "KeyNotFoundError",
    "KeyWrongLastSequenceError",
    "MicroService",
    "NoRespondersError",
    "ReplyTimeout",
    "Request",
]
