"""The proof on a real database: a live snapshot of a SQLite database taken while its writer commits,
made safe by the ledger's Velero hooks, restored in the other cluster with its restore hooks."""

from __future__ import annotations

import shutil
import sqlite3
from pathlib import Path

from sandbox import SandboxClusters
from shared.bus.client import BusClient
from shared.contracts.events import Report
from shared.contracts.requests import MobilityRequest, RequestKind, Source, Target, VolumePolicy
from shared.contracts.states import Phase
from shared.kube import Cluster
from shared.runtime import Settings
from tests.hooks.conftest import ledger_volume, services, writer
from tests.waiting import eventually


def committed(log: Path) -> list[tuple[int, float]]:
    """(n, commit time) of every transaction the writer committed, from its log."""
    rows = []
    for line in log.read_text().splitlines():
        n, at = line.split()
        rows.append((int(n), float(at)))
    return rows


async def test_a_live_snapshot_of_a_running_sqlite_writer_restores_a_sound_database_with_every_commit_before_the_pre_hook(
    settings: Settings, client: BusClient, clusters: SandboxClusters, kube: dict[str, Cluster], tmp_path: Path
) -> None:
    east = await ledger_volume(clusters, kube)
    log = tmp_path / "committed.log"
    request = MobilityRequest(
        kind=RequestKind.MIGRATE,
        source=Source(cluster="east", namespaces=["ledger"], repository="east"),
        target=Target(cluster="west", repository="west"),
        volumes=VolumePolicy(method="live"),  # type: ignore[arg-type]
        itinerary=["discover", "snapshot", "transfer", "restore"],
    )
    async with writer(east, log), services(settings):
        await eventually(lambda: log.exists() and len(committed(log)) >= 200, within=30, what="200 commits")
        rid = await client.submit(request)
        state = await client.wait(rid, within=180)
        paused_at = len(committed(log))
        # The post hook released the writer: it commits again after the capture.
        await eventually(lambda: len(committed(log)) > paused_at + 50, within=30, what="the writer resumed")
        events = [e async for _, e in client.events(rid, follow=False, idle=0.3)]
    assert state.phase is Phase.COMPLETED, state.reason

    claim = await kube["west"].get("persistentvolumeclaims", "ledger-data", "ledger")
    west = clusters["west"].volume_path(claim["spec"]["volumeName"])
    copy = tmp_path / "restored"
    shutil.copytree(west, copy)  # read a copy: opening the database may write its WAL
    db = sqlite3.connect(copy / "ledger.db")
    assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    numbers = [n for (n,) in db.execute("SELECT n FROM txns ORDER BY n")]
    total = db.execute("SELECT count FROM totals").fetchone()[0]
    db.close()
    pre_started = float((copy / ".pause").read_text())  # what the pre hook wrote when it began
    before = [n for n, at in committed(tmp_path / "committed.log") if at < pre_started]
    assert len(before) >= 200
    assert numbers == list(range(1, len(numbers) + 1)) and total == len(numbers)  # no gap, no torn txn
    assert set(before) <= set(numbers)  # every transaction committed before the pre hook is there
    assert numbers[-1] == int((copy / ".paused").read_text())  # and the copy is exactly the paused state

    # The restore hooks: the init container in the restored template, the exec after readiness.
    deployment = await kube["west"].get("deployments.apps", "ledger", "ledger")
    inits = deployment["spec"]["template"]["spec"]["initContainers"]
    assert inits[0]["name"] == "clear-pause" and inits[0]["image"] == "busybox:1.36"
    assert (west / "restore-check").read_text() == "ok"  # the post-restore hook's integrity check
    runs = [
        (e.step.value if e.step else "", e.body["phase"], e.body["exit_code"])
        for e in events
        if isinstance(e, Report) and e.document == "hook"
    ]
    assert runs == [("snapshot", "pre", 0), ("snapshot", "post", 0), ("restore", "post", 0)]
