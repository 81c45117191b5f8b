"""The transfer step on a real nats-server: a request moves a snapshot east → west, with events."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from pathlib import Path

import msgspec
import nats
import pytest

from services.intake.intake import IntakeService
from services.transfer.transferring import TransferOptions, TransferService
from shared.bus.client import BusClient
from shared.contracts.events import Progress, Report, Warning
from shared.contracts.requests import MobilityRequest, RequestKind, Source, Target
from shared.contracts.states import Phase
from shared.repository import Repository
from shared.runtime import Settings
from shared.store import layout
from tests.store.conftest import PASSWORD
from tests.transfer.conftest import Regions, make_snapshot


@contextlib.asynccontextmanager
async def transfer_running(settings: Settings) -> AsyncIterator[BusClient]:
    nc = await nats.connect(settings.nats.url)
    async with IntakeService(settings), TransferService(settings, options=TransferOptions(threads=2)):
        yield BusClient(nc, timeout=5)
    await nc.close()


def replicate(group: str, target_repository: str = "west") -> MobilityRequest:
    return MobilityRequest(
        kind=RequestKind.REPLICATE,
        source=Source(cluster="east", namespaces=["shop"], repository="east", snapshot=group),
        target=Target(repository=target_repository),
        itinerary=["transfer"],
    )


async def events(client: BusClient, request_id: str) -> list[object]:
    return [event async for _, event in client.events(request_id, follow=False, idle=0.3)]


async def test_a_request_transfers_its_snapshot_to_the_target_region(
    settings: Settings, regions: Regions, source_repo: Repository, tmp_path: Path
) -> None:
    group = make_snapshot(source_repo, tmp_path / "src")
    async with transfer_running(settings) as client:
        request_id = await client.submit(replicate(group))
        state = await client.wait(request_id, within=60)
        seen = await events(client, request_id)
        assert state.phase is Phase.COMPLETED, state.reason
        result = state.steps[0].result
        assert result is not None
        assert result.outputs == {"snapshot": group, "target_repository": "west"}
        assert result.counts["records_copied"] == 2
        assert result.counts["blobs_sent"] == result.counts["blobs_needed"] > 20
        assert result.counts["verified_blobs"] >= result.counts["blobs_needed"]
        assert any(isinstance(e, Progress) and e.bytes_total > 0 for e in seen)
        report = next(e for e in seen if isinstance(e, Report))
        assert report.body["counts"]["damaged_files"] == 0

        # The same snapshot again (a retried replicate): nothing is sent.
        again = await client.wait(await client.submit(replicate(group)), within=60)
        assert again.phase is Phase.COMPLETED
        assert again.steps[0].result is not None and again.steps[0].result.counts["blobs_sent"] == 0
    target = Repository.open(regions.target, PASSWORD)
    assert {rec.name for _sid, rec in target.snapshots(group=group)} == {"shop/data", "manifests"}


@pytest.mark.parametrize(
    "regions", ["local"], indirect=True
)  # the damage path is the same on both stores; tested once here
async def test_damage_in_the_target_makes_the_request_partially_failed_with_the_files(
    settings: Settings, regions: Regions, source_repo: Repository, tmp_path: Path
) -> None:
    group = make_snapshot(source_repo, tmp_path / "src", files=8)
    async with transfer_running(settings) as client:
        first = await client.wait(await client.submit(replicate(group)), within=60)
        assert first.phase is Phase.COMPLETED
        for info in sorted(regions.target.list(layout.DATA), key=lambda i: -i.size)[:1]:  # a data pack
            data = bytearray(regions.target.get(info.key))
            data[200] ^= 0xFF
            regions.target.put(info.key, bytes(data))
        request_id = await client.submit(replicate(group))
        state = await client.wait(request_id, within=60)
        assert state.phase is Phase.PARTIALLY_FAILED
        result = state.steps[0].result
        assert result is not None and result.partial and result.counts["damaged_files"] >= 1
        assert any("file-" in w and "corrupt" in w for w in result.warnings)
        warnings = [e for e in await events(client, request_id) if isinstance(e, Warning)]
        assert warnings and "damaged in the target repository" in warnings[0].message


@pytest.mark.parametrize("regions", ["local"], indirect=True)  # tested once, on the local store
async def test_one_repository_for_both_regions_is_verified_and_nothing_copied(
    settings: Settings, regions: Regions, source_repo: Repository, tmp_path: Path
) -> None:
    group = make_snapshot(source_repo, tmp_path / "src", files=4)
    async with transfer_running(settings) as client:
        state = await client.wait(await client.submit(replicate(group, target_repository="east")), within=60)
    assert state.phase is Phase.COMPLETED
    result = state.steps[0].result
    assert result is not None and "same repository" in result.message
    assert result.counts["blobs_sent"] == 0 and result.counts["verified_blobs"] > 0


@pytest.mark.parametrize("regions", ["local"], indirect=True)  # tested once, on the local store
async def test_a_dry_run_writes_nothing_to_the_target_and_says_what_it_would_send(
    settings: Settings, regions: Regions, source_repo: Repository, tmp_path: Path
) -> None:
    group = make_snapshot(source_repo, tmp_path / "src", files=6)
    request = msgspec.structs.replace(replicate(group), dry_run=True)
    async with transfer_running(settings) as client:
        state = await client.wait(await client.submit(request), within=60)
    assert state.phase is Phase.COMPLETED, state.reason
    result = state.steps[0].result
    assert result is not None and result.counts["blobs_to_send"] == result.counts["blobs_needed"] > 5
    assert result.outputs["target_repository"] == "east"  # a restore dry run reads the source
    assert "nothing written" in result.message
    assert not list(regions.target.list("")), "a dry run created or wrote the target repository"
