"""``ferry sandbox up|down``, ``ferry clusters`` on the bus, shell completion and the console script."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from sandbox import sandbox_clusters
from sandbox.localstack import NatsServer
from tests.cli.conftest import invoke

ROOT = Path(__file__).parents[2]


def running(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0]
    except OSError:
        return False
    return state != "Z"


async def test_sandbox_up_starts_a_reachable_ferry_and_down_stops_exactly_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in [k for k in os.environ if k.startswith("FERRY_")]:
        monkeypatch.delenv(name)
    where = tmp_path / "sb"
    up = await invoke("sandbox", "up", "--dir", str(where), "--services", "intake,gateway")
    try:
        assert up.code == 0, up.err
        state_file = where / "sandbox.json"
        assert state_file.stat().st_mode & 0o777 == 0o600  # it holds the gateway token
        state = json.loads(state_file.read_text())
        assert "export FERRY_URL=" + state["gateway_url"] in up.out and state["kubeconfig"] in up.out
        names = [p["name"] for p in state["processes"]]
        assert names == [
            "nats-server",
            "weed",
            "cluster:east",
            "cluster:west",
            "service:intake",
            "service:gateway",
        ]
        assert all(running(p["pid"]) for p in state["processes"])
        monkeypatch.setenv("FERRY_TOKEN", state["token"])
        clusters = await invoke("clusters", "--url", state["gateway_url"], "-o", "json")
        assert clusters.code == 0, clusters.err
        reachable = {c["name"]: c["reachable"] for c in json.loads(clusters.out)["items"]}
        assert reachable == {"east": True, "west": True}
        submitted = await invoke(
            "replicate", "--from", "east", "-n", "shop", "--url", state["gateway_url"], "-o", "json"
        )
        assert submitted.code == 0, submitted.err
        listed = await invoke("list", "--bus", state["nats_url"], "-o", "json")
        assert [item["id"] for item in json.loads(listed.out)["items"]] == [json.loads(submitted.out)["id"]]
        again = await invoke("sandbox", "up", "--dir", str(where))
        assert again.code == 1 and "already runs" in again.err
    finally:
        down = await invoke("sandbox", "down", "--dir", str(where))
    assert down.code == 0, down.err
    assert not any(running(p["pid"]) for p in state["processes"])
    assert not (where / "sandbox.json").exists()


async def test_clusters_on_the_bus_probe_the_local_kubeconfig(
    tmp_path: Path, nats_server: NatsServer
) -> None:
    async with sandbox_clusters(tmp_path / "clusters", names=("east",)) as clusters:
        config = yaml.safe_load(clusters.kubeconfig_path.read_text())
        config["clusters"].append({"name": "gone", "cluster": {"server": "http://127.0.0.1:9"}})
        config["contexts"].append({"name": "gone", "context": {"cluster": "gone", "user": "east-admin"}})
        kubeconfig = tmp_path / "kubeconfig"
        kubeconfig.write_text(yaml.safe_dump(config))
        result = await invoke("clusters", "--bus", nats_server.url, "--kubeconfig", str(kubeconfig))
    assert result.code == 0, result.err
    east, gone = result.out.splitlines()[1:3]
    assert east.split()[:3] == ["east", clusters["east"].url, "yes"]
    assert gone.split()[:3] == ["gone", "http://127.0.0.1:9", "no"]


@pytest.mark.parametrize("shell", ["bash", "zsh"])
def test_completion_scripts_are_valid_and_know_the_flags(shell: str, tmp_path: Path) -> None:
    command = [sys.executable, "-m", "services.cli", "completion", shell]
    result = subprocess.run(command, capture_output=True, text=True, cwd=ROOT, timeout=30)
    assert result.returncode == 0
    script = tmp_path / f"ferry.{shell}"
    script.write_text(result.stdout)
    assert "--namespace-mapping" in result.stdout and "skip update recreate fail" in result.stdout
    assert "complete -F _ferry ferry" in result.stdout
    if shell == "zsh":
        assert "bashcompinit" in result.stdout
    else:
        check = subprocess.run(["bash", "-n", str(script)], capture_output=True, text=True)
        assert check.returncode == 0, check.stderr
        probe = f'source {script}; COMP_WORDS=(ferry migrate --existing-resource-policy re); COMP_CWORD=3; _ferry; echo "${{COMPREPLY[@]}}"'
        completed = subprocess.run(["bash", "-c", probe], capture_output=True, text=True)
        assert completed.stdout.split() == ["recreate"]


def test_the_ferry_console_script_runs_and_usage_errors_exit_2() -> None:
    ferry = Path(sys.executable).parent / "ferry"
    command = [str(ferry)] if ferry.exists() else [sys.executable, "-m", "services.cli"]
    helped = subprocess.run([*command, "--help"], capture_output=True, text=True, cwd=ROOT, timeout=30)
    assert helped.returncode == 0 and "Exit codes" in helped.stdout
    bad = subprocess.run(
        [*command, "migrate", "--from", "east", "-n", "shop"],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=30,
    )
    assert bad.returncode == 2
    assert "argument --to" in bad.stderr


@pytest.mark.slow
async def test_a_migration_in_the_sandbox_is_watched_to_its_verification(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every real service as `ferry sandbox up` starts them; the command watches a real migration."""
    for name in [k for k in os.environ if k.startswith("FERRY_")]:
        monkeypatch.delenv(name)
    where = tmp_path / "sb"
    up = await invoke("sandbox", "up", "--dir", str(where), "--seed")
    try:
        assert up.code == 0, up.err
        state = json.loads((where / "sandbox.json").read_text())
        monkeypatch.setenv("FERRY_TOKEN", state["token"])
        args = ["--from", "east", "--to", "west", "-n", "shop", "--namespace-mapping", "shop:shop-west"]
        watched = await invoke("migrate", *args, "--watch", "--url", state["gateway_url"])
        assert watched.code == 0, watched.out + watched.err
        assert "✓ discover" in watched.out and "✓ restore" in watched.out
        assert re.search(r"Verification of snapshot snap-\S+: verified", watched.out)
        assert "shop-west/" in watched.out  # the volumes, checked in the renamed namespace
        snapshots = await invoke("snapshots", "--bus", state["nats_url"], "-o", "json")
        assert [s["namespaces"] for s in json.loads(snapshots.out)["items"]] == [["shop"]]
    finally:
        await invoke("sandbox", "down", "--dir", str(where))
