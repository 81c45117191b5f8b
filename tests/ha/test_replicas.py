"""Every stream, KV bucket and object store keeps as many copies as FERRY_BUS_REPLICAS says: created
that way on a cluster, updated to it when it was created with another count, and refused by name
where the cluster cannot hold it."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from nats.aio.client import Client

from sandbox.localstack import NatsCluster, NatsServer
from shared.bus.connecting import BusSettings, connect
from shared.bus.topology import ensure_topology
from shared.contracts import subjects
from shared.contracts.errors import PermanentError
from shared.runtime import load_settings

# The streams behind Ferry's topology: two streams, two KV buckets, one object store.
STREAMS = (
    subjects.STEPS_STREAM,
    subjects.EVENTS_STREAM,
    f"KV_{subjects.REQUESTS_BUCKET}",
    f"KV_{subjects.IDEMPOTENCY_BUCKET}",
    f"OBJ_{subjects.INVENTORY_STORE}",
)


@pytest.fixture
async def nc(cluster: NatsCluster) -> AsyncIterator[Client]:
    client = await connect(BusSettings(url=cluster.url))
    yield client
    await client.close()


async def replica_counts(nc: Client) -> dict[str, int]:
    js = nc.jetstream()
    return {name: (await js.stream_info(name)).config.num_replicas or 1 for name in STREAMS}


async def test_on_a_cluster_everything_is_created_with_three_copies_placed_on_three_nodes(
    nc: Client, cluster: NatsCluster
) -> None:
    await ensure_topology(nc.jetstream(), replicas=3)
    assert await replica_counts(nc) == dict.fromkeys(STREAMS, 3)
    info = await nc.jetstream().stream_info(subjects.STEPS_STREAM)
    assert info.cluster is not None and info.cluster.leader in cluster.nodes
    peers = {info.cluster.leader, *(p.name for p in info.cluster.replicas or [])}
    assert peers == set(cluster.nodes)
    assert cluster.leader_of(subjects.STEPS_STREAM) == info.cluster.leader


async def test_a_topology_made_with_one_copy_is_updated_to_the_setting_and_says_so(
    nc: Client, caplog: pytest.LogCaptureFixture
) -> None:
    js = nc.jetstream()
    await ensure_topology(js, replicas=1)
    await js.publish(subjects.step_subject("snapshot"), b"kept")
    with caplog.at_level(logging.WARNING, logger="ferry.bus"):
        await ensure_topology(js, replicas=3)
    assert await replica_counts(nc) == dict.fromkeys(STREAMS, 3)
    assert (await js.stream_info(subjects.STEPS_STREAM)).state.messages == 1  # the update keeps data
    warned = [r.getMessage() for r in caplog.records if "FERRY_BUS_REPLICAS=3" in r.getMessage()]
    assert len(warned) == len(STREAMS), warned
    assert "stream FERRY_STEPS has 1 replica(s) but FERRY_BUS_REPLICAS=3: updating it to 3" in warned[0]

    # A caller that does not know the setting leaves the count alone; the setting scales back down.
    await ensure_topology(js)
    assert await replica_counts(nc) == dict.fromkeys(STREAMS, 3)
    await ensure_topology(js, replicas=1)
    assert await replica_counts(nc) == dict.fromkeys(STREAMS, 1)


async def test_more_replicas_than_servers_fail_the_start_naming_the_setting(nc: Client) -> None:
    with pytest.raises(Exception, match="FERRY_BUS_REPLICAS must not exceed the NATS servers") as caught:
        await ensure_topology(nc.jetstream(), replicas=5)
    assert "cannot place 5 replica(s)" in str(caught.value)


async def test_replicas_on_a_single_server_are_refused_as_a_configuration_error(tmp_path: Path) -> None:
    server = NatsServer(tmp_path / "single").start()
    try:
        client = await connect(BusSettings(url=server.url))
        try:
            with pytest.raises(PermanentError, match="FERRY_BUS_REPLICAS=3 needs a NATS cluster"):
                await ensure_topology(client.jetstream(), replicas=3)
            await ensure_topology(client.jetstream(), replicas=1)
        finally:
            await client.close()
    finally:
        server.stop()


@pytest.mark.parametrize(
    ("value", "expected"),
    [("1", 1), ("3", 3), ("5", 5)],
    ids=["one copy on one server", "three copies on a three-node cluster", "five at most"],
)
def test_the_replica_count_comes_from_the_nats_settings(value: str, expected: int) -> None:
    assert load_settings({"FERRY_NATS_REPLICAS": value}).nats.replicas == expected
    assert load_settings({}).nats.replicas == 1


@pytest.mark.parametrize(
    "value", ["0", "6", "three"], ids=["zero", "more than JetStream allows", "not a number"]
)
def test_a_replica_count_out_of_range_stops_the_service_naming_the_setting(value: str) -> None:
    with pytest.raises(PermanentError, match=r"nats\.replicas"):
        load_settings({"FERRY_NATS_REPLICAS": value})


def test_ferry_bus_replicas_sets_the_replica_count() -> None:
    assert load_settings({"FERRY_BUS_REPLICAS": "3"}).nats.replicas == 3
