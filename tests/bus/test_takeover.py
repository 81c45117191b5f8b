"""Recovery in seconds, with the default ack wait and lease, between real processes: a replica killed
mid-step has its step taken over within 15 s; a healthy step longer than both is never taken over."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

from sandbox.localstack import NatsServer
from services.intake.intake import IntakeService
from shared.bus.client import BusClient
from shared.contracts import subjects
from shared.contracts.states import Phase
from shared.runtime import Settings, load_settings
from tests.bus.stubs import running, stub_request
from tests.bus.workers import workers
from tests.waiting import eventually

TAKEOVER_LIMIT = 15.0


def defaults(nats_server: NatsServer) -> Settings:
    return load_settings({}, nats={"url": nats_server.url}, http_port=0, http_host="127.0.0.1")


async def test_a_step_whose_replica_was_killed_starts_again_within_15_seconds(
    nats_server: NatsServer, client: BusClient, tmp_path: Path
) -> None:
    settings = defaults(nats_server)
    with workers(nats_server.url, tmp_path / "markers") as replicas:
        replicas.start("doomed", "--defaults")
        async with running(IntakeService(settings)):
            rid = await client.submit(stub_request(["echo"]))
            await eventually(lambda: bool(replicas.starts(rid)), within=60, what="the first replica started")
            # Mid-step: the lease and the message have been renewed a few times.
            await asyncio.sleep(3.0)
            killed_at = time.time()
            replicas.kill("doomed")
            replicas.start("survivor", "--defaults", "--seconds", "0.5")
            await eventually(lambda: len(replicas.starts(rid)) == 2, within=45, what="the step started again")
            state = await client.wait(rid, within=30)
        (first, second) = replicas.starts(rid)
    takeover = second[2] - killed_at
    print(f"\ntakeover: the step started again {takeover:.1f}s after the kill")
    assert (first[:2], second[:2]) == (("doomed", 1), ("survivor", 2))
    assert takeover < TAKEOVER_LIMIT, f"taken over after {takeover:.1f}s"
    assert state.phase is Phase.COMPLETED, state.reason
    assert state.steps[0].attempts == 2
    assert state.outputs["echo_by"] == "survivor"


async def test_a_healthy_step_three_times_longer_than_the_lease_is_never_taken_over(
    nats_server: NatsServer, client: BusClient, tmp_path: Path
) -> None:
    settings = defaults(nats_server)
    seconds = 3 * max(settings.lease, settings.ack_wait)
    with workers(nats_server.url, tmp_path / "markers") as replicas:
        for name in ("a", "b"):  # a second replica waits for work the whole time
            replicas.start(name, "--defaults", "--seconds", str(seconds))
        async with running(IntakeService(settings)):
            rid = await client.submit(stub_request(["echo"]))
            state = await client.wait(rid, within=seconds + 60)
            consumer = await client.nc.jetstream().consumer_info(
                subjects.STEPS_STREAM, subjects.step_consumer("echo")
            )
        starts = replicas.starts(rid)
    assert state.phase is Phase.COMPLETED, state.reason
    assert [attempt for _, attempt, _ in starts] == [1], starts
    assert state.steps[0].attempts == 1
    assert consumer.delivered is not None and consumer.delivered.consumer_seq == 1, "it was redelivered"
