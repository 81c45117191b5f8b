"""The staged migration of the sample shop, end to end: two stages while the shop keeps writing, a
cutover that leaves east down and brings west up, then a rollback that undoes it all (twice).

Every step is the real service on a real nats-server, with two local repositories (two regions) and
the sandbox clusters, whose kubelet runs Ferry's mover Jobs as real processes. A writer thread plays
the shop's pods: it appends to files in both of east's volumes (and now and then starts a new file)
for as long as the shop runs. It stops the moment a workload of the shop is scaled to zero — what
the cutover's quiesce does before it waits for the pods to go and takes the last snapshot — so what
east's volumes hold after the cutover is what they held at the quiesce instant, and west must hold
exactly that.

Run with ``-s`` to see the figures (bytes per stage, files written, downtime).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import threading
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import msgspec

from shared.bus.client import BusClient
from shared.contracts.events import Quiesced
from shared.contracts.migrations import DOWNTIME, PLAN_LABEL, QUIESCED_AT, plan_key, rollback_request
from shared.contracts.requests import MobilityRequest, RequestKind, Source, Target
from shared.contracts.states import Phase, RequestState
from shared.contracts.steps import StepName
from shared.kube import Cluster, NotFound
from shared.runtime import Settings
from shared.runtime.quiescing import REPLICAS, SINCE, SUSPEND
from tests.migration.conftest import every_service
from tests.repository.trees import random_files
from tests.restore.capturing import volume_dir
from tests.snapshot.helpers import tree, workload_state
from tests.waiting import eventually

TARGET = "shop-staged"
CLAIMS = ("web-uploads", "pgdata-db-0")
WORKLOADS = (("deployments.apps", "web"), ("statefulsets.apps", "db"), ("cronjobs.batch", "nightly-report"))
ORIGINAL = {"web": 2, "db": 1, "suspend": False, "annotations": {}}
RESTORED = ["deployments.apps/shop/web", "statefulsets.apps/shop/db", "cronjobs.batch/shop/nightly-report"]
BULK = (4, 500_000)  # random files added to each volume before stage 1 (4 MB; 6 MB with the fill)
RECORD = 1024  # bytes per append, one every PAUSE seconds (about 10 kB/s while the shop runs)
PAUSE = 0.1
WRITES_BETWEEN_RUNS = 12  # appends the shop makes between two runs


def migrate(**flags: bool) -> MobilityRequest:
    """A stage or the cutover of east's shop into west's shop-staged, storage classes swapped."""
    return MobilityRequest(
        kind=RequestKind.MIGRATE,
        source=Source(cluster="east", namespaces=["shop"], repository="east"),
        target=Target(
            cluster="west",
            repository="west",
            namespace_map={"shop": TARGET},
            storage_class_map={"fast": "standard", "standard": "fast"},
        ),
        **flags,
    )


class Writer(threading.Thread):
    """The shop's pods at work: appends to log files in its volumes until the shop is scaled down."""

    def __init__(self, volumes: list[Path]) -> None:
        super().__init__(name="shop-writer", daemon=True)
        self.volumes = volumes
        self.lock = threading.Lock()
        self.stopped = False
        self.stopped_at = 0.0
        self.writes = 0
        self.touched: set[Path] = set()  # files written since the last ``mark``
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            while True:
                with self.lock:
                    if self.stopped:
                        return
                    self.append()
                time.sleep(PAUSE)
        except BaseException as e:  # reported by the test, not lost in a thread
            self.error = e

    def append(self) -> None:
        volume = self.volumes[self.writes % len(self.volumes)]
        path = volume / "ferry-writer" / f"log-{self.writes // 30:03d}.bin"  # a new file every 30 appends
        path.parent.mkdir(exist_ok=True)
        with open(path, "ab") as f:
            f.write(os.urandom(RECORD))
        self.writes += 1
        self.touched.add(path)

    def mark(self) -> int:
        """The files written since the last mark (how many), and start counting again."""
        with self.lock:
            touched, self.touched = len(self.touched), set()
        return touched

    def stop(self) -> None:
        """Stop before the next append; when this returns no append is under way."""
        with self.lock:
            if not self.stopped:
                self.stopped, self.stopped_at = True, time.time()


