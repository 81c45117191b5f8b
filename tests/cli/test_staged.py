"""A staged migration through ``ferry``, over both transports, on the stub stack (tests/gateway/stack.py):
stages, a cutover and a rollback as a person sees them — the lines under each request, ``ferry
migrations``, the live downtime clock — and the refusals of ``ferry rollback``."""

from __future__ import annotations

import json
import re

from shared.bus.client import BusClient
from shared.contracts.requests import MobilityRequest, RequestKind, Source, Target
from tests.cli.conftest import Ferry
from tests.gateway.stubs import REMOVED, WORKLOADS

APP = ["--from", "east", "--to", "west", "-n", "shop", "--namespace-mapping", "shop:shop-west"]


def plain(text: str) -> str:
    """The screen without a terminal's colours and cursor moves."""
    return re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", text)


async def test_two_stages_and_a_cutover_show_bytes_files_age_and_downtime(ferry: Ferry) -> None:
    for _ in range(2):
        stage = await ferry("migrate", *APP, "--stage", "--wait")
        assert stage.code == 0, stage.err
        assert re.search(
            r"stage: sent 5\.2 MB, restore wrote 7 file\(s\) \(3\.1 MB\); data as of .* \(age", stage.out
        )
    cutover = await ferry("migrate", *APP, "--cutover", "--wait", "-o", "json")
    assert cutover.code == 0, cutover.err
    assert json.loads(cutover.out)["request"]["cutover"] is True
    listed = await ferry("migrations")
    assert listed.code == 0, listed.err
    row = next(line for line in listed.out.splitlines() if "east/shop → west" in line)
    assert re.search(
        r"east/shop → west\s+2\s+\S+ \S+\s+655\.4 kB\s+\S+\s+completed\s+2\.5s\s+yes\s+no", row
    ), row
    plans = json.loads((await ferry("migrations", "-o", "json")).out)["items"]
    (plan,) = plans
    assert (plan["stages"], plan["cutover"], plan["downtime_seconds"], plan["source_quiesced"]) == (
        2,
        "completed",
        2.5,
        True,
    )
    assert len(plan["requests"]) == 3


async def test_watching_a_cutover_shows_the_downtime_clock_and_the_last_delta(ferry: Ferry) -> None:
    result = await ferry("migrate", *APP, "--cutover", "--watch", terminal=True)
    assert result.code == 0, result.err
    screen = plain(result.out)
    assert re.search(r"source quiesced at \d\d:\d\d:\d\d UTC \(2 workload\(s\)\): downtime starts", screen)
    assert re.search(r"target available at \d\d:\d\d:\d\d UTC: downtime 2\.5s", screen)
    assert "⏱ downtime 2.5s (target available)" in screen
    assert re.search(r"cutover: downtime 2\.5s \(source quiesced \d\d:\d\d:\d\d, target available", screen)
    assert "last delta: 655.4 kB sent" in screen


async def test_a_rollback_reports_each_object_removed_and_workload_restored(ferry: Ferry) -> None:
    cutover = await ferry("migrate", *APP, "--cutover", "--wait", "-o", "json")
    original = json.loads(cutover.out)["id"]
    result = await ferry("rollback", original, "--wait")
    assert result.code == 0, result.err
    for name in REMOVED:
        assert f"removed {name}" in result.out
    for name in WORKLOADS:
        assert f"restored {name}" in result.out
    assert f"{original}: marked rolled back" in result.out
    again = await ferry("rollback", original, "-o", "json")  # the same rollback request, not a second
    assert again.code == 0 and json.loads(again.out)["duplicate"] is True
    status = await ferry("status", original)
    assert "rolled back: the target cleaned, the source restored" in status.out
    (plan,) = json.loads((await ferry("migrations", "-o", "json")).out)["items"]
    assert plan["rolled_back"] is True and plan.get("source_quiesced", False) is False


async def test_rollback_refuses_an_unknown_request_and_a_request_that_is_not_a_migrate(
    ferry: Ferry, client: BusClient
) -> None:
    missing = await ferry("rollback", "migrate-20260101-000000-abcdef")
    assert missing.code == 1
    assert "ferry rollback: error: no request with id" in missing.err
    replica = await client.submit(
        MobilityRequest(
            kind=RequestKind.REPLICATE,
            source=Source(cluster="east", namespaces=["shop"]),
            target=Target(repository="west"),
            itinerary=["echo"],
        )
    )
    refused = await ferry("rollback", replica)
    assert refused.code == 1
    assert "is a replicate: only a migrate can be rolled back" in refused.err


async def test_no_migrations_yet(ferry: Ferry) -> None:
    result = await ferry("migrations")
    assert (result.code, result.out.strip()) == (0, "no migrations")
