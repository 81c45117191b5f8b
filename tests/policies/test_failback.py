"""Failover then failback of the sample shop through its policy, end to end: every service the real
one (intake, policies, preflight, discovery, snapshot, transfer, restore, verify, rollback) on a real
nats-server, two local repositories (east's and the DR side's), sandbox clusters whose kubelet runs
Ferry's mover Jobs as real processes, and the primary probed through the kubeconfig.

One replication runs (a slot published by hand: the schedule is hourly), the failover finds east
answering and cuts over (east quiesced and left down, the shop up in west under its real namespace,
the same bytes), data is then written in west, and the failback brings west's bytes home: east ends
with exactly west's files, and its transfer sent only the delta, not the volumes.

Run with ``-s`` to see the figures.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable
from pathlib import Path

from nats.errors import NoRespondersError

from services.intake.policies import PolicyService
from shared.bus.client import BusClient
from shared.contracts.migrations import DOWNTIME
from shared.contracts.policies import PolicyPhase, PolicyState, slot_subject
from shared.contracts.states import Phase, RequestState
from shared.contracts.steps import StepName
from shared.kube import Cluster
from shared.runtime import Settings
from tests.migration.conftest import clusters, every_service, settings  # noqa: F401 — fixtures
from tests.policies.conftest import Policies, policy
from tests.restore.capturing import volume_dir
from tests.snapshot.helpers import tree, workload_state
from tests.waiting import eventually

CLAIMS = ("web-uploads", "pgdata-db-0")
ORIGINAL = {"web": 2, "db": 1, "suspend": False, "annotations": {}}
NEW_FILE = 400_000  # bytes written in west while it serves
SHOP = policy(
    "shop",
    schedule="@every 1h",
    source={"cluster": "east", "namespaces": ["shop"], "repository": "east"},
    target={"cluster": "west", "repository": "west"},
    rpo="1h",
    itinerary=[],
)


async def trees(cluster: Cluster) -> dict[str, dict[str, str]]:
    """Each claim's volume: relative path -> sha256 of every file (and dirs and symlinks)."""
    return {claim: tree(await volume_dir(cluster, "shop", claim)) for claim in CLAIMS}


async def volume_bytes(cluster: Cluster) -> int:
    total = 0
    for claim in CLAIMS:
        for root, _, files in os.walk(await volume_dir(cluster, "shop", claim)):
            total += sum((Path(root) / name).lstat().st_size for name in files)
    return total


def sent(state: RequestState) -> int:
    result = state.step_state(StepName.TRANSFER).result
    assert result is not None
    return result.bytes_moved


async def until(policies: Policies, what: str, check: Callable[[PolicyState], bool]) -> PolicyState:
    async def done() -> bool:
        return check(await policies.state("ferry.policies.get", "shop"))

    await eventually(done, within=180, what=what)
    return await policies.state("ferry.policies.get", "shop")


async def _answers(policies: Policies) -> bool:
    """The policy service's subscriptions reached the server (a loaded test process can lag)."""
    try:
        await policies.list()
    except NoRespondersError:
        return False
    return True


async def write_in_west(west: Cluster) -> None:
    """The shop at work in the DR cluster: a new upload, and a change inside a database file."""
    uploads = await volume_dir(west, "shop", "web-uploads")
    (uploads / "after-failover.bin").write_bytes(os.urandom(NEW_FILE))
    pgdata = await volume_dir(west, "shop", "pgdata-db-0")
    first = min(p for p in pgdata.rglob("*") if p.is_file() and p.lstat().st_size > 8192)
    await asyncio.to_thread(_change_page, first)


def _change_page(path: Path) -> None:
    with open(path, "r+b") as f:
        f.seek(4096)
        f.write(os.urandom(4096))


async def test_failover_then_failback_brings_the_dr_sides_bytes_home_sending_only_the_delta(
    settings: Settings,  # noqa: F811
    client: BusClient,
    kube: dict[str, Cluster],  # noqa: F811
    policies: Policies,
) -> None:
    east, west = kube["east"], kube["west"]
    assert await workload_state(east) == ORIGINAL
    async with every_service(settings), PolicyService(settings):
        await eventually(lambda: _answers(policies), within=10, what="the policy service answering")
        await policies.state("ferry.policies.create", SHOP)
        await client.nc.jetstream().publish(slot_subject("shop"), b"shop")  # one slot, now
        replicated = await until(
            policies, "a replica", lambda s: s.status.last_run_phase in ("Completed", "Failed")
        )
        replica = await client.get(replicated.status.last_run_request)
        assert replica.phase is Phase.COMPLETED, replica.reason

        over = await policies.state("ferry.policies.failover", "shop")
        failover = await client.wait(over.status.failover_request, within=240)
        assert failover.phase is Phase.COMPLETED, failover.reason
        failed_over = await until(policies, "the failover seen", lambda s: s.status.rto_seconds is not None)
        east_down, primary_bytes = await workload_state(east), await trees(east)
        west_up, dr_bytes = await workload_state(west), await trees(west)
        size = await volume_bytes(west)

        await write_in_west(west)
        written = await trees(west)
        back = await policies.state("ferry.policies.failback", "shop")
        failback = await client.wait(back.status.failback_request, within=240)
        assert failback.phase is Phase.COMPLETED, failback.reason
        home = await until(policies, "active again", lambda s: s.status.state is PolicyPhase.ACTIVE)
        east_after, west_after = await workload_state(east), await workload_state(west)
        east_bytes = await trees(east)
        await policies.state("ferry.policies.pause", "shop")

    # Failover: east answered, so a cutover; east left down, the shop up in west with east's bytes.
    status = failed_over.status
    assert (status.failover_mode, status.data_lost_seconds) == ("cutover", 0.0)
    assert status.state is PolicyPhase.FAILED_OVER and status.downtime_seconds == float(
        failover.outputs[DOWNTIME]
    )
    assert (east_down["web"], east_down["db"], east_down["suspend"]) == (0, 0, True)
    assert set(east_down["annotations"]) == {"web", "db", "cron"}
    assert west_up == ORIGINAL and dr_bytes == primary_bytes

    # Failback: east has west's bytes, new file and changed page included, and runs as before.
    assert east_bytes == written != primary_bytes
    assert "after-failover.bin" in east_bytes["web-uploads"]
    # The quiesced workloads were updated to the DR side's replicas, and the old quiesce's notes are gone.
    assert east_after == ORIGINAL
    assert (west_after["web"], west_after["db"], west_after["suspend"]) == (0, 0, True)
    assert home.status.failback_phase == "Completed" and home.status.failed_back_at

    # Only the delta travelled: the failback sent about the new data, far less than the volumes.
    replica_sent, failover_sent, failback_sent = sent(replica), sent(failover), sent(failback)
    print(
        f"\nfailover/failback of the shop: volumes {size} B in {sum(len(t) for t in written.values())} "
        f"entries; written in west {NEW_FILE + 4096} B\n"
        f"  replication {replica_sent:>9} B sent\n"
        f"  failover    {failover_sent:>9} B sent (cutover, downtime {status.downtime_seconds} s, "
        f"RTO {status.rto_seconds} s, data lost {status.data_lost_seconds} s)\n"
        f"  failback    {failback_sent:>9} B sent = {failback_sent / size:.3f} of the volumes, "
        f"{failback_sent / (NEW_FILE + 4096):.2f} x the data written in west"
    )
    assert NEW_FILE <= failback_sent < 0.5 * size, (failback_sent, size)
    assert failback_sent < 0.5 * replica_sent, (failback_sent, replica_sent)  # the first copy was whole
