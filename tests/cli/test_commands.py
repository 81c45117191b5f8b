"""The ``ferry`` commands against a running Ferry (real nats-server, real intake, stub steps), over
both transports: exit codes for each outcome, parseable JSON/YAML, live progress, list/status/cancel."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import re

import pytest
import yaml
from rich.console import Console

from services.cli.watching import Watcher
from services.gateway.service import GatewayService
from services.intake.intake import IntakeService
from shared.bus.client import BusClient
from shared.contracts.requests import MobilityRequest, RequestKind, Source, Target
from shared.contracts.states import ListQuery, Phase, RequestState
from shared.contracts.steps import StepName
from shared.runtime import Settings
from tests.cli.conftest import Ferry, invoke
from tests.gateway.stack import TOKENS, gateway_config, running
from tests.gateway.stubs import volume_step
from tests.waiting import eventually

STUB = ["--from", "east", "--to", "west", "-n", "shop", "--steps", "snapshot,verify"]


@pytest.mark.parametrize(
    ("behaviour", "code", "phase"),
    [
        pytest.param("ok", 0, "Completed", id="a completed request exits 0"),
        pytest.param("partial", 3, "PartiallyFailed", id="a partially failed request exits 3"),
        pytest.param("fail-perm", 4, "Failed", id="a failed request exits 4"),
    ],
)
async def test_wait_exits_with_the_code_of_the_outcome(
    ferry: Ferry, behaviour: str, code: int, phase: str
) -> None:
    result = await ferry("migrate", *STUB, "--label", f"behaviour={behaviour}", "--wait", "-o", "json")
    assert result.code == code, result.err
    state = json.loads(result.out)
    assert state["phase"] == phase
    assert [s["step"] for s in state["steps"]] == ["snapshot", "verify"]
    if behaviour == "fail-perm":
        assert "namespace shop does not exist" in state["reason"]


async def test_a_cancelled_request_exits_5(ferry: Ferry, client: BusClient) -> None:
    watching = asyncio.create_task(ferry("migrate", *STUB, "--label", "behaviour=block", "--watch"))

    async def running() -> bool:
        return any(s.phase is Phase.IN_PROGRESS for s in await client.list(ListQuery()))

    await eventually(running, what="the request started")
    (request,) = await client.list(ListQuery())
    cancelled = await ferry("cancel", request.id)
    assert cancelled.code == 0
    assert "cancellation requested" in cancelled.out
    result = await asyncio.wait_for(watching, timeout=30)
    assert result.code == 5, result.err
    assert "Cancelled" in result.out


async def test_watch_shows_progress_per_step_and_volume_and_the_verification_summary(ferry: Ferry) -> None:
    result = await ferry(
        "migrate", *STUB, "--label", "behaviour=sleep", "--label", "seconds=0.3", "--watch", terminal=True
    )
    assert result.code == 0, result.err
    screen = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", result.out)  # the terminal's colours and cursor moves
    for words in (
        "snapshot",
        "verify",
        "data-db-0",
        "uploads",
        "4.2 MB/4.2 MB",
        "1.0 MB/1.0 MB",
        "MB/s",
        "✓ snapshot",
        "✓ verify",
    ):
        assert words in screen, words
    assert "Verification of snapshot grp-1: verified" in screen
    assert "objects: 12/12 accounted for, 0 differ, 0 missing; volumes: 2/2 equal to the snapshot" in screen
    assert re.search(r"shop/data-db-0\s+\S+\s+yes\s+3\s+4\.2 MB", screen)
    assert screen.rstrip().endswith("Completed")


async def test_watch_of_a_finished_request_replays_it_and_exits_with_its_code(ferry: Ferry) -> None:
    submitted = await ferry("migrate", *STUB, "--label", "behaviour=partial", "--wait", "-o", "json")
    request_id = json.loads(submitted.out)["id"]
    result = await ferry("watch", request_id)  # a log, not a terminal: no animation, same story
    assert result.code == 3
    assert "PartiallyFailed" in result.out and "1 volume differs" in result.out
    assert "data-db-0" in result.out and "verification found problems" in result.out
    assert "✗ shop/uploads: img/1.png: content differs" in result.out
    assert "✗ configmaps/shop/x: forbidden" in result.out


async def test_status_list_and_submit_output_parses_as_json_and_yaml(ferry: Ferry) -> None:
    submitted = await ferry(
        "replicate", "--from", "east", "-n", "shop", "--steps", "snapshot", "--label", "team=a", "-o", "json"
    )
    assert submitted.code == 0
    accepted = json.loads(submitted.out)
    assert accepted["type"] == "accepted" and accepted["duplicate"] is False
    other = await ferry("migrate", *STUB, "--label", "team=b", "--wait", "-o", "yaml")
    assert yaml.safe_load(other.out)["phase"] == "Completed"

    status = await ferry("status", accepted["id"], "-o", "json")
    assert status.code == 0 and json.loads(status.out)["id"] == accepted["id"]
    listed = json.loads((await ferry("list", "-o", "json")).out)
    assert len(listed["items"]) == 2
    filtered = yaml.safe_load(
        (await ferry("list", "--label", "team=b", "--kind", "migrate", "-o", "yaml")).out
    )
    assert [item["request"]["labels"]["team"] for item in filtered["items"]] == ["b"]
    future = json.loads((await ferry("list", "--since", "2999-01-01T00:00:00Z", "-o", "json")).out)
    assert future == {"items": []}
    recent = json.loads((await ferry("list", "--since", "2000-01-01T00:00:00+02:00", "-o", "json")).out)
    assert len(recent["items"]) == 2
    table = await ferry("list")
    assert accepted["id"] in table.out and "replicate" in table.out and "east→west" in table.out
    shown = await ferry("status", accepted["id"])
    assert "snapshot" in shown.out and "STEP" in shown.out


async def test_an_unknown_request_is_an_error_naming_it(ferry: Ferry) -> None:
    result = await ferry("status", "migrate-nope")
    assert result.code == 1
    assert "no request with id" in result.err or "not-found" in result.err or "HTTP 404" in result.err


async def test_the_same_idempotency_key_is_reported_as_the_same_request(ferry: Ferry) -> None:
    first = json.loads((await ferry("migrate", *STUB, "--idempotency-key", "k-1", "-o", "json")).out)
    again = json.loads((await ferry("migrate", *STUB, "--idempotency-key", "k-1", "-o", "json")).out)
    assert again == {**first, "duplicate": True}


SUMMARY = {
    "id": "snap-7",
    "time": "2026-11-23T10:00:00Z",
    "app": "shop",
    "cluster": "east",
    "namespaces": ["shop"],
    "request_id": "replicate-1",
    "objects": 31,
    "volumes": 1,
    "bytes": 5_000_000,
    "new_bytes": 1_000_000,
    "consistency": "csi",
    "repository": "",
}
DETAIL = {
    "summary": SUMMARY,
    "counts": {"deployments.apps": 2, "configmaps": 3},
    "volume_records": [
        {"namespace": "shop", "claim": "data-db-0", "record": "r1", "bytes": 4_000_000, "new_bytes": 900_000,
         "stored_bytes": 500_000, "files": 12, "consistency": "csi"},
    ],
    "manifests_record": "r0",
}  # fmt: skip


async def test_snapshots_are_listed_described_and_deleted(
    ferry: Ferry, client: BusClient, transport: list[str]
) -> None:
    asked: list[tuple[str, bytes]] = []

    async def catalog(msg) -> None:  # the snapshot service's endpoints, as shared/contracts/snapshots.py says
        asked.append((msg.subject, msg.data))
        if msg.subject.endswith(".list"):
            await msg.respond(json.dumps({"items": [SUMMARY]}).encode())
        elif msg.subject.endswith(".delete"):
            await msg.respond(
                json.dumps({"id": "snap-7", "records_removed": 2, "bytes_freed": 1_000_000}).encode()
            )
        elif msg.data == b"snap-7":
            await msg.respond(json.dumps(DETAIL).encode())
        else:
            await msg.respond(
                b'{"type": "rejected", "error": "no snapshot", "field": "id", "code": "not-found"}'
            )

    sub = await client.nc.subscribe("ferry.snapshots.*", cb=catalog)
    await client.nc.flush()
    try:
        listed = await ferry("snapshots", "--cluster", "east", "--limit", "5")
        described = await ferry("snapshots", "snap-7")
        missing = await ferry("snapshots", "nope")
        as_json = await ferry("snapshots", "-o", "json")
        deleted = await ferry("snapshots", "snap-7", "--delete")
    finally:
        await sub.unsubscribe()
    assert listed.code == 0, listed.err
    assert re.search(r"snap-7\s+2026-11-23 10:00:00\s+east\s+shop\s+31\s+1\s+5.0 MB\s+csi", listed.out)
    query = {k: v for k, v in json.loads(asked[0][1]).items() if v}  # the gateway sends every field
    assert query == {"cluster": "east", "limit": "5"}
    assert described.code == 0
    assert "31 objects, 1 volumes, 5.0 MB (1.0 MB new), consistency csi" in described.out
    assert re.search(r"shop/data-db-0\s+12\s+4.0 MB", described.out)
    assert missing.code == 1 and "no snapshot" in missing.err
    assert json.loads(as_json.out) == {"items": [SUMMARY]}
    if "--url" in transport:  # the CLI token has read + submit; deleting needs admin
        assert deleted.code == 1 and "not allowed" in deleted.err and "admin" in deleted.err
    else:
        assert deleted.code == 0 and "snapshot snap-7 deleted (1.0 MB freed)" in deleted.out


async def test_a_watch_survives_a_gateway_restart(
    settings: Settings, client: BusClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The gateway keeps no state: another replica on the same address resumes the stream (Last-Event-ID)."""
    monkeypatch.setenv("FERRY_TOKEN", TOKENS["cli"])
    steps = [volume_step(step)(settings) for step in (StepName.SNAPSHOT, StepName.VERIFY)]
    first = GatewayService(settings, config=gateway_config())
    async with running(IntakeService(settings), *steps):
        await first.start()
        url, port = first.url, first.port
        watching = asyncio.create_task(
            invoke(
                "migrate",
                *STUB,
                "--label",
                "behaviour=sleep",
                "--label",
                "seconds=1.5",
                "--watch",
                "--url",
                url,
            )
        )

        async def started() -> bool:
            return any(s.phase is Phase.IN_PROGRESS for s in await client.list(ListQuery()))

        await eventually(started, what="the request started")
        await first.drain()  # the replica goes away mid-stream ...
        second = GatewayService(settings, config=dataclasses.replace(gateway_config(), port=port))
        async with second:  # ... and another takes its place
            result = await asyncio.wait_for(watching, timeout=30)
    assert result.code == 0, result.err
    assert "Completed" in result.out and "Verification of snapshot grp-1: verified" in result.out
    assert result.out.count("→ Completed") == 1  # resumed after the last event seen: nothing twice


