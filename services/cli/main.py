"""``ferry``'s entry point: parse, check the request locally, pick a transport, run, map the exit code.

``run()`` is the async core (tests await it with their own consoles); ``main()`` is the console
script declared in pyproject (``ferry = "services.cli.main:main"``). Errors are one line on stderr
naming the problem; a Python traceback means a bug in Ferry.
"""

from __future__ import annotations

import asyncio
import logging
import sys

from rich.console import Console

from services.cli.commands import COMMANDS, EXIT_ERROR, EXIT_OK, EXIT_USAGE, Io
from services.cli.completing import script
from services.cli.parsing import UsageError, build_parser, request_from_args
from services.cli.policies import add_parsers, policy_body
from services.cli.recovering import COMMANDS as RECOVERY
from services.cli.recovering import check_drill, policy_form
from services.cli.transports import CliError, open_transport


def _exit_code(e: SystemExit) -> int:
    return e.code if isinstance(e.code, int) else (EXIT_OK if e.code is None else EXIT_ERROR)


SANDBOX_MISSING = (
    "ferry sandbox: error: the sandbox (a test double of a Kubernetes cluster, with the local NATS and "
    "SeaweedFS launcher) is not installed: it ships apart from Ferry. From a checkout: "
    "pip install -e ./sandbox (make setup installs it)"
)


async def run(
    argv: list[str] | None = None, *, out: Console | None = None, err: Console | None = None
) -> int:
    out = out or Console(highlight=False)
    err = err or Console(stderr=True, highlight=False)
    parser = build_parser(add_parsers)
    try:
        args = parser.parse_args(argv)
    except SystemExit as e:  # argparse printed the usage and the flag at fault
        return _exit_code(e)
    if args.command == "completion":
        out.file.write(script(parser, args.shell))
        return EXIT_OK
    if args.command == "sandbox":
        try:
            from services.cli.sandboxing import sandbox
        except ModuleNotFoundError as e:  # the sandbox is a distribution of its own, for development
            if not (e.name or "").startswith("sandbox"):
                raise
            err.print(SANDBOX_MISSING, markup=False, highlight=False, soft_wrap=True)
            return EXIT_ERROR
        try:
            return await asyncio.to_thread(sandbox, args, out)
        except CliError as e:
            err.print(f"ferry sandbox: error: {e}", markup=False, highlight=False, soft_wrap=True)
            return EXIT_ERROR
    io = Io(out, err, args.output)
    try:
        if args.command == "drill":
            check_drill(args)
        if args.command in ("migrate", "replicate", "restore", "drill") and not policy_form(args):
            request_from_args(args)  # a usage error before any connection is tried
        if args.command == "policy" and args.action == "create":
            policy_body(args)  # checked like the policy service checks it, before connecting
        transport = await open_transport(args)
        try:
            return await {**COMMANDS, **RECOVERY}[args.command](args, io, transport)
        finally:
            await transport.close()
    except UsageError as e:
        err.print(f"ferry {args.command}: error: {e}", markup=False, highlight=False, soft_wrap=True)
        return EXIT_USAGE
    except CliError as e:
        err.print(f"ferry {args.command}: error: {e}", markup=False, highlight=False, soft_wrap=True)
        return EXIT_ERROR


def main(argv: list[str] | None = None) -> int:
    logging.getLogger("ferry").setLevel(logging.ERROR)  # the bus client's reconnect chatter is not for people
    logging.getLogger("nats").setLevel(logging.CRITICAL)
    try:
        return asyncio.run(run(argv))
    except KeyboardInterrupt:
        print("interrupted (the request goes on; `ferry cancel ID` stops it)", file=sys.stderr)
        return 130