@contextlib.asynccontextmanager
async def shop_writing(east: Cluster) -> AsyncIterator[Writer]:
    """The writer runs until a Deployment or StatefulSet of the shop is scaled to zero (seen by a
    watch, so the first quiesce patch stops it); it never stops on its own before that."""
    volumes = [await volume_dir(east, "shop", claim) for claim in CLAIMS]
    for seed, volume in enumerate(volumes):
        random_files(volume / "bulk", *BULK, seed=seed)
    writer = Writer(volumes)

    async def follow(resource: str) -> None:
        async for event in east.watch(await east.resource(resource), "shop"):
            if int(event.object["spec"].get("replicas", 1)) == 0:
                writer.stop()  # blocks the loop (every service's) until an append under way is done
                return

    writer.start()
    tasks = [asyncio.create_task(follow(r)) for r in ("deployments.apps", "statefulsets.apps")]
    try:
        yield writer
    finally:
        writer.stop()
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        writer.join(5)


async def more_writes(writer: Writer) -> None:
    start = writer.writes
    await eventually(
        lambda: writer.writes >= start + WRITES_BETWEEN_RUNS, within=20, what="the shop writing more"
    )
    assert writer.error is None, writer.error


def steps(state: RequestState) -> str:
    return ", ".join(
        f"{s.step.value} {s.status.value} x{s.attempts} {s.started_at[11:19]}-{s.finished_at[11:19]}"
        for s in state.steps
    )


async def run(client: BusClient, request: MobilityRequest | str) -> RequestState:
    """Submit ``request`` (or follow the one with that id) until it completes."""
    request_id = request if isinstance(request, str) else await client.submit(request)
    try:
        state = await client.wait(request_id, within=120)
    except TimeoutError as e:
        raise AssertionError(f"{e}: {steps(await client.get(request_id))}") from e
    assert state.phase is Phase.COMPLETED, f"{state.phase.value}: {state.reason} ({steps(state)})"
    print(f"  {request_id}: {steps(state)}")
    return state


def sent(state: RequestState) -> int:
    result = state.step_state(StepName.TRANSFER).result
    assert result is not None
    return result.bytes_moved


def restored(state: RequestState) -> dict[str, int]:
    result = state.step_state(StepName.RESTORE).result
    assert result is not None
    return result.counts


async def trees(cluster: Cluster, namespace: str) -> dict[str, dict[str, str]]:
    """Each claim's volume: relative path -> sha256 of every file (and dirs and symlinks)."""
    return {claim: tree(await volume_dir(cluster, namespace, claim)) for claim in CLAIMS}


async def source_objects(east: Cluster) -> dict[str, Any]:
    """What a cutover changes and a rollback must put back: replicas, suspension, every annotation."""
    found = {}
    for resource, name in WORKLOADS:
        obj = await east.get(resource, name, "shop")
        spec = obj["spec"]
        found[name] = (
            spec.get("replicas", spec.get("suspend")),
            dict(obj["metadata"].get("annotations") or {}),
        )
    return found


async def west_objects(west: Cluster) -> dict[str, Any]:
    """The claims in the target namespace, and the shop's workloads there (replicas or suspension)."""
    claims = sorted(c["metadata"]["name"] for c in await west.list("persistentvolumeclaims", TARGET))
    workloads = {}
    for resource, name in WORKLOADS:
        obj = await west.find(resource, name, TARGET)
        if obj is not None:
            workloads[name] = obj["spec"].get("replicas", obj["spec"].get("suspend"))
    return {"claims": claims, "workloads": workloads}


async def planned(west: Cluster, key: str) -> list[str]:
    """Every object in west, of any type west serves, that carries the plan's label."""
    keys = []
    for resource in await west.resources.preferred():
        if not (resource.can("list") and resource.name not in ("events", "events.events.k8s.io")):
            continue
        try:
            found = await west.list(resource, None, label_selector=f"{PLAN_LABEL}={key}")
        except NotFound:  # a type the rollback removed (the shop's CRD), gone since discovery
            continue
        for obj in found:
            meta = obj["metadata"]
            keys.append(f"{resource.name}/{meta.get('namespace', '')}/{meta['name']}")
    return keys


