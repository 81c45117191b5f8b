"""A transfer service stopped mid-copy — SIGTERM, as in a rolling restart, or SIGKILL, as when a node
dies or the OOM killer strikes — and another replica finishing the step: what the first one sent and
indexed is not sent again."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from pathlib import Path

import nats
import pytest

from services.intake.intake import IntakeService
from services.transfer.transferring import TransferOptions, TransferService
from shared.bus.client import BusClient
from shared.contracts.events import Progress
from shared.contracts.requests import MobilityRequest, RequestKind, Source, Target
from shared.contracts.states import Phase
from shared.repository import Repository, restore
from shared.repository.checking import check
from shared.runtime import Settings
from shared.store import layout
from tests.repository.trees import file_hashes
from tests.store.conftest import FAST_SCRYPT, PASSWORD
from tests.transfer.conftest import PACK, Regions, make_snapshot
from tests.waiting import eventually

ROOT = Path(__file__).resolve().parents[2]


def service_process(settings: Settings, regions: Regions, tmp_path: Path) -> subprocess.Popen[bytes]:
    config = tmp_path / "ferry.toml"
    config.write_text(f'[repositories]\neast = "{regions.source_url}"\nwest = "{regions.target_url}"\n')
    env = {**os.environ, "FERRY_CONFIG": str(config), "FERRY_NATS_URL": settings.nats.url,
           "FERRY_REPO_PASSWORD": PASSWORD.decode(), "FERRY_HTTP_PORT": "0", "FERRY_HTTP_HOST": "127.0.0.1",
           "FERRY_LEASE": "3", "FERRY_ACK_WAIT": "5", "FERRY_DRAIN_GRACE": "0.5", "FERRY_LOG_FORMAT": "text",
           "FERRY_TRANSFER_LIMIT_KIB": "1024", "FERRY_TRANSFER_THREADS": "2"}  # fmt: skip
    with open(tmp_path / "transfer.log", "wb") as log:
        return subprocess.Popen([sys.executable, "-m", "services.transfer"], cwd=ROOT, env=env,
                                stdout=log, stderr=subprocess.STDOUT)  # fmt: skip


def transfer_of_a_snapshot(
    regions: Regions, source_repo: Repository, tmp_path: Path, files: int
) -> tuple[str, MobilityRequest]:
    """A snapshot of ``files`` files in the source, and the request that transfers it. The target is
    made as the first transfer makes it (sharing the chunk-id key), with small packs so that many are
    uploaded (and indexed) before the service is stopped."""
    group = make_snapshot(source_repo, tmp_path / "src", files=files)
    Repository.init(regions.target, PASSWORD, scrypt_n=FAST_SCRYPT, pack_size=PACK, like=source_repo)
    request = MobilityRequest(kind=RequestKind.REPLICATE, itinerary=["transfer"], target=Target(repository="west"),
                              source=Source(cluster="east", namespaces=["shop"], repository="east", snapshot=group))  # fmt: skip
    return group, request


@pytest.mark.parametrize("regions", ["local"], indirect=True)  # one store is enough to test the step's resume
async def test_a_stopped_transfer_is_finished_by_another_replica_without_resending(
    settings: Settings, regions: Regions, source_repo: Repository, tmp_path: Path
) -> None:
    _, request = transfer_of_a_snapshot(regions, source_repo, tmp_path, files=30)
    nc = await nats.connect(settings.nats.url)
    client = BusClient(nc, timeout=5)
    first = service_process(settings, regions, tmp_path)
    try:
        async with IntakeService(settings):
            request_id = await client.submit(request)
            sent_before = 0

            async def halfway() -> bool:
                nonlocal sent_before
                async for _, event in client.events(request_id, follow=False, idle=0.2):
                    if isinstance(event, Progress) and event.items_done >= 10:
                        sent_before = event.items_done
                        return True
                return False

            await eventually(halfway, within=60, what="the first replica to be well into the copy")
            first.send_signal(signal.SIGTERM)
            assert await asyncio.to_thread(first.wait, 20) == 0, (tmp_path / "transfer.log").read_text()[
                -2000:
            ]
            async with TransferService(settings, options=TransferOptions(threads=2)):
                state = await client.wait(request_id, within=60)
    finally:
        if first.poll() is None:
            first.kill()
        await nc.close()
    assert state.phase is Phase.COMPLETED, state.reason
    counts = state.steps[0].result.counts if state.steps[0].result else {}
    assert counts["records_copied"] == 2, counts  # the first replica finished no record
    assert counts["blobs_present"] >= 4, f"the second replica re-sent what the first had copied: {counts}"
    assert counts["blobs_sent"] + counts["blobs_present"] == counts["blobs_needed"]
    assert sent_before >= 10


@pytest.mark.parametrize("regions", ["local"], indirect=True)
async def test_a_killed_transfer_is_finished_by_another_replica_and_the_target_verifies(
    settings: Settings, regions: Regions, source_repo: Repository, tmp_path: Path
) -> None:
    group, request = transfer_of_a_snapshot(regions, source_repo, tmp_path, files=40)
    nc = await nats.connect(settings.nats.url)
    client = BusClient(nc, timeout=5)
    first = service_process(settings, regions, tmp_path)
    try:
        async with IntakeService(settings):
            request_id = await client.submit(request)

            # Kill it once some packs are indexed in the target (an index file every few packs) and
            # long before it is done: no cleanup runs, the step's message is left unacknowledged.
            def indexed() -> bool:
                return any(regions.target.list(layout.INDEX))

            await eventually(indexed, within=60, what="the first replica to index some uploaded packs")
            first.send_signal(signal.SIGKILL)
            assert await asyncio.to_thread(first.wait, 20) == -signal.SIGKILL
            killed = Repository.open(regions.target, PASSWORD)
            assert killed.snapshots(group=group) == [], "the first replica finished before it was killed"
            kept = len(killed.index)
            async with TransferService(settings, options=TransferOptions(threads=2)):
                state = await client.wait(request_id, within=90)
    finally:
        if first.poll() is None:
            first.kill()
        await nc.close()
    assert state.phase is Phase.COMPLETED, state.reason
    counts = state.steps[0].result.counts if state.steps[0].result else {}
    assert counts["records_copied"] == 2 and counts["damaged_files"] == 0, counts
    assert counts["verified_blobs"] == counts["blobs_needed"] > 40, counts
    assert counts["blobs_present"] >= kept > 0, (
        f"the second replica re-sent what the first had indexed: {counts}"
    )
    assert counts["blobs_sent"] + counts["blobs_present"] == counts["blobs_needed"]
    assert counts["blobs_sent"] > 0, counts  # the kill came mid-copy: the second replica had work left
    assert counts["bytes_read"] < counts["verified_bytes"], f"the whole snapshot was read again: {counts}"

    target = Repository.open(regions.target, PASSWORD)
    report = await asyncio.to_thread(check, target, read_data=True)
    assert report.ok, report.errors  # the killed replica's unindexed packs are at most warnings
    tree = next(i for i, r in target.snapshots(group=group) if r.kind == "tree")
    await asyncio.to_thread(restore, target, tree, tmp_path / "restored")
    assert file_hashes(tmp_path / "restored") == file_hashes(tmp_path / "src")
