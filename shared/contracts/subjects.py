"""Every NATS subject, stream, consumer and bucket name Ferry uses, in one place.

Services and clients build names only through this module, so the bus layout can be read (and
changed) here alone — the same role Velero's object_store_layout.go plays for its bucket.
"""

from __future__ import annotations

import re

from shared.contracts.steps import StepName

PREFIX = "ferry"

# Request intake and queries (core NATS request-reply, answered by the intake service's replicas).
REQUESTS = f"{PREFIX}.requests"  # submit a MobilityRequest; reply: Accepted or Rejected
REQUEST_GET = f"{PREFIX}.requests.get"  # body: request id; reply: RequestState or Rejected
REQUEST_CANCEL = f"{PREFIX}.requests.cancel"  # body: request id; reply: RequestState or Rejected
REQUEST_LIST = f"{PREFIX}.requests.list"  # body: ListQuery; reply: RequestList
MIGRATION_LIST = f"{PREFIX}.requests.migrations"  # body: empty; reply: JSON list of MigrationPlan

# The snapshot catalog (core NATS request-reply, answered by the snapshot service's replicas);
# documents in shared/contracts/snapshots.py.
SNAPSHOTS_LIST = f"{PREFIX}.snapshots.list"  # body: SnapshotQuery JSON; reply: SnapshotList
SNAPSHOTS_DESCRIBE = f"{PREFIX}.snapshots.describe"  # body: snapshot id; reply: SnapshotDetail
SNAPSHOTS_DELETE = f"{PREFIX}.snapshots.delete"  # body: snapshot id; reply: Deleted
SNAPSHOTS_RETAIN = f"{PREFIX}.snapshots.retain"  # body: RetentionQuery JSON; reply: RetentionResult

# Step commands: one JetStream work-queue stream, one durable pull consumer per step.
STEPS_STREAM = "FERRY_STEPS"
STEP_PREFIX = f"{PREFIX}.step"

# Events: ferry.events.<request-id>.<kind>, kept in a stream with limits (the audit trail).
EVENTS_STREAM = "FERRY_EVENTS"
EVENTS_PREFIX = f"{PREFIX}.events"

# State and bookkeeping.
REQUESTS_BUCKET = "ferry-requests"  # key: request id -> RequestState (updated by compare-and-set)
IDEMPOTENCY_BUCKET = "ferry-idempotency"  # key: digest of the idempotency key -> request id
INVENTORY_STORE = "ferry-inventories"  # object store: inventory documents, one per request

# Micro-service names (nats.micro): `nats micro ls` lists every running Ferry service.
MICRO_PREFIX = "ferry"

_TOKEN = re.compile(r"^[A-Za-z0-9_-]+$")


def step_subject(step: StepName | str) -> str:
    return f"{STEP_PREFIX}.{StepName(step).value}"


def step_consumer(step: StepName | str) -> str:
    """The durable consumer shared by every replica of the service doing this step."""
    return f"ferry-step-{StepName(step).value}"


def event_subject(request_id: str, kind: str) -> str:
    return f"{EVENTS_PREFIX}.{checked_token(request_id)}.{checked_token(kind)}"


def events_of(request_id: str) -> str:
    """Subject filter for every event of one request."""
    return f"{EVENTS_PREFIX}.{checked_token(request_id)}.>"


def micro_name(service: str) -> str:
    return f"{MICRO_PREFIX}-{service}"


def checked_token(value: str) -> str:
    """A subject token must not contain '.', '*', '>' or whitespace: refuse what would widen a subject."""
    if not _TOKEN.match(value):
        raise ValueError(f"not a valid subject token: {value!r}")
    return value
