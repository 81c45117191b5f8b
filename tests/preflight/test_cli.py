"""``ferry migrate ... --preflight``: only the checks, their table, and an exit code that says it."""

from __future__ import annotations

import json
import re
from pathlib import Path

from sandbox import SandboxClusters
from shared.repository import Repository
from shared.runtime import Settings
from shared.store import LocalStore
from tests.cli.conftest import invoke
from tests.preflight.conftest import ferry
from tests.store.conftest import FAST_SCRYPT

MIGRATE = ["migrate", "--from", "east", "--to", "west", "-n", "shop", "--namespace-mapping", "shop:shop-west",
           "--storage-class-mapping", "standard:fast", "--from-repository", "east", "--to-repository", "west"]  # fmt: skip


async def test_migrate_preflight_prints_the_table_and_exits_0_when_all_pass(settings: Settings) -> None:
    async with ferry(settings):
        result = await invoke(*MIGRATE, "--preflight", "--bus", settings.nats.url)
    assert result.code == 0, result.out + result.err
    assert "running the preflight checks" in result.err
    assert re.search(r"CHECK\s+SUBJECT\s+OK\s+DETAIL", result.out)
    assert re.search(r"cluster\s+source east\s+✓\s+reachable, Kubernetes v1\.32\.0-sandbox", result.out)
    assert re.search(r"storage class\s+target west: fast \(mapped from standard\)\s+✓\s+exists", result.out)
    assert re.search(r"\d+ checks, all passed", result.out)
    assert result.out.rstrip().endswith("Completed")


async def test_migrate_preflight_lists_every_problem_and_exits_4(
    settings: Settings, clusters: SandboxClusters, repositories: dict[str, Path]
) -> None:
    Repository.init(LocalStore(repositories["west"]), b"another key", scrypt_n=FAST_SCRYPT).close()
    await clusters["west"].call(lambda s: s.access.deny("delete statefulsets.apps"))
    argv = [*MIGRATE, "--storage-class-mapping", "fast:gold"]
    async with ferry(settings):
        result = await invoke(*argv, "--preflight", "--bus", settings.nats.url)
        as_json = await invoke(*argv, "--preflight", "-o", "json", "--bus", settings.nats.url)
    assert result.code == 4, result.out + result.err
    assert re.search(
        r"access\s+target west: create, patch, delete in shop-west\s+✗\s+denied: delete statefulsets\.apps",
        result.out,
    )
    assert re.search(
        r"storage class\s+target west: gold \(mapped from fast\)\s+✗\s+does not exist", result.out
    )
    assert re.search(r"repository\s+target west .*✗\s+the configured password does not open it", result.out)
    assert re.search(r"\d+ checks, 3 problem\(s\)", result.out)
    assert result.out.rstrip().endswith("Failed")
    doc = json.loads(as_json.out)
    assert as_json.code == 4 and doc["phase"] == "Failed" and doc["problems"] == 3
    assert sorted(c["what"] for c in doc["checks"] if not c["ok"]) == [
        "access",
        "repository",
        "storage class",
    ]


def test_the_table_shows_details_as_they_are_written() -> None:
    from rich.console import Console

    from services.cli.rendering import preflight_table

    console = Console(record=True, width=200)
    detail = "no default repository configured (set FERRY_REPOSITORY or [repositories] default)"
    console.print(
        preflight_table(
            {"checks": [{"what": "repository", "subject": "source default", "ok": False, "detail": detail}]}
        )
    )
    assert detail in console.export_text()
