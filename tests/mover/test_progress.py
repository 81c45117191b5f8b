"""Progress events over NATS, in Ferry's contract, while a real ``ferry-mover`` subprocess backs up."""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path

import nats

from shared.bus import ensure_topology
from shared.contracts import Progress, subjects
from shared.contracts.events import event_decoder
from shared.localstack import LocalStack
from tests.repository.trees import random_files


async def test_a_backup_publishes_progress_events_for_its_request(
    stack: LocalStack, tmp_path: Path, unique: str
) -> None:
    random_files(tmp_path / "src", 8, 500_000)
    env = {**os.environ, "FERRY_REPO": str(tmp_path / "repo"), "FERRY_REPO_PASSWORD": "pw"}
    client = await nats.connect(stack.nats_url)
    try:
        await ensure_topology(client.jetstream())
        events: list[Progress] = []

        async def received(msg: nats.aio.msg.Msg) -> None:
            event = event_decoder.decode(msg.data)
            assert isinstance(event, Progress)
            events.append(event)

        request_id = f"req-{unique}"
        await client.subscribe(subjects.event_subject(request_id, "progress"), cb=received)
        for args in (["init"], ["backup", str(tmp_path / "src"), "--name", "data-0", "--step", "snapshot",
                                "--nats-url", stack.nats_url, "--request-id", request_id]):  # fmt: skip
            job = await asyncio.create_subprocess_exec(sys.executable, "-m", "shared.mover", *args, env=env)
            assert await job.wait() == 0
        for _ in range(100):
            if events:
                break
            await asyncio.sleep(0.05)
    finally:
        await client.drain()
    last = events[-1]
    assert last.request_id == request_id and last.volume == "data-0" and last.step == "snapshot"
    assert last.bytes_done == last.bytes_total == 4_000_000
    assert last.items_done == last.items_total == 8