async def test_two_stages_then_a_cutover_land_the_quiesced_bytes_and_a_rollback_undoes_it_all(
    settings: Settings, client: BusClient, kube: dict[str, Cluster]
) -> None:
    east, west = kube["east"], kube["west"]
    before = await source_objects(east)
    assert await workload_state(east) == ORIGINAL
    key = plan_key(migrate())
    async with every_service(settings), shop_writing(east) as writer:
        await more_writes(writer)
        files1 = writer.mark()
        stage1 = await run(client, migrate(stage=True))
        await more_writes(writer)
        files2 = writer.mark()
        stage2 = await run(client, migrate(stage=True))
        staged = await west_objects(west)
        await more_writes(writer)
        assert not writer.stopped and await source_objects(east) == before, "a stage touched the source"
        cutover = await run(client, migrate(cutover=True))
        files3 = writer.mark()  # since stage 2 began, until the quiesce
        assert writer.stopped and writer.error is None, writer.error
        clock = [
            e async for _, e in client.events(cutover.id, follow=False, idle=0.3) if isinstance(e, Quiesced)
        ]
        after_cutover = await workload_state(east)
        source, target = await trees(east, "shop"), await trees(west, TARGET)
        landed = await west_objects(west)
        listed = await client.migrations()

        first = await run(client, (await client.rollback(cutover.id)).id)
        after_first = (await planned(west, key), await west_objects(west), await source_objects(east))
        again = msgspec.structs.replace(rollback_request(cutover), idempotency_key="rollback-again")
        second = await run(client, again)
        after_second = (await planned(west, key), await west_objects(west), await source_objects(east))
        rolled_back = await client.get(cutover.id)
    writes = writer.writes

    bytes1, bytes2, bytes3 = sent(stage1), sent(stage2), sent(cutover)
    quiesced_at, downtime = float(cutover.outputs[QUIESCED_AT]), float(cutover.outputs[DOWNTIME])
    print(f"\nstaged migration of the shop: the writer made {writes} appends of {RECORD} B")
    for name, state, files in (
        ("stage 1", stage1, files1),
        ("stage 2", stage2, files2),
        ("cutover", cutover, files3),
    ):
        counts = restored(state)
        print(
            f"  {name}: {sent(state):>9} bytes sent, {counts['bytes_written']:>9} bytes in "
            f"{counts['files_written']:>3} files restored; {files:>3} files appended to or created "
            "by the writer since the previous run"
        )
    print(f"  cutover / stage 1 bytes sent = {bytes3 / bytes1:.3f}; downtime {downtime} s")

    # The stages landed only the claims, and each later run sent a small delta of the first.
    assert staged == {"claims": sorted(CLAIMS), "workloads": {}}
    assert 0 < bytes2 < 0.25 * bytes1, (bytes1, bytes2)
    assert 0 < bytes3 < 0.25 * bytes1, (bytes1, bytes3)

    # The cutover landed east's bytes as they were when the shop was quiesced, every file of them:
    # the writer stopped at the quiesce (not before), and nothing wrote east's volumes since.
    assert quiesced_at - 0.01 <= writer.stopped_at < quiesced_at + 5, (quiesced_at, writer.stopped_at)
    assert target == source
    assert all(any(path.startswith("ferry-writer/") for path in t) for t in target.values())
    assert landed == {"claims": sorted(CLAIMS), "workloads": {"web": 2, "db": 1, "nightly-report": False}}

    # The source stays down, its original values kept in Ferry's annotations; the downtime is reported.
    assert (after_cutover["web"], after_cutover["db"], after_cutover["suspend"]) == (0, 0, True)
    assert after_cutover["annotations"] == {
        "web": {REPLICAS: "2", SINCE: cutover.outputs[QUIESCED_AT]},
        "db": {REPLICAS: "1", SINCE: cutover.outputs[QUIESCED_AT]},
        "cron": {SUSPEND: "false", SINCE: cutover.outputs[QUIESCED_AT]},
    }
    restore = cutover.step_state(StepName.RESTORE).result
    assert restore is not None and float(restore.outputs[DOWNTIME]) == downtime > 0
    assert [e.since for e in clock] == [quiesced_at] * len(clock) and clock[-1].available_at > quiesced_at
    [plan] = [p for p in listed if p.key == key]
    assert (plan.stages, plan.cutover, plan.cutover_request) == (2, "completed", cutover.id)
    assert plan.source_quiesced and not plan.rolled_back and plan.downtime_seconds == downtime
    assert plan.requests == [stage1.id, stage2.id, cutover.id] and plan.last_stage_bytes == bytes3

    # The rollback: nothing of the plan is left in west, east is exactly as before the first stage.
    assert after_first == ([], {"claims": [], "workloads": {}}, before)
    assert await west.find("namespaces", TARGET) is None

    async def volumes_gone() -> bool:  # the claims' volumes go with them (reclaim policy Delete)
        volumes = await west.list("persistentvolumes")
        return not [v for v in volumes if (v["spec"].get("claimRef") or {}).get("namespace") == TARGET]

    await eventually(volumes_gone, within=10, what=f"west's volumes of {TARGET} deleted")
    assert await workload_state(east) == ORIGINAL
    assert json.loads(first.outputs["restored"]) == RESTORED and json.loads(first.outputs["removed"])
    assert rolled_back.rolled_back and rolled_back.reason.startswith("rolled back: ")
    assert rolled_back.reason.endswith(" removed from west, source restored (3 workload(s) brought back)")
    # Twice is harmless: nothing left to remove or to bring back, and nothing changed.
    assert (second.outputs["removed"], second.outputs["restored"]) == ("[]", "[]")
    assert after_second == after_first
