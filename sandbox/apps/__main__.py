"""``python -m sandbox.apps install|fill``: put the shop app on a cluster and fill its volumes.

python -m sandbox.apps install --server http://127.0.0.1:PORT
python -m sandbox.apps fill --server http://127.0.0.1:PORT --namespace shop --size 200MB
"""

from __future__ import annotations

import argparse
import asyncio
import sys

from sandbox.apps import fill, install_shop


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m sandbox.apps", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    inst = sub.add_parser("install", help="apply sandbox/apps/shop to a cluster")
    inst.add_argument("--server", required=True)
    filler = sub.add_parser("fill", help="fill the namespace's volumes with test data")
    filler.add_argument("--server", required=True)
    filler.add_argument("--namespace", default="shop")
    filler.add_argument("--size", default="200MB", help="total size, e.g. 200MB, 1GiB")
    filler.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    if args.command == "install":
        for line in asyncio.run(install_shop(args.server)):
            print(line)
        return 0
    for f in asyncio.run(fill(args.server, args.namespace, args.size, args.seed)):
        print(f"{f.claim}: {f.files} files, {f.bytes} bytes in {f.path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
