"""``ferry policy``, ``ferry drill``, ``ferry drills``, ``ferry failover|failback`` against a running
Ferry (real nats-server, intake and policy service, stub steps), over both transports."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from shared.bus.client import BusClient
from shared.contracts.drills import DrillList, DrillReport
from tests.cli.conftest import Ferry, invoke
from tests.gateway.stack import TOKENS
from tests.waiting import eventually

CREATE = ["policy", "create", "shop-dr", "--from", "east", "-n", "shop", "--to", "west"]
HOURLY = ["--to-repository", "dr", "--schedule", "@every 1h", "--rpo", "30m", "--steps", "echo"]


async def test_a_policy_is_created_listed_shown_paused_resumed_and_deleted(
    ferry: Ferry, transport: list[str], tmp_path: Path
) -> None:
    created = await ferry(
        *CREATE,
        *HOURLY,
        "--keep-last",
        "24",
        "--target-keep-within",
        "7d",
        "--namespace-mapping",
        "shop:shop-dr",
    )
    assert created.code == 0, created.err
    assert "shop-dr" in created.out and "RPO" in created.out and "/ 30m ✓" in created.out
    shown = json.loads((await ferry("policy", "get", "shop-dr", "-o", "json")).out)
    policy = shown["policy"]
    assert policy["source_retention"] == {"keep_last": 24, "keep_within": ""}
    assert policy["target_retention"] == {"keep_last": 24, "keep_within": "7d"}
    assert policy["target"]["namespace_map"] == {"shop": "shop-dr"}
    assert policy["target"]["repository"] == "dr"

    listed = await ferry("policy", "list")
    assert listed.code == 0, listed.err
    row = next(line for line in listed.out.splitlines() if line.strip().startswith("shop-dr"))
    assert re.search(r"RPO \d+\.\ds / 30m ✓", row), row
    assert "active" in row and "east/shop → west (dr)" in row

    paused = await ferry("policy", "pause", "shop-dr")
    assert paused.code == 0 and "policy shop-dr paused: paused" in paused.out
    listed = await ferry("policy", "list")
    assert "paused" in listed.out
    resumed = await ferry("policy", "resume", "shop-dr", "-o", "json")
    assert json.loads(resumed.out)["status"]["state"] == "active"

    admin: list[str] = []
    if "--url" in transport:  # over the gateway, deleting a policy needs the admin scope
        refused = await ferry("policy", "delete", "shop-dr")
        assert refused.code == 1 and "lacks the scope this call needs: admin" in refused.err
        (tmp_path / "admin").write_text(TOKENS["admin"])
        admin = ["--token-file", str(tmp_path / "admin")]
    deleted = await ferry("policy", "delete", "shop-dr", *admin)
    assert deleted.code == 0 and "policy shop-dr deleted" in deleted.out
    assert (await ferry("policy", "list")).out.strip() == "no policies"


async def test_a_breached_rpo_is_shown_in_red_words(ferry: Ferry, client: BusClient) -> None:
    created = await ferry(*CREATE, "--schedule", "@every 1h", "--rpo", "1s", "--steps", "echo")
    assert created.code == 0, created.err

    async def breached() -> bool:
        return (await client.policy_get("shop-dr")).status.breached

    await eventually(breached, within=10, what="the RPO of a policy without a replica is breached")
    row = next(line for line in (await ferry("policy", "list")).out.splitlines() if "shop-dr" in line)
    assert re.search(r"RPO \S+ / 1s ✗ BREACHED", row), row
    shown = await ferry("policy", "get", "shop-dr")
    assert "RPOBreached since" in shown.out and "no replica yet" in shown.out


@pytest.mark.parametrize(
    ("flags", "flag", "words"),
    [
        pytest.param(
            ["--schedule", "@every 500ms", "--rpo", "30m"], "--schedule", "whole hours", id="a bad schedule"
        ),
        pytest.param(["--schedule", "@every 1h", "--rpo", "soon"], "--rpo", "not a duration", id="a bad rpo"),
        pytest.param(
            ["--schedule", "0 0 2 * * *", "--time-zone", "Mars/Olympus", "--rpo", "1d"],
            "--time-zone",
            "unknown time zone",
            id="an unknown time zone",
        ),
        pytest.param(
            ["--schedule", "@every 1h", "--rpo", "30m", "--keep-within", "a while"],
            "--keep-within",
            "not a duration",
            id="a bad shared retention",
        ),
        pytest.param(
            ["--schedule", "@every 1h", "--rpo", "30m", "--target-keep-within", "a while"],
            "--target-keep-within",
            "not a duration",
            id="a bad retention of one side",
        ),
        pytest.param(
            ["--schedule", "@every 1h", "--rpo", "30m", "--drill-schedule", "weekly"],
            "--drill-schedule",
            "",
            id="a bad drill schedule",
        ),
    ],
)
async def test_a_bad_policy_flag_is_refused_naming_it_before_anything_is_sent(
    flags: list[str], flag: str, words: str
) -> None:
    result = await invoke(*CREATE, *flags, "--url", "http://127.0.0.1:9")  # nothing listens there
    assert result.code == 2, result.err
    assert f"ferry policy: error: argument {flag}:" in result.err and words in result.err


async def test_the_service_s_refusals_are_errors_naming_the_field(ferry: Ferry) -> None:
    assert (await ferry(*CREATE, *HOURLY)).code == 0
    conflict = await ferry(*CREATE, "--schedule", "@every 2h", "--rpo", "3h", "--steps", "echo")
    assert conflict.code == 1
    assert "exists with another definition" in conflict.err and "$.name" in conflict.err
    missing = await ferry("policy", "get", "nope")
    assert missing.code == 1 and "ferry policy: error: no policy named" in missing.err


async def test_the_ad_hoc_drill_still_works_and_keeps_on_request(ferry: Ferry) -> None:
    result = await ferry(
        "drill", "--from", "east", "--to", "west", "--from-snapshot", "latest", "-n", "shop",
        "--steps", "echo", "--keep", "--wait", "-o", "json",
    )  # fmt: skip
    assert result.code == 0, result.err
    state = json.loads(result.out)
    assert state["request"]["kind"] == "drill" and state["request"]["keep"] is True
    assert state["request"]["source"]["snapshot"] == "latest"
    app = await ferry(
        "drill",
        "shop",
        "--from",
        "east",
        "--to",
        "west",
        "--snapshot",
        "latest",
        "--steps",
        "echo",
        "-o",
        "json",
    )
    assert app.code == 0, app.err
    assert json.loads((await ferry("status", json.loads(app.out)["id"], "-o", "json")).out)["request"][
        "source"
    ]["namespaces"] == ["shop"]


@pytest.mark.parametrize(
    ("argv", "flag"),
    [
        pytest.param(["drill"], "--from", id="a drill of nothing"),
        pytest.param(
            ["drill", "--from", "east", "--to", "west", "-n", "shop"], "--from-snapshot", id="no snapshot"
        ),
    ],
)
async def test_a_drill_without_what_to_drill_is_a_usage_error(argv: list[str], flag: str) -> None:
    result = await invoke(*argv, "--url", "http://127.0.0.1:9")
    assert result.code == 2 and f"argument {flag}:" in result.err, result.err


REPORTS = DrillList(
    items=[
        DrillReport(
            request_id="drill-20261201-100000-aa",
            policy="shop-dr",
            source_cluster="east",
            namespaces=["shop"],
            target_cluster="west",
            snapshot="snap-42",
            started_at="2026-12-01T10:00:00Z",
            rto_seconds=252.0,
            rpo_seconds=840.0,
            verified=False,
            problems=["deployments.apps/shop/web: not available", "shop/data-db-0: content differs"],
            cleanup="failed: namespace shop-drill-aa stuck terminating",
        ),
        DrillReport(
            request_id="drill-20261130-100000-bb",
            source_cluster="east",
            namespaces=["blog"],
            snapshot="snap-41",
            started_at="2026-11-30T10:00:00Z",
            rto_seconds=61.5,
            rpo_seconds=3600.0,
            verified=True,
            cleanup="removed",
        ),
    ]
)


async def test_drills_are_a_table_of_rto_rpo_verification_and_clean_up(
    ferry: Ferry, client: BusClient
) -> None:
    asked: list[bytes] = []

    async def drills(msg) -> None:  # the intake's ferry.drills.list, as shared/contracts/drills.py says
        asked.append(msg.data)
        await msg.respond(__import__("msgspec").json.encode(REPORTS))

    sub = await client.nc.subscribe("ferry.drills.list", cb=drills)
    try:
        table = await ferry("drills", "shop-dr")
        as_json = await ferry("drills", "-o", "json")
    finally:
        await sub.unsubscribe()
    assert table.code == 0, table.err
    lines = table.out.splitlines()
    assert re.search(
        r"2026-12-01 10:00:00\s+drill-20261201-100000-aa\s+shop-dr\s+snap-42\s+4m12s\s+14m00s\s+✗ no",
        lines[1],
    )
    assert "deployments.apps/shop" in table.out and "(+1 more)" in table.out  # the first problem, folded
    assert "failed: namespace" in table.out and "shop-drill-aa stuck" in table.out
    assert re.search(r"east/blog\s+snap-41\s+1m01s\s+1h00m\s+✓ yes", table.out)
    assert json.loads(asked[0]) == {"policy": "shop-dr", "limit": 50}
    assert json.loads(as_json.out)["items"][1]["cleanup"] == "removed"


async def test_a_policy_drill_runs_and_is_listed_with_its_policy(ferry: Ferry) -> None:
    assert (await ferry(*CREATE, *HOURLY)).code == 0
    drilled = await ferry("drill", "shop-dr", "--keep", "--wait", "-o", "json")
    assert drilled.code == 0, drilled.err
    state = json.loads(drilled.out)
    assert state["request"]["kind"] == "drill" and state["request"]["keep"] is True
    assert state["request"]["labels"]["ferry.dev/policy"] == "shop-dr"
    listed = json.loads((await ferry("drills", "shop-dr", "-o", "json")).out)
    assert [d["request_id"] for d in listed["items"]] == [state["id"]]
    table = await ferry("drills")
    assert state["id"] in table.out and "shop-dr" in table.out
    missing = await ferry("drill", "nope")
    assert missing.code == 1 and "no policy named" in missing.err


async def test_a_refused_failover_is_an_error_naming_the_field(ferry: Ferry) -> None:
    """The stack's policy service has no kubeconfig: it cannot tell whether the primary serves, and
    refuses (a failover followed to its end needs sandbox clusters: tests/policies covers it)."""
    assert (await ferry(*CREATE, *HOURLY)).code == 0
    refused = await ferry("failover", "shop-dr", "--wait")
    assert refused.code == 1
    assert "ferry failover: error: cluster east is not a context" in refused.err
    assert "$.source.cluster" in refused.err
    shown = json.loads((await ferry("policy", "get", "shop-dr", "-o", "json")).out)
    assert shown["status"]["state"] == "active"  # nothing failed over
