"""``ferry sandbox up|down|status``: a whole Ferry on one machine, left running in the background.

``up`` starts nats-server and SeaweedFS (``sandbox.localstack``), two sandbox API servers ("east" and
"west", ``python -m sandbox serve``; optionally seeded with sandbox/apps/shop), and every Ferry
service that exists (``python -m services.<name>`` with FERRY_* env), each in its own session so it
outlives this command. It writes ``<dir>/sandbox.json`` (mode 0600: it holds the gateway token) with
the URLs, the token, the kubeconfig and every process id, and prints how to reach it. ``down`` stops
exactly the processes recorded there, after checking that each pid still runs the command it was
started with (a recycled pid is left alone). The sandbox is reached as a subprocess, never imported:
Ferry's code does not import its test double.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import importlib.util
import json
import os
import re
import secrets
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

import yaml
from rich.console import Console

from sandbox.localstack import NatsServer, SeaweedFS, StackError, free_port
from services.cli.transports import CliError

SERVICES = ("intake", "discovery", "snapshot", "transfer", "restore", "verify", "gateway")
CLUSTERS = ("east", "west")
READY = 60.0
_children: dict[int, subprocess.Popen[bytes]] = {}  # reaped by `down` when it runs in the same process


def _alive(pid: int, marker: str) -> bool:
    """Does ``pid`` still run the process we started (its command line contains ``marker``)?"""
    if pid in _children and _children[pid].poll() is not None:
        return False
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return False
    return marker in cmdline


def _spawn(name: str, cmd: list[str], log: Path, env: dict[str, str] | None = None) -> dict[str, Any]:
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("ab") as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, env=env, start_new_session=True)
    _children[proc.pid] = proc
    return {
        "name": name,
        "pid": proc.pid,
        "marker": cmd[-1] if name.startswith("service:") else name,
        "log": str(log),
    }


def _wait_log(pattern: str, entry: dict[str, Any]) -> re.Match[str]:
    deadline = time.monotonic() + READY
    log = Path(entry["log"])
    while time.monotonic() < deadline:
        text = log.read_text(errors="replace") if log.exists() else ""
        if found := re.search(pattern, text):
            return found
        if entry["pid"] in _children and _children[entry["pid"]].poll() is not None:
            raise CliError(f"{entry['name']} exited: {text[-800:]}")
        time.sleep(0.1)
    raise CliError(f"{entry['name']} not ready after {READY:.0f}s (log: {log})")


def _wait_http(url: str, entry: dict[str, Any]) -> None:
    deadline = time.monotonic() + READY
    while time.monotonic() < deadline:
        if entry["pid"] in _children and _children[entry["pid"]].poll() is not None:
            tail = Path(entry["log"]).read_text(errors="replace")[-800:]
            raise CliError(f"{entry['name']} exited: {tail}")
        with contextlib.suppress(OSError, ValueError):
            with urllib.request.urlopen(url, timeout=1) as response:
                if response.status == 200:
                    return
        time.sleep(0.1)
    raise CliError(f"{entry['name']} not ready after {READY:.0f}s (log: {entry['log']})")


def _shop() -> Path | None:
    spec = importlib.util.find_spec("sandbox")
    if spec is None or not spec.submodule_search_locations:
        return None
    apps = Path(next(iter(spec.submodule_search_locations))) / "apps" / "shop"
    return apps if any(apps.glob("*.y*ml")) else None


def up(args: argparse.Namespace, out: Console, root: Path, state_file: Path) -> int:
    state = start(args, out, root)
    _explain(out, state, state_file)
    return 0


def start(args: argparse.Namespace, out: Console, root: Path) -> dict[str, Any]:
    """Start the whole sandbox under ``root`` and record it in ``root/sandbox.json``; its state."""
    state_file = root / "sandbox.json"
    if state_file.exists() and any(
        _alive(p["pid"], p["marker"]) for p in json.loads(state_file.read_text())["processes"]
    ):
        raise CliError(f"a sandbox already runs from {root} (ferry sandbox down --dir {args.dir})")
    root.mkdir(parents=True, exist_ok=True)
    wanted = [s.strip() for s in (args.services or ",".join(SERVICES)).split(",") if s.strip()]
    state: dict[str, Any] = {
        "dir": str(root),
        "processes": [],
        "skipped": [],
        "started_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    try:
        _up(args, out, root, state, wanted)
    except (CliError, StackError, OSError) as e:
        down_processes(state["processes"])
        raise CliError(f"sandbox did not start: {e}") from None
    if "token" in state:
        state["token_file"] = str(_write_private(root / "token", state["token"] + "\n"))
    _write_private(state_file, json.dumps(state, indent=2))
    return state


def _write_private(path: Path, text: str) -> Path:
    """Write a file only its owner reads (mode 0600 before any byte lands, an old file's too)."""
    path.touch(mode=0o600)
    path.chmod(0o600)
    path.write_text(text)
    return path


def stop(root: Path, processes: list[dict[str, Any]]) -> list[str]:
    """Stop the sandbox's processes and forget its state and token; the data stays in ``root``."""
    stopped = down_processes(processes)
    for name in ("sandbox.json", "token"):
        (root / name).unlink(missing_ok=True)
    return stopped


def _up(args: argparse.Namespace, out: Console, root: Path, state: dict[str, Any], wanted: list[str]) -> None:
    """Start everything, recording each process in ``state`` as it starts (``down`` stops them)."""
    nats, weed = _start_stores(out, root, state["processes"])
    servers = _start_clusters(root, state["processes"])
    kubeconfig = root / "kubeconfig"
    kubeconfig.write_text(yaml.safe_dump(_kubeconfig(servers), sort_keys=False))
    state.update(nats_url=nats.url, s3=vars(weed.s3), clusters=servers, kubeconfig=str(kubeconfig))
    if args.seed:
        _seed(out, state, servers["east"])
    token = secrets.token_urlsafe(24)
    env = _service_env(nats, weed, kubeconfig, token)
    if getattr(args, "image", None):
        env["FERRY_IMAGE"] = args.image
    _start_services(root, state, wanted, env, token)


def _start_stores(out: Console, root: Path, processes: list[dict[str, Any]]) -> tuple[NatsServer, SeaweedFS]:
    """nats-server and SeaweedFS (``sandbox.localstack``), on free ports under ``root``."""
    nats = NatsServer(root / "nats").start()
    assert nats.proc is not None
    _children[nats.proc.pid] = nats.proc
    processes.append(
        {"name": "nats-server", "pid": nats.proc.pid, "marker": "nats-server", "log": str(nats.log_path)}
    )
    weed = SeaweedFS(root / "seaweedfs").start()
    assert weed.proc is not None
    _children[weed.proc.pid] = weed.proc
    processes.append(
        # weed's graceful stop takes 25 s while its data is already in its files: 2 s, then SIGKILL
        {
            "name": "weed",
            "pid": weed.proc.pid,
            "marker": "weed",
            "log": str(root / "seaweedfs" / "weed.log"),
            "grace": 2,
        }
    )
    out.print(
        f"nats-server at {nats.url}; SeaweedFS S3 at {weed.s3.endpoint}", highlight=False, soft_wrap=True
    )
    return nats, weed


def _start_clusters(root: Path, processes: list[dict[str, Any]]) -> dict[str, str]:
    """One sandbox API server per cluster, started together; their URLs by cluster name."""
    for name in CLUSTERS:
        data = root / "clusters" / name
        cmd = [sys.executable, "-m", "sandbox", "serve", "--name", name, "--port", "0", "--data", str(data)]
        entry = _spawn(f"cluster:{name}", cmd, root / "logs" / f"cluster-{name}.log")
        entry["marker"] = str(data)
        processes.append(entry)
    return {
        name: _wait_log(r"serving at (http://\S+)", entry).group(1)
        for name, entry in zip(CLUSTERS, processes[-len(CLUSTERS) :], strict=True)
    }


def _seed(out: Console, state: dict[str, Any], server: str) -> None:
    """The shop app (sandbox/apps/shop) into the east cluster, when the checkout has it."""
    shop = _shop()
    if shop is None:
        state["skipped"].append("seed: sandbox/apps/shop has no YAML")
        return
    done = subprocess.run(
        [sys.executable, "-m", "sandbox", "seed", "--server", server, str(shop)],
        capture_output=True,
        text=True,
        timeout=READY,
    )
    if done.returncode != 0:
        raise CliError(f"seeding east failed: {done.stderr[-800:]}")
    out.print(f"seeded east with {shop}", highlight=False, soft_wrap=True)


def _service_env(nats: NatsServer, weed: SeaweedFS, kubeconfig: Path, token: str) -> dict[str, str]:
    """The FERRY_* settings every service runs with (none inherited from this shell's FERRY_*)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("FERRY_")}
    env.update(
        FERRY_NATS_URL=nats.url,
        FERRY_S3_ENDPOINT=weed.s3.endpoint,
        FERRY_S3_ACCESS_KEY=weed.s3.access_key,
        FERRY_S3_SECRET_KEY=weed.s3.secret_key,
        FERRY_KUBECONFIG=str(kubeconfig),
        # Two buckets stand for two regions; the default repository is east's.
        FERRY_REPOSITORY=f"s3://ferry-{CLUSTERS[0]}/repository",
        FERRY_REPOSITORIES=",".join(f"{c}=s3://ferry-{c}/repository" for c in CLUSTERS),
        FERRY_REPO_PASSWORD=secrets.token_urlsafe(18),
        FERRY_LOG_FORMAT="text",
        FERRY_HTTP_HOST="127.0.0.1",
        FERRY_GATEWAY_HOST="127.0.0.1",
        FERRY_GATEWAY_TOKENS=json.dumps(
            [{"sha256": hashlib.sha256(token.encode()).hexdigest(), "scopes": ["admin"], "name": "sandbox"}]
        ),
    )
    return env


def _start_services(
    root: Path, state: dict[str, Any], wanted: list[str], env: dict[str, str], token: str
) -> None:
    """Every wanted service that is built, each with its own health port; then wait until all are ready."""
    started = []
    for name in wanted:
        if name not in SERVICES:
            raise CliError(f"unknown service {name!r} (known: {', '.join(SERVICES)})")
        if (
            importlib.util.find_spec(f"services.{name}") is None
            or importlib.util.find_spec(f"services.{name}.__main__") is None
        ):
            state["skipped"].append(f"service {name}: not built yet")
            continue
        health = free_port()
        service_env = {**env, "FERRY_HTTP_PORT": str(health)}
        if name == "gateway":
            service_env["FERRY_GATEWAY_PORT"] = str(free_port())
            state["gateway_url"] = f"http://127.0.0.1:{service_env['FERRY_GATEWAY_PORT']}"
            state["token"] = token
        entry = _spawn(
            f"service:{name}",
            [sys.executable, "-m", f"services.{name}"],
            root / "logs" / f"{name}.log",
            service_env,
        )
        entry["health"] = f"http://127.0.0.1:{health}"
        state["processes"].append(entry)
        started.append(entry)
    for entry in started:
        _wait_http(entry["health"] + "/readyz", entry)


def _kubeconfig(servers: dict[str, str]) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": n, "cluster": {"server": url}} for n, url in servers.items()],
        "users": [{"name": f"{n}-admin", "user": {}} for n in servers],
        "contexts": [{"name": n, "context": {"cluster": n, "user": f"{n}-admin"}} for n in servers],
        "current-context": next(iter(servers)),
    }


def _explain(out: Console, state: dict[str, Any], state_file: Path) -> None:
    out.print(f"[bold green]Ferry sandbox is up[/] (state: {state_file})", highlight=False, soft_wrap=True)
    for name, url in state["clusters"].items():
        out.print(f"  cluster {name}: {url}", highlight=False, soft_wrap=True)
    for note in state["skipped"]:
        out.print(f"  [yellow]skipped[/] {note}", highlight=False, soft_wrap=True)
    out.print("reach it with:", highlight=False, soft_wrap=True)
    if "gateway_url" in state:
        out.print(
            f"  export FERRY_URL={state['gateway_url']} FERRY_TOKEN=$(cat {state['token_file']})",
            highlight=False,
            soft_wrap=True,
        )
    else:
        out.print(f"  export FERRY_BUS={state['nats_url']}", highlight=False, soft_wrap=True)
    out.print(f"  export KUBECONFIG={state['kubeconfig']}", highlight=False, soft_wrap=True)
    out.print(
        f"  ferry clusters; ferry migrate --from east --to west -n shop --watch; ferry sandbox down --dir {state['dir']}",
        highlight=False,
        soft_wrap=True,
    )


def down_processes(processes: list[dict[str, Any]]) -> list[str]:
    """SIGTERM each recorded process group (services first), then SIGKILL what is left."""
    stopped = []
    live = [p for p in reversed(processes) if _alive(p["pid"], p["marker"])]
    for entry in live:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(entry["pid"], signal.SIGTERM)
    started = time.monotonic()
    for entry in live:
        deadline = started + float(entry.get("grace", 15))
        while _alive(entry["pid"], entry["marker"]) and time.monotonic() < deadline:
            _reap(entry["pid"])
            time.sleep(0.05)
        if _alive(entry["pid"], entry["marker"]):
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(entry["pid"], signal.SIGKILL)
        _reap(entry["pid"], block=True)
        stopped.append(entry["name"])
    return stopped


def _reap(pid: int, block: bool = False) -> None:
    proc = _children.get(pid)
    if proc is not None:
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=5 if block else 0.01)
        if proc.poll() is not None:
            _children.pop(pid, None)


def sandbox(args: argparse.Namespace, out: Console) -> int:
    root = Path(args.dir).resolve()
    state_file = root / "sandbox.json"
    if args.action == "up":
        return up(args, out, root, state_file)
    if not state_file.exists():
        raise CliError(f"no sandbox state in {root} (start one with: ferry sandbox up --dir {args.dir})")
    state = json.loads(state_file.read_text())
    if args.action == "status":
        for entry in state["processes"]:
            alive = _alive(entry["pid"], entry["marker"])
            out.print(
                f"{entry['name']:<20} pid {entry['pid']:<8} {'[green]running[/]' if alive else '[red]stopped[/]'}",
                highlight=False,
                soft_wrap=True,
            )
        return 0
    stopped = stop(root, state["processes"])
    out.print(
        f"sandbox down: stopped {', '.join(stopped) or 'nothing (already stopped)'}; data left in {root}",
        highlight=False,
        soft_wrap=True,
    )
    return 0
