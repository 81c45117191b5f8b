"""The local three-node cluster launcher: it returns a formed cluster, finds stream leaders, and a
killed leader is replaced by one of the survivors; a restarted node rejoins with its store."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

import nats
from nats.js.api import StreamConfig

from sandbox.localstack import NatsCluster
from shared.bus.connecting import BusSettings, connect


async def until(check: Callable[[], str | None], within: float = 30.0) -> str:
    """Poll a launcher query (blocking HTTP) off the event loop until it answers."""
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if found := await asyncio.to_thread(check):
            return found
        await asyncio.sleep(0.05)
    raise TimeoutError(f"no answer within {within}s")


async def test_a_killed_stream_leader_is_replaced_and_its_messages_stay(cluster: NatsCluster) -> None:
    assert len(cluster.url.split(",")) == 3 and cluster.meta_leader() in cluster.nodes
    nc = await connect(BusSettings(url=cluster.url))
    try:
        js = nc.jetstream()
        await js.add_stream(StreamConfig(name="HA", subjects=["ha.>"], num_replicas=3))
        for i in range(10):
            await js.publish("ha.x", str(i).encode())
        victim = await until(lambda: cluster.leader_of("HA"))
        assert victim == (await js.stream_info("HA")).cluster.leader  # type: ignore[union-attr]

        await asyncio.to_thread(cluster.kill, victim)
        assert set(cluster.running) == set(cluster.nodes) - {victim}
        successor = await until(lambda: cluster.leader_of("HA"))
        assert successor != victim and successor in cluster.running
        await js.publish("ha.x", b"10", timeout=10)  # the client moved to a survivor if it had to
        assert (await js.stream_info("HA")).state.messages == 11
        late = await connect(BusSettings(url=cluster.url), within=15)  # a dead server in the list
        assert late.is_connected
        await late.close()

        await asyncio.to_thread(cluster.restart, victim)  # rejoins with its store and catches up
        assert set(cluster.running) == set(cluster.nodes)
        alone = await nats.connect(cluster.nodes[victim].url)
        try:
            for _ in range(200):
                info = await alone.jetstream().stream_info("HA")
                peers = {p.name: p.current for p in (info.cluster and info.cluster.replicas) or []}
                if info.cluster and (info.cluster.leader == victim or peers.get(victim)):
                    break
                await asyncio.sleep(0.1)
            else:
                raise AssertionError(f"{victim} did not catch up: {info.cluster}")
            assert info.state.messages == 11
        finally:
            await alone.close()
    finally:
        await nc.close()
