"""Command line: ``python -m sandbox serve`` runs a cluster, ``python -m sandbox seed`` fills one.

python -m sandbox serve --name east --port 0 --data /tmp/east   # prints the URL, writes a kubeconfig
python -m sandbox seed --server http://127.0.0.1:PORT sandbox/apps/shop
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import signal
import sys
from pathlib import Path

from sandbox.cluster import write_kubeconfig
from sandbox.controllers import ControllerManager
from sandbox.seeding import seed
from sandbox.server.app import ApiServer
from sandbox.server.serving import SandboxOptions


async def _serve(args: argparse.Namespace) -> None:
    options = SandboxOptions(
        storage=not args.no_storage,
        snapshots=not args.no_snapshots,
        workloads=not args.no_workloads,
        kubelet=not args.no_kubelet,
        snapshot_ready_delay=args.snapshot_ready_delay,
        denied=tuple(args.deny or ()),
    )
    if args.ferry_image:
        options.ferry_images = tuple(args.ferry_image)
    server = ApiServer(args.name, Path(args.data), options, ControllerManager)
    url = await server.start(args.host, args.port)
    kubeconfig = Path(args.kubeconfig or Path(args.data) / "kubeconfig")
    write_kubeconfig(kubeconfig, [(args.name, url)])
    print(f"sandbox cluster {args.name!r} serving at {url}", flush=True)
    print(f"kubeconfig: {kubeconfig} (context {args.name!r})", flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    await server.stop()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m sandbox", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    serve = sub.add_parser("serve", help="run one sandbox cluster until interrupted")
    serve.add_argument("--name", default="sandbox")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=0)
    serve.add_argument("--data", required=True, help="data directory (PV directories, logs, kubeconfig)")
    serve.add_argument("--kubeconfig", help="where to write the kubeconfig (default DATA/kubeconfig)")
    serve.add_argument(
        "--ferry-image",
        action="append",
        help="image repository name the kubelet runs locally (repeatable; default: ferry, ferry-mover)",
    )
    serve.add_argument(
        "--snapshot-ready-delay", type=float, default=0.0, help="seconds before snapshots are ready"
    )
    serve.add_argument(
        "--deny",
        action="append",
        metavar="RULE",
        help='access reviews answer "not allowed" for "VERB RESOURCE [NAMESPACE]" (repeatable)',
    )
    for ctl in ("storage", "snapshots", "workloads", "kubelet"):
        serve.add_argument(f"--no-{ctl}", action="store_true", help=f"switch the {ctl} controller off")
    seeder = sub.add_parser("seed", help="apply a folder of YAML to a cluster (server-side apply)")
    seeder.add_argument("--server", required=True)
    seeder.add_argument("--namespace")
    seeder.add_argument("paths", nargs="+")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    if args.command == "serve":
        asyncio.run(_serve(args))
        return 0
    for line in asyncio.run(seed(args.server, args.paths, args.namespace)):
        print(line)
    return 0


if __name__ == "__main__":
    sys.exit(main())
