"""Ferry's use of NATS: connecting, the JetStream topology, durable step consumers, request state.

Only this package talks to nats-py, and it turns nats errors into Ferry's own (shared.contracts.errors).
"""

from shared.bus.connecting import BusSettings, connect
from shared.bus.consuming import Backoff, Deferred, Delivery, StepConsumer
from shared.bus.publishing import publish_event, publish_step
from shared.bus.states import RequestStore, StateConflict
from shared.bus.topology import Topology, ensure_topology

__all__ = [
    "Backoff",
    "BusSettings",
    "Deferred",
    "Delivery",
    "RequestStore",
    "StateConflict",
    "StepConsumer",
    "Topology",
    "connect",
    "ensure_topology",
    "publish_event",
    "publish_step",
]
