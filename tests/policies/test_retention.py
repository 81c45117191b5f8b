"""A policy's retention, end to end: three replications of the sample shop (every step the real
service, on a real nats-server and two local repositories), the source side keeping its newest
snapshot and the DR side its two newest, applied after each completed run and reported."""

from __future__ import annotations

import asyncio
import io

import msgspec
from rich.console import Console

from services.cli.policies import show_policy
from services.intake.policies import PolicyService
from shared.bus.client import BusClient
from shared.contracts import subjects
from shared.contracts.events import Report
from shared.contracts.policies import PolicyState, event_id, slot_subject
from shared.contracts.snapshots import SnapshotList, SnapshotQuery
from shared.contracts.states import Phase
from shared.runtime import Settings
from tests.migration.conftest import clusters, every_service, settings  # noqa: F401 — fixtures
from tests.policies.conftest import Policies, policy
from tests.waiting import eventually

SHOP = policy(
    "shop",
    schedule="@every 1h",
    source={"cluster": "east", "namespaces": ["shop"], "repository": "east"},
    target={"cluster": "west", "repository": "west"},
    rpo="1h",
    itinerary=["discover", "snapshot", "transfer"],
    source_retention={"keep_last": 1},
    target_retention={"keep_last": 2},
)


async def snapshots(client: BusClient, repository: str) -> list[str]:
    """The snapshot ids the catalog lists in a repository, as ``ferry snapshots`` shows them."""
    query = msgspec.json.encode(SnapshotQuery(repository=repository))
    reply = await client.nc.request(subjects.SNAPSHOTS_LIST, query, timeout=30)
    return sorted(s.id for s in msgspec.json.decode(reply.data, type=SnapshotList).items)


async def one_run(client: BusClient, policies: Policies, runs: list[str]) -> PolicyState:
    """Fire one slot by hand; the state once its run completed and the retention after it applied."""
    before = (await policies.state("ferry.policies.get", "shop")).status.runs
    await client.nc.jetstream().publish(slot_subject("shop"), b"shop")

    async def retained() -> bool:
        status = (await policies.state("ferry.policies.get", "shop")).status
        if status.runs == before or status.last_run_phase not in ("Completed", "Failed", "PartiallyFailed"):
            return False
        assert status.last_run_phase == "Completed", status
        return status.retained_run == status.last_run_request

    await eventually(retained, within=120, what=f"run {before + 1} completed and retention applied")
    state = await policies.state("ferry.policies.get", "shop")
    runs.append(state.status.last_run_request)
    await asyncio.sleep(1.1)  # the next slot falls in another second (a slot is keyed by its second)
    return state


async def test_retention_keeps_the_newest_on_each_side_and_says_what_it_removed(
    settings: Settings,  # noqa: F811
    client: BusClient,
    policies: Policies,
) -> None:
    runs: list[str] = []
    async with every_service(settings), PolicyService(settings):
        await policies.state("ferry.policies.create", SHOP)
        for _ in range(3):
            state = await one_run(client, policies, runs)
        made = {rid: (await client.get(rid)).outputs["snapshot"] for rid in runs}
        east, west = await snapshots(client, "east"), await snapshots(client, "west")
        events = [e async for _, e in client.events(event_id("shop"), follow=False, idle=0.3)]
        newest = await client.get(runs[-1])

    assert newest.phase is Phase.COMPLETED
    assert east == [made[runs[2]]]  # the source keeps its newest only
    assert west == sorted([made[runs[1]], made[runs[2]]])  # the DR side its two newest
    status = state.status
    assert status.retained_run == runs[2] and status.last_retention_at
    assert status.last_retention.startswith(f"after {runs[2]}: source (east): kept 1, removed 1")
    assert "target (west): kept 2, removed 1" in status.last_retention
    reports = [e.body for e in events if isinstance(e, Report) and e.title == "retention"]
    assert [r["run"] for r in reports] == runs
    assert reports[0]["source"]["removed"] == [] and reports[1]["target"]["removed"] == []
    assert reports[2]["source"]["removed"] == [made[runs[1]]]
    assert reports[2]["target"]["removed"] == [made[runs[0]]]

    # What `ferry policy get shop` shows.
    console = Console(file=io.StringIO(), width=400)
    show_policy(console, state)
    shown = console.file.getvalue()  # type: ignore[attr-defined]
    assert "retention:      source last 1; target last 2" in shown
    assert (
        f"last retention: {status.last_retention_at[:19].replace('T', ' ')} after {runs[2]}: source" in shown
    )
