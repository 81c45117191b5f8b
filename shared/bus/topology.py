"""Create or update Ferry's streams, KV buckets and object store, idempotently, at every start.

Several replicas start at once and all call this: creating what exists is a no-op, and a changed
setting (say a longer event retention) updates the stream in place.

Every stream, KV bucket and object store keeps ``replicas`` copies (``FERRY_BUS_REPLICAS``; 3 on a
three-node cluster, so the loss of one node loses nothing and stops nothing). The setting is the
source of truth: an existing stream, bucket or store with another replica count is *updated* to it,
with a warning naming both counts. JetStream changes ``num_replicas`` online with a stream update
(it adds peers and catches them up from the leader, or drops peers), so there is no reason to leave
a deployment on one copy until someone notices; the warning says it happened. A count the cluster
cannot hold (more replicas than servers, or a server down while scaling up) fails the start with the
count and JetStream's reason, instead of running with fewer copies than configured. A caller that
passes no count (a tool, a test) creates with one copy and leaves existing counts alone.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Awaitable
from dataclasses import dataclass
from typing import TypeVar

from nats.errors import Error as NatsError
from nats.js import JetStreamContext
from nats.js.api import (
    DiscardPolicy,
    KeyValueConfig,
    ObjectStoreConfig,
    RetentionPolicy,
    StorageType,
    StreamConfig,
)
from nats.js.client import KV_STREAM_TEMPLATE
from nats.js.errors import APIError, BucketNotFoundError, NotFoundError
from nats.js.kv import KeyValue
from nats.js.object_store import OBJ_STREAM_TEMPLATE, ObjectStore

from shared.contracts import policies, subjects
from shared.contracts.errors import PermanentError, TemporaryError

log = logging.getLogger("ferry.bus")

T = TypeVar("T")

DAY = 24 * 3600.0
NOT_CLUSTERED = 10074  # JetStream: "replicas > 1 not supported in non-clustered mode"
NO_PEERS = 10005  # JetStream: "no suitable peers for placement" (fewer servers up than replicas)
INSUFFICIENT_RESOURCES = 10023  # JetStream: "insufficient resources"
PLACEMENT_ERRORS = (NOT_CLUSTERED, NO_PEERS, INSUFFICIENT_RESOURCES)


@dataclass(frozen=True)
class Topology:
    """What ensure_topology made: handles the services use."""

    requests: KeyValue
    idempotency: KeyValue
    inventories: ObjectStore
    js: JetStreamContext


@dataclass(frozen=True)
class Retention:
    events_max_age: float = 30 * DAY
    events_max_bytes: int = 1 << 30
    dedup_window: float = 3600.0  # Nats-Msg-Id de-duplication of step commands
    idempotency_ttl: float = 7 * DAY


def _refused(name: str, replicas: int, e: APIError) -> Exception:
    """A create or update the cluster refused because of the replica count, as Ferry's error."""
    reason = _describe(e)
    if e.err_code == NOT_CLUSTERED:
        return PermanentError(
            f"stream {name}: FERRY_BUS_REPLICAS={replicas} needs a NATS cluster, but the server is not "
            f"clustered ({reason}); set FERRY_BUS_REPLICAS=1 or run NATS as a cluster"
        )
    return TemporaryError(
        f"stream {name}: JetStream cannot place {replicas} replica(s) ({reason}); FERRY_BUS_REPLICAS "
        f"must not exceed the NATS servers in the cluster, and all of them must be up to scale up"
    )


async def _stream(js: JetStreamContext, config: StreamConfig, replicas: int | None) -> None:
    name = config.name or ""
    try:
        info = await js.stream_info(name)
    except NotFoundError:
        config = dataclasses.replace(config, num_replicas=replicas or 1)
        await _placing(name, replicas, js.add_stream(config))
        return
    current = info.config.num_replicas or 1
    if replicas is not None and replicas != current:
        _announce(name, current, replicas)
    await _placing(
        name, replicas, js.update_stream(dataclasses.replace(config, num_replicas=replicas or current))
    )


def _announce(name: str, current: int, replicas: int) -> None:
    log.warning(
        "stream %s has %d replica(s) but FERRY_BUS_REPLICAS=%d: updating it to %d (JetStream moves the "
        "data online)",
        name,
        current,
        replicas,
        replicas,
    )


async def _match_replicas(js: JetStreamContext, name: str, replicas: int | None) -> None:
    """Bring the stream behind a KV bucket or object store to ``replicas`` copies, if it differs."""
    if replicas is None:
        return
    info = await js.stream_info(name)
    current = info.config.num_replicas or 1
    if current == replicas:
        return
    _announce(name, current, replicas)
    await _placing(name, replicas, js.update_stream(dataclasses.replace(info.config, num_replicas=replicas)))


