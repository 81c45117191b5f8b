"""A retried transfer counts the work of every attempt: its result gives the whole copy, split into
what was already in the target and what this attempt sent, and ``ferry_bytes_total`` covers the
bytes the failed attempt sent."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import nats
import pytest
from prometheus_client.parser import text_string_to_metric_families

from services.intake.intake import IntakeService
from services.transfer.transferring import TransferOptions, TransferService
from services.transfer.verifying import verify_group
from shared.bus.client import BusClient
from shared.contracts.events import Failed
from shared.contracts.states import Phase
from shared.repository import Repository
from shared.runtime import Settings
from shared.store import TemporaryStoreError
from tests.transfer.conftest import Regions, make_snapshot
from tests.transfer.test_service import events, replicate


def bytes_moved(service: TransferService) -> float:
    from prometheus_client import generate_latest

    text = generate_latest(service.metrics.registry).decode()
    return sum(
        sample.value
        for family in text_string_to_metric_families(text)
        if family.name == "ferry_bytes"
        for sample in family.samples
        if sample.name == "ferry_bytes_total" and sample.labels.get("step") == "transfer"
    )


@pytest.mark.parametrize("regions", ["local"], indirect=True)
async def test_a_transfer_retried_after_copying_everything_reports_the_whole_copy(
    settings: Settings,
    regions: Regions,
    source_repo: Repository,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    group = make_snapshot(source_repo, tmp_path / "src")
    calls = []

    def verify_once_failing(*args: Any, **kwargs: Any) -> Any:
        calls.append(1)
        if len(calls) == 1:  # the first attempt copied everything, then lost the store
            raise TemporaryStoreError("connection reset while reading back")
        return verify_group(*args, **kwargs)

    monkeypatch.setattr("services.transfer.transferring.verify_group", verify_once_failing)
    service = TransferService(settings, options=TransferOptions(threads=2))
    nc = await nats.connect(settings.nats.url)
    try:
        async with IntakeService(settings), service:
            client = BusClient(nc, timeout=5)
            request_id = await client.submit(replicate(group))
            state = await client.wait(request_id, within=90)
            seen = await events(client, request_id)
            moved = bytes_moved(service)
    finally:
        await nc.close()

    assert state.phase is Phase.COMPLETED, state.reason
    assert [e.attempt for e in seen if isinstance(e, Failed)] == [1]
    result = state.steps[0].result
    assert result is not None and state.steps[0].attempts == 2
    counts = result.counts
    assert counts["attempt"] == 2
    assert counts["records"] == counts["records_present"] == 2 and counts["records_copied"] == 0
    assert counts["blobs_needed"] == counts["blobs_present"] > 20, counts  # the whole snapshot...
    assert counts["bytes_needed"] == counts["bytes_present"] > 5_000_000, counts  # ...was already there
    assert counts["blobs_sent"] == counts["bytes_sent"] == 0, counts  # this attempt sent nothing
    assert (
        f"2 record(s), {counts['blobs_needed']} chunk(s), {counts['bytes_needed']} bytes in the target"
        in result.message
    ), result.message
    assert f"{counts['bytes_present']} bytes were already there" in result.message, result.message
    # The first attempt sent every byte and failed afterwards: the metric still has them.
    assert moved == counts["bytes_needed"], (moved, counts)
