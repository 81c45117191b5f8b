"""Disaster recovery from the command line: ``ferry policy ...``, ``ferry drill``, ``ferry drills``,
``ferry failover`` and ``ferry failback``.

``ferry drill`` has two forms. ``ferry drill POLICY [--snapshot ID] [--keep]`` asks the policy
service to drill the policy's DR side (it knows the clusters, repository and namespaces); the ad hoc
form ``ferry drill --from C --to C --from-snapshot ID -n NS`` builds the request from flags, as
before. A positional argument with ``--from`` is the application (its namespace) of an ad hoc drill.
Failover and failback answer the policy's state; the request they started is then followed like a
submission (``--wait`` / ``--watch``), so a script reads the outcome from the exit code.
"""

from __future__ import annotations

import argparse
from typing import Any

from services.cli.commands import EXIT_OK, Io, accepted_then, submit
from services.cli.drilling import drill_reports
from services.cli.parsing import UsageError
from services.cli.policies import policy_body, rpo_text, show_policy, write_policies
from services.cli.rendering import write_data
from services.cli.transports import Transport
from shared.contracts.policies import PolicyState
from shared.contracts.states import Accepted


async def policy(args: argparse.Namespace, io: Io, transport: Transport) -> int:
    """``ferry policy create|list|get|pause|resume|delete``."""
    if args.action == "list":
        found = await transport.policy_list()
        write_policies(io.out, found.items, io.output, found.skipped)
        if found.more and io.output == "table":
            io.out.print(f"{found.more} more policies not shown (the reply's size limit)", highlight=False)
        return EXIT_OK
    if args.action == "delete":
        deleted = await transport.policy_delete(args.name)
        if io.output == "table":
            io.out.print(f"policy {deleted.name} deleted (its replicas stay in the repositories)")
        else:
            write_data(io.out, deleted, io.output)
        return EXIT_OK
    if args.action == "create":
        state = await transport.policy_create(policy_body(args))
    elif args.action == "get":
        state = await transport.policy_get(args.name)
    else:
        state = await transport.policy_act(args.name, args.action)
    _show(io, state, {"pause": "paused", "resume": "resumed", "create": "created"}.get(args.action, ""))
    return EXIT_OK


def _show(io: Io, state: PolicyState, done: str) -> None:
    if io.output != "table":
        write_data(io.out, state, io.output)
    elif done and done != "created":
        io.out.print(f"policy {state.policy.name} {done}: {state.status.state.value}", highlight=False)
    else:
        show_policy(io.out, state)


def policy_form(args: argparse.Namespace) -> bool:
    """Whether ``ferry drill`` names a policy (no ``--from``) rather than describing an ad hoc drill."""
    return bool(args.command == "drill" and args.policy_or_app and not args.source_cluster)


async def drill(args: argparse.Namespace, io: Io, transport: Transport) -> int:
    """``ferry drill POLICY`` through the policy service, or an ad hoc drill from flags."""
    if policy_form(args):
        accepted = await transport.policy_drill(args.policy_or_app, args.from_snapshot or "latest", args.keep)
        if io.output == "table" and not args.watch:
            io.err.print(f"drilling policy {args.policy_or_app}", highlight=False)
        return await accepted_then(io, transport, args, accepted)
    return await submit(args, io, transport)


def check_drill(args: argparse.Namespace) -> None:
    """An ad hoc drill needs the source cluster and the snapshot; say which flag is missing."""
    if policy_form(args):
        return
    if not args.source_cluster:
        raise UsageError(
            "--from", "name a policy (ferry drill POLICY) or the source cluster of an ad hoc drill"
        )
    if not args.from_snapshot:
        raise UsageError("--from-snapshot", "an ad hoc drill restores a snapshot: an ID or 'latest'")
    if args.policy_or_app and not args.namespace:
        args.namespace = [args.policy_or_app]  # `ferry drill shop --from east ...`: the app's namespace


async def recover(args: argparse.Namespace, io: Io, transport: Transport) -> int:
    """``ferry failover POLICY`` / ``ferry failback POLICY``: the policy's state, then its request."""
    state = await transport.policy_act(args.name, args.command)
    request = started_request(state, args.command)
    if io.output == "table" or not (args.wait or args.watch):
        if io.output == "table":
            verb = "failing over" if args.command == "failover" else "failing back"
            line = f"policy {state.policy.name}: {verb} ({state.status.state.value})"
            io.live.print(line + (f", request {request}" if request else ""), highlight=False)
            io.live.print(rpo_text(state), highlight=False)
        else:
            write_data(io.out, state, io.output)
    if not request or not (args.wait or args.watch):
        if request and io.output == "table":
            io.out.print(f"follow it with: ferry watch {request}", highlight=False)
        return EXIT_OK
    return await accepted_then(io, transport, args, Accepted(id=request))


def started_request(state: PolicyState, action: str) -> str:
    """The request a failover or a failback started (``failover_request`` / ``failback_request``)."""
    name = f"{action}_request"
    found: Any = getattr(state.status, name, "") or getattr(state, name, "")
    return str(found or "")


async def drills(args: argparse.Namespace, io: Io, transport: Transport) -> int:
    """``ferry drills [POLICY]``: the drill reports, newest first."""
    return await drill_reports(args, io, transport)


COMMANDS = {"drill": drill, "policy": policy, "drills": drills, "failover": recover, "failback": recover}