async def ensure_topology(
    js: JetStreamContext, retention: Retention | None = None, *, replicas: int | None = None
) -> Topology:
    """Ferry's streams, buckets and object store, each with ``replicas`` copies.

    ``replicas`` is ``BusSettings.replicas`` (services pass their settings'). ``None`` — a caller
    that does not know the setting — creates what is missing with one copy and leaves the replica
    count of what exists as it is, so a tool can never scale a production bus down by accident.
    """
    retention = retention or Retention()
    try:
        return await _ensure(js, retention, replicas)
    except NatsError as e:  # no JetStream, no meta leader yet, a timeout: the supervisor restarts us
        raise TemporaryError(f"could not set up Ferry's JetStream topology: {_describe(e)}") from e


def _describe(e: NatsError) -> str:
    if isinstance(e, APIError) and e.description:
        return f"{e.description} (JetStream error {e.err_code})"
    return str(e) or type(e).__name__


async def _ensure(js: JetStreamContext, retention: Retention, replicas: int | None) -> Topology:
    await _stream(
        js,
        StreamConfig(
            name=subjects.STEPS_STREAM,
            subjects=[f"{subjects.STEP_PREFIX}.>"],
            retention=RetentionPolicy.WORK_QUEUE,
            storage=StorageType.FILE,
            duplicate_window=retention.dedup_window,
        ),
        replicas,
    )
    await _stream(
        js,
        StreamConfig(
            name=subjects.EVENTS_STREAM,
            subjects=[f"{subjects.EVENTS_PREFIX}.>"],
            retention=RetentionPolicy.LIMITS,
            storage=StorageType.FILE,
            max_age=retention.events_max_age,
            max_bytes=retention.events_max_bytes,
            discard=DiscardPolicy.OLD,
        ),
        replicas,
    )
    requests = await _kv(
        js,
        KeyValueConfig(
            bucket=subjects.REQUESTS_BUCKET, history=5, storage=StorageType.FILE, replicas=replicas or 1
        ),
        replicas,
    )
    idempotency = await _kv(
        js,
        KeyValueConfig(
            bucket=subjects.IDEMPOTENCY_BUCKET,
            history=1,
            ttl=retention.idempotency_ttl,
            storage=StorageType.FILE,
            replicas=replicas or 1,
        ),
        replicas,
    )
    try:
        inventories = await js.object_store(subjects.INVENTORY_STORE)
    except (BucketNotFoundError, NotFoundError):
        inventories = await _placing(
            subjects.INVENTORY_STORE,
            replicas,
            js.create_object_store(
                subjects.INVENTORY_STORE,
                ObjectStoreConfig(storage=StorageType.FILE, replicas=replicas or 1),
            ),
        )
    else:
        await _match_replicas(js, OBJ_STREAM_TEMPLATE.format(bucket=subjects.INVENTORY_STORE), replicas)
    return Topology(requests=requests, idempotency=idempotency, inventories=inventories, js=js)


SLOTS_KEPT = 100  # slot messages kept per policy (the audit of its slots; older ones are dropped)


async def ensure_schedules(js: JetStreamContext, *, replicas: int | None = None) -> KeyValue:
    """The replication policies' stream and bucket (``shared.contracts.policies``); the bucket.

    Apart from ``ensure_topology`` because only the process that serves policies needs them. The
    stream allows message schedules, so nats-server fires each policy's slots; it has no age limit
    (that would expire the schedules themselves), and keeps the newest ``SLOTS_KEPT`` slots of each
    policy. The server turns rollups on for such a stream, so the config says so too.
    """
    try:
        await _stream(
            js,
            StreamConfig(
                name=policies.SCHEDULES_STREAM,
                subjects=[f"{policies.SCHEDULE_PREFIX}.>", f"{policies.SLOT_PREFIX}.>"],
                retention=RetentionPolicy.LIMITS,
                storage=StorageType.FILE,
                max_msgs_per_subject=SLOTS_KEPT,
                discard=DiscardPolicy.OLD,
                allow_rollup_hdrs=True,
                allow_msg_schedules=True,
            ),
            replicas,
        )
        return await _kv(
            js,
            KeyValueConfig(
                bucket=policies.POLICIES_BUCKET, history=5, storage=StorageType.FILE, replicas=replicas or 1
            ),
            replicas,
        )
    except NatsError as e:
        raise TemporaryError(f"could not set up the policies' stream and bucket: {_describe(e)}") from e


async def _kv(js: JetStreamContext, config: KeyValueConfig, replicas: int | None) -> KeyValue:
    try:
        bucket = await js.key_value(config.bucket)
    except (BucketNotFoundError, NotFoundError):
        return await _placing(config.bucket, replicas, js.create_key_value(config))
    await _match_replicas(js, KV_STREAM_TEMPLATE.format(bucket=config.bucket), replicas)
    return bucket


async def _placing(name: str, replicas: int | None, creating: Awaitable[T]) -> T:
    try:
        return await creating
    except APIError as e:
        if e.err_code in PLACEMENT_ERRORS:
            raise _refused(name, replicas or 1, e) from e
        raise
