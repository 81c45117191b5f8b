"""``make demo``: migrate the sample app from cluster "east" to cluster "west", live, then prove it.

It starts everything a deployment has, on this machine (``ferry sandbox up``'s code): nats-server
with JetStream, SeaweedFS with two buckets standing for two regions, two sandbox API servers, all
four services and the gateway as separate processes. It seeds "east" with the shop app, fills its
volumes with about 200 MB, then runs exactly what a user types::

    ferry migrate --from east --to west -n shop --namespace-mapping shop:shop-west \\
        --storage-class-mapping standard:fast --from-repository east --to-repository west --watch

and ends with the verification report and a look at what landed in "west". The exit code is the
migration's (0 only when it completed and verified). ``--keep`` leaves it all running and says how
to reach it.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from sandbox.apps import parse_size
from services.cli import sandboxing
from services.cli.main import run as ferry
from services.cli.transports import CliError
from shared.kube import Clusters

console = Console(highlight=False)
SOURCE, TARGET = "shop", "shop-west"


def size(text: str) -> str:
    try:
        parse_size(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a size like 200MB or 1GiB") from None
    return text


def migrate_argv(state: dict[str, Any]) -> list[str]:
    """``ferry migrate`` as a person would type it: the shop from east to west, renamed, watched."""
    flags = {
        "--from": "east",
        "--to": "west",
        "-n": SOURCE,
        "--namespace-mapping": f"{SOURCE}:{TARGET}",
        "--storage-class-mapping": "standard:fast",
        "--from-repository": "east",
        "--to-repository": "west",
        "--url": state["gateway_url"],
        "--token-file": state["token_file"],
    }
    return ["migrate", *(word for pair in flags.items() for word in pair), "--watch"]


def fill(state: dict[str, Any], size: str) -> None:
    """Write ``size`` of varied files into the shop's volumes in "east" (the sandbox's own tool)."""
    east = state["clusters"]["east"]
    command = ["sandbox.apps", "fill", "--server", east, "--namespace", SOURCE, "--size", size]
    done = subprocess.run([sys.executable, "-m", *command], capture_output=True, text=True, timeout=300)
    if done.returncode != 0:
        raise CliError(f"filling the shop's volumes failed: {done.stderr[-800:]}")
    for line in done.stdout.splitlines():
        console.print(f"  [dim]{line.split(' in ')[0]}[/]")


async def landed(kubeconfig: str) -> Table:
    """What the target cluster holds now, as ``kubectl get`` would list it."""
    table = Table(title=f"cluster west, namespace {TARGET}", title_justify="left")
    for column in ("kind", "name", "detail"):
        table.add_column(column)
    async with Clusters(kubeconfig) as clusters:
        west = await clusters.get("west")
        for resource in ("persistentvolumeclaims", "deployments.apps", "statefulsets.apps", "services"):
            async for obj in west.iterate(resource, TARGET):
                meta, spec, status = obj["metadata"], obj.get("spec") or {}, obj.get("status") or {}
                if resource == "persistentvolumeclaims":
                    detail = f"{status.get('phase', '?')}, class {spec.get('storageClassName')}"
                elif "replicas" in spec:
                    detail = f"ready {status.get('readyReplicas', 0)}/{spec['replicas']}"
                else:
                    detail = spec.get("type", "")
                table.add_row(obj["kind"], meta["name"], detail)
    return table


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="make demo", description=__doc__)
    parser.add_argument(
        "--keep", action="store_true", help="leave everything running and say how to reach it"
    )
    parser.add_argument("--dir", type=Path, help="where to keep state, data and logs (default: a temp dir)")
    parser.add_argument(
        "--size",
        default="200MB",
        type=size,
        help="volume data to put in east, e.g. 200MB, 1GiB (default 200MB)",
    )
    parser.add_argument(
        "--image", help="the image mover Jobs run (default: Ferry's; another one fails the demo)"
    )
    args = parser.parse_args(argv)
    root = (args.dir or Path(tempfile.mkdtemp(prefix="ferry-demo-"))).resolve()
    began = time.monotonic()
    state: dict[str, Any] = {"processes": []}
    code = 1
    try:
        console.rule("[bold]Ferry demo[/]: the shop app, east → west")
        console.print(
            "starting nats-server, SeaweedFS, clusters east and west, the services and the gateway…"
        )
        options = argparse.Namespace(dir=str(root), seed=True, services=None, image=args.image)
        state = sandboxing.start(options, console, root)
        console.print(f"  services up in {time.monotonic() - began:.0f}s (logs in {root / 'logs'})")
        console.print(f"putting {args.size} of files into the shop's volumes in east…")
        fill(state, args.size)
        argv_ = migrate_argv(state)
        console.rule("ferry " + " ".join(argv_[:15]))
        code = asyncio.run(ferry(argv_, out=console))
        console.rule()
        with contextlib.suppress(Exception):  # a look at the target; the verdict is the exit code above
            console.print(asyncio.run(landed(state["kubeconfig"])))
        verdict = "[green]migrated and verified[/]" if code == 0 else f"[red]failed (exit code {code})[/]"
        console.print(f"demo {verdict} in {time.monotonic() - began:.0f}s")
        if args.keep:
            explain(state)
    except CliError as e:
        console.print(f"[red]demo failed:[/] {e}", soft_wrap=True)
        code = 1
    except KeyboardInterrupt:
        code = 130
    finally:
        if not args.keep or code == 130:
            sandboxing.stop(root, state["processes"])
            if args.dir is None:
                shutil.rmtree(root, ignore_errors=True)
    return code


def explain(state: dict[str, Any]) -> None:
    root = state["dir"]
    console.print("\n[bold]Left running.[/] Reach it with:", soft_wrap=True)
    console.print(
        f"  export FERRY_URL={state['gateway_url']} FERRY_TOKEN=$(cat {state['token_file']})", soft_wrap=True
    )
    console.print(f"  export KUBECONFIG={state['kubeconfig']}   # contexts east and west", soft_wrap=True)
    console.print(f"  NATS {state['nats_url']}   S3 {state['s3']['endpoint']}", soft_wrap=True)
    console.print(
        "  ferry list; ferry snapshots; kubectl --context west -n shop-west get all", soft_wrap=True
    )
    console.print(f"Stop it with: ferry sandbox down --dir {root}", soft_wrap=True)
