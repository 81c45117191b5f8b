"""Drill: SIGTERM to a step service in the middle of a step (a rolling update, a node drained).

With the grace period longer than what is left of the step, the replica finishes it, records it and
exits: one attempt. With a shorter one, it stops the step, hands it back (lease cleared, message
NAKed) and exits; another replica starts it again at once — well before the lease would have run
out — and only that one records it. Either way nothing is recorded twice or half.
"""

from __future__ import annotations

import asyncio
import signal
import time
from collections.abc import AsyncIterator
from pathlib import Path

import nats
import pytest

from sandbox.localstack import NatsServer
from services.intake.intake import IntakeService
from shared.bus.client import BusClient
from shared.contracts.states import Phase, StepStatus
from shared.runtime import Settings, load_settings
from tests.bus.stubs import running, stub_request
from tests.bus.workers import workers
from tests.waiting import eventually


@pytest.fixture
async def client(nats_server: NatsServer) -> AsyncIterator[BusClient]:
    nc = await nats.connect(nats_server.url)
    yield BusClient(nc, timeout=5)
    await nc.close()


def defaults(nats_server: NatsServer) -> Settings:
    return load_settings({}, nats={"url": nats_server.url}, http_port=0, http_host="127.0.0.1")


async def test_a_replica_told_to_stop_finishes_its_step_within_the_grace_period(
    nats_server: NatsServer, client: BusClient, tmp_path: Path
) -> None:
    with workers(nats_server.url, tmp_path / "markers") as replicas:
        first = replicas.start("a", "--defaults", "--seconds", "4", "--grace", "20")
        async with running(IntakeService(defaults(nats_server))):
            rid = await client.submit(stub_request(["echo"]))
            await eventually(lambda: bool(replicas.starts(rid)), within=60, what="the step started")
            first.send_signal(signal.SIGTERM)
            code = await asyncio.to_thread(first.wait, 30)
            state = await client.get(rid)
    assert code == 0, replicas.log("a")
    assert state.phase is Phase.COMPLETED, state.reason  # recorded before the process exited
    assert state.steps[0].attempts == 1 and state.outputs["echo_by"] == "a"
    assert [start[:2] for start in replicas.starts(rid)] == [("a", 1)]


async def test_a_replica_told_to_stop_hands_a_long_step_back_and_another_starts_it_at_once(
    nats_server: NatsServer, client: BusClient, tmp_path: Path
) -> None:
    settings = defaults(nats_server)
    with workers(nats_server.url, tmp_path / "markers") as replicas:
        first = replicas.start("a", "--defaults", "--grace", "0.5")  # a step of an hour
        async with running(IntakeService(settings)):
            rid = await client.submit(stub_request(["echo"]))
            await eventually(lambda: bool(replicas.starts(rid)), within=60, what="the step started")
            replicas.start("b", "--defaults", "--seconds", "0.5")
            await asyncio.sleep(3.0)  # b is up and idle
            first.send_signal(signal.SIGTERM)
            code = await asyncio.to_thread(first.wait, 20)
            stopped_at = time.time()
            handed_back = (await client.get(rid)).steps[0]
            await eventually(lambda: len(replicas.starts(rid)) == 2, within=30, what="b took the step")
            state = await client.wait(rid, within=30)
    assert code == 0, replicas.log("a")
    assert handed_back.result is None and handed_back.status is not StepStatus.SUCCEEDED
    assert handed_back.owner in ("", "b"), handed_back  # released, not left to run out its lease
    (_, again) = replicas.starts(rid)
    assert again[:2] == ("b", 2)
    assert again[2] - stopped_at < settings.lease / 2, f"b started {again[2] - stopped_at:.1f}s after"
    assert state.phase is Phase.COMPLETED, state.reason
    assert state.steps[0].attempts == 2 and state.outputs["echo_by"] == "b"