@pytest.mark.parametrize(
    ("dry_run", "words"),
    [(True, "a dry run restores nothing to verify"), (False, "this itinerary does not verify")],
    ids=["a dry run", "an itinerary without verify"],
)
def test_the_summary_says_why_there_is_no_verification_report(dry_run: bool, words: str) -> None:
    console = Console(record=True, width=120)
    request = MobilityRequest(
        kind=RequestKind.MIGRATE,
        source=Source(cluster="east"),
        target=Target(cluster="west"),
        dry_run=dry_run,
    )
    watcher = Watcher(console, RequestState(id="r1", request=request, phase=Phase.COMPLETED))
    watcher.summary()
    assert f"no verification report ({words})" in console.export_text()


async def test_status_prints_a_step_s_document_or_says_which_ones_exist(ferry: Ferry) -> None:
    submitted = await ferry("migrate", *STUB, "--wait", "-o", "json")
    request_id = json.loads(submitted.out)["id"]
    shown = await ferry("status", request_id, "--document", "verification")
    assert shown.code == 0, shown.err
    report = json.loads(shown.out)
    assert report["snapshot"] == "grp-1" and [v["claim"] for v in report["volumes"]] == [
        "shop/data-db-0",
        "shop/uploads",
    ]
    as_yaml = await ferry("status", request_id, "--document", "verification", "-o", "yaml")
    assert yaml.safe_load(as_yaml.out) == report
    missing = await ferry("status", request_id, "--document", "rendered")
    assert missing.code == 1
    assert "has no rendered document (it has: verification)" in missing.err
