"""``volumes.parallel`` bounds the mover Jobs a snapshot step runs at once, seen from the source cluster.

A watch on the step's Jobs records every one from its creation to its deletion; the test reads the
most that ever existed together. The shop app has two volumes: with ``parallel=1`` they are copied
one after the other, with ``parallel=2`` side by side.
"""

from __future__ import annotations

import asyncio
import contextlib

import pytest

from sandbox import SandboxClusters
from shared.bus.client import BusClient
from shared.contracts.states import Phase
from shared.kube import Cluster, Clusters
from shared.runtime import Settings
from tests.snapshot.conftest import pipeline
from tests.snapshot.helpers import snapshot_request
from tests.waiting import eventually


class JobWatch:
    """The step's mover Jobs as the source cluster shows them: which exist now, the most at once."""

    def __init__(self, east: Cluster) -> None:
        self.east = east
        self.live: set[str] = set()
        self.seen: set[str] = set()
        self.most = 0
        self.requests: set[str] = set()
        self.started = asyncio.Event()

    async def run(self) -> None:
        jobs = await self.east.resource("jobs.batch")
        self.started.set()
        async for event in self.east.watch(jobs, "shop", label_selector="ferry.dev/step=snapshot"):
            if event.type == "DELETED":
                self.live.discard(event.name)
                continue
            self.live.add(event.name)
            self.seen.add(event.name)
            self.requests.add(event.object["metadata"]["labels"]["ferry.dev/request"])
            self.most = max(self.most, len(self.live))


@pytest.mark.parametrize(
    ("parallel", "most"),
    [(1, 1), (2, 2)],
    ids=["parallel 1 copies the volumes one after the other", "parallel 2 copies both at once"],
)
async def test_volumes_parallel_bounds_the_mover_jobs_alive_at_once(
    settings: Settings, client: BusClient, clusters: SandboxClusters, parallel: int, most: int
) -> None:
    async with Clusters(settings.kubeconfig) as kube:
        watch = JobWatch(await kube.get("east"))
        watcher = asyncio.create_task(watch.run(), name="watch:mover-jobs")
        try:
            await asyncio.wait_for(watch.started.wait(), timeout=10)
            async with pipeline(settings):
                rid = await client.submit(snapshot_request(parallel=parallel))
                state = await client.wait(rid, within=120)
            assert state.phase is Phase.COMPLETED, state.reason
            await eventually(lambda: not watch.live, within=10, what="the mover Jobs to be deleted")
        finally:
            watcher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await watcher
    assert len(watch.seen) == 2 and watch.requests == {rid}, watch.seen  # one mover Job per volume
    assert watch.most == most, f"{watch.most} mover Jobs existed at once with volumes.parallel={parallel}"
