"""Create or update Ferry's streams, KV buckets and object store, idempotently, at every start.

Several replicas start at once and all call this: creating what exists is a no-op, and a changed
setting (say a longer event retention) updates the stream in place.
"""

from __future__ import annotations

from dataclasses import dataclass

from nats.js import JetStreamContext
from nats.js.api import (
    DiscardPolicy,
    KeyValueConfig,
    ObjectStoreConfig,
    RetentionPolicy,
    StorageType,
    StreamConfig,
)
from nats.js.errors import BucketNotFoundError, NotFoundError
from nats.js.kv import KeyValue
from nats.js.object_store import ObjectStore

from shared.contracts import subjects

DAY = 24 * 3600.0


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


async def _stream(js: JetStreamContext, config: StreamConfig) -> None:
    try:
        await js.stream_info(config.name or "")
    except NotFoundError:
        await js.add_stream(config)
        return
    await js.update_stream(config)


async def ensure_topology(js: JetStreamContext, retention: Retention | None = None) -> Topology:
    retention = retention or Retention()
    await _stream(
        js,
        StreamConfig(
            name=subjects.STEPS_STREAM,
            subjects=[f"{subjects.STEP_PREFIX}.>"],
            retention=RetentionPolicy.WORK_QUEUE,
            storage=StorageType.FILE,
            duplicate_window=retention.dedup_window,
        ),
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
    )
    requests = await _kv(
        js, KeyValueConfig(bucket=subjects.REQUESTS_BUCKET, history=5, storage=StorageType.FILE)
    )
    idempotency = await _kv(
        js,
        KeyValueConfig(
            bucket=subjects.IDEMPOTENCY_BUCKET,
            history=1,
            ttl=retention.idempotency_ttl,
            storage=StorageType.FILE,
        ),
    )
    try:
        inventories = await js.object_store(subjects.INVENTORY_STORE)
    except (BucketNotFoundError, NotFoundError):
        inventories = await js.create_object_store(
            subjects.INVENTORY_STORE, ObjectStoreConfig(storage=StorageType.FILE)
        )
    return Topology(requests=requests, idempotency=idempotency, inventories=inventories, js=js)


async def _kv(js: JetStreamContext, config: KeyValueConfig) -> KeyValue:
    try:
        return await js.key_value(config.bucket)
    except (BucketNotFoundError, NotFoundError):
        return await js.create_key_value(config)
