"""``make demo``'s path end to end, as CI runs it: real processes, real bus, real S3, two sandbox clusters.

Smaller data than the demo's 200 MB keeps the suite quick; the path is the same.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.timeout(600)


def demo(*args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("FERRY_")}
    env["COLUMNS"] = "160"
    return subprocess.run(
        [sys.executable, "-m", "services.demo", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=540,
    )


def ferry(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "services.cli", *args], env=env, capture_output=True, text=True, timeout=60
    )


def test_the_demo_migrates_the_shop_east_to_west_and_verifies_it() -> None:
    done = demo("--size", "20MB")
    out = done.stdout
    assert done.returncode == 0, out[-3000:] + done.stderr[-3000:]
    assert "Verification of snapshot" in out and ": verified" in out
    assert "objects: 23/23 accounted for, 0 differ, 0 missing; volumes: 2/2 equal to the snapshot" in out
    # Both volumes landed in the renamed namespace, on the mapped storage class, with their bytes.
    for claim in ("pgdata-db-0", "web-uploads"):
        assert f"shop-west/{claim}" in out
        assert f"restore shop-west/{claim}" in out  # the restore mover's progress is labelled by claim
        assert f"{claim} │ Bound, class fast" in out
    assert "Deployment            │ web" in out
    assert "demo migrated and verified" in out


def test_keep_leaves_ferry_running_and_says_how_to_reach_it(tmp_path: Path) -> None:
    where = tmp_path / "demo"
    done = demo("--size", "2MB", "--keep", "--dir", str(where))
    env = {k: v for k, v in os.environ.items() if not k.startswith("FERRY_")}
    try:
        assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
        state = json.loads((where / "sandbox.json").read_text())
        assert f"export FERRY_URL={state['gateway_url']}" in done.stdout
        assert f"ferry sandbox down --dir {where}" in done.stdout
        assert oct((where / "token").stat().st_mode & 0o777) == "0o600"
        env.update(FERRY_URL=state["gateway_url"], FERRY_TOKEN=(where / "token").read_text().strip())
        listed = ferry("list", "-o", "json", env=env)
        assert listed.returncode == 0, listed.stderr
        [request] = json.loads(listed.stdout)["items"]
        assert request["phase"] == "Completed" and request["request"]["kind"] == "migrate"
    finally:
        stopped = ferry("sandbox", "down", "--dir", str(where), env=env)
    assert stopped.returncode == 0, stopped.stderr
    assert "gateway" in stopped.stdout and "nats-server" in stopped.stdout
    assert not (where / "token").exists()


def test_a_bad_argument_is_refused_before_anything_starts(tmp_path: Path) -> None:
    done = demo("--size", "lots", "--dir", str(tmp_path / "demo"))
    assert done.returncode != 0
    assert "--size" in done.stderr and "lots" in done.stderr
    assert not (tmp_path / "demo" / "sandbox.json").exists()


def test_the_demo_exits_non_zero_with_the_reason_when_the_migration_fails(tmp_path: Path) -> None:
    """Movers of an image that is not Ferry's store nothing: the snapshot step fails, so does the demo."""
    done = demo("--size", "1MB", "--image", "docker.io/library/busybox:1.36", "--dir", str(tmp_path / "demo"))
    assert done.returncode == 4, done.stdout[-3000:] + done.stderr[-3000:]
    assert "Failed" in done.stdout and "busybox" in done.stdout
    assert "demo failed (exit code 4)" in done.stdout
    assert not (tmp_path / "demo" / "sandbox.json").exists()  # everything was stopped
