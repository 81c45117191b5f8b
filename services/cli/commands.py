"""What each ``ferry`` command does, once, whatever the transport; and the exit codes scripts read.

Exit codes: 0 the request completed (or the command succeeded), 1 any other error (unreachable,
rejected, not found), 2 a usage error (a bad flag, named), 3 the request partially failed, 4 it
failed, 5 it was cancelled. Only the commands that end on a request's final phase use 3-5:
``ferry watch``, and ``migrate|replicate|restore|drill|rollback`` with ``--wait`` or ``--watch``.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
from typing import Any

from rich.console import Console
from rich.filesize import decimal

from services.cli.parsing import UsageError, request_from_args
from services.cli.rendering import (
    generic_table,
    migrations_table,
    outcome_lines,
    phase_text,
    preflight_table,
    requests_table,
    show_snapshot,
    show_state,
    snapshots_table,
    write_data,
)
from services.cli.transports import CliError, Transport
from services.cli.watching import watch
from shared.contracts.events import Report
from shared.contracts.reports import DocumentKind
from shared.contracts.requests import RequestKind, encode_request
from shared.contracts.states import Accepted, ListQuery, Phase, RequestState

EXIT_OK, EXIT_ERROR, EXIT_USAGE, EXIT_PARTIAL, EXIT_FAILED, EXIT_CANCELLED = 0, 1, 2, 3, 4, 5
EXIT_OF_PHASE = {
    Phase.COMPLETED: EXIT_OK,
    Phase.PARTIALLY_FAILED: EXIT_PARTIAL,
    Phase.FAILED: EXIT_FAILED,
    Phase.CANCELLED: EXIT_CANCELLED,
}


class Io:
    """stdout for results, stderr for progress and errors (so ``-o json`` output stays parseable)."""

    def __init__(self, out: Console, err: Console, output: str) -> None:
        self.out, self.err, self.output = out, err, output

    @property
    def live(self) -> Console:
        """Where progress goes: stdout for tables, stderr when stdout carries JSON/YAML."""
        return self.out if self.output == "table" else self.err


async def wait_final(transport: Transport, request_id: str) -> RequestState:
    delay = 0.1
    while True:
        state = await transport.get(request_id)
        if state.phase.final:
            return state
        await asyncio.sleep(delay)
        delay = min(delay * 1.5, 1.0)


async def original_of(transport: Transport, state: RequestState) -> RequestState | None:
    """The migrate a rollback undoes, as stored now (whether it is marked rolled back); None for
    other requests, or when it cannot be read (the rollback's own lines still show)."""
    if state.request.kind is not RequestKind.ROLLBACK or not state.request.rollback_of:
        return None
    try:
        return await transport.get(state.request.rollback_of)
    except CliError:
        return None


async def finish(io: Io, transport: Transport, state: RequestState) -> int:
    if io.output == "table":
        show_state(io.out, state, await original_of(transport, state))
    else:
        write_data(io.out, state, io.output)
    return EXIT_OF_PHASE.get(state.phase, EXIT_ERROR)


async def follow(io: Io, transport: Transport, state: RequestState, after: int = 0) -> int:
    """Live progress until the end, then what a stage, cutover or rollback did, and the exit code."""
    await watch(io.live, state, transport.events(state.id, after))
    final = await transport.get(state.id)
    if not final.phase.final:  # the stream ended early (it should not): fall back to polling
        final = await wait_final(transport, state.id)
    for line in outcome_lines(final, await original_of(transport, final)):
        io.live.print(line, highlight=False)
    if io.output != "table":
        write_data(io.out, final, io.output)
    return EXIT_OF_PHASE.get(final.phase, EXIT_ERROR)


async def accepted_then(io: Io, transport: Transport, args: argparse.Namespace, accepted: Accepted) -> int:
    """After a submission: follow it (``--watch``), wait for it (``--wait``), or say how to follow it."""
    again = " (the same idempotency key: the existing request)" if accepted.duplicate else ""
    if args.watch:
        io.live.print(f"request [bold]{accepted.id}[/] accepted{again}", highlight=False)
        return await follow(io, transport, await transport.get(accepted.id))
    if args.wait:
        io.err.print(f"request {accepted.id} accepted{again}; waiting for it to finish", highlight=False)
        return await finish(io, transport, await wait_final(transport, accepted.id))
    if io.output == "table":
        io.out.print(f"request [bold]{accepted.id}[/] accepted{again}", highlight=False)
        io.out.print(f"follow it with: ferry watch {accepted.id}", highlight=False)
    else:
        write_data(io.out, accepted, io.output)
    return EXIT_OK


async def submit(args: argparse.Namespace, io: Io, transport: Transport) -> int:
    request = request_from_args(args)
    accepted = await transport.submit(encode_request(request))
    again = " (the same idempotency key: the existing request)" if accepted.duplicate else ""
    if request.preflight_only:
        io.err.print(f"request {accepted.id} accepted{again}; running the preflight checks", highlight=False)
        return await preflight(io, transport, accepted.id)
    return await accepted_then(io, transport, args, accepted)


async def rollback(args: argparse.Namespace, io: Io, transport: Transport) -> int:
    """``ferry rollback REQUEST``: the rollback built from the stored migrate (by the bus client or
    the gateway, so every caller builds the same request, with the same idempotency key)."""
    accepted = await transport.rollback(args.id)
    if io.output == "table" and not args.watch:
        io.err.print(f"rolling back {args.id}", highlight=False)
    return await accepted_then(io, transport, args, accepted)


async def migrations(args: argparse.Namespace, io: Io, transport: Transport) -> int:
    """``ferry migrations``: the migration plans computed from the stored requests."""
    plans = await transport.migrations()
    if io.output == "table":
        io.out.print(migrations_table(plans) if plans else "no migrations")
    else:
        write_data(io.out, {"items": plans}, io.output)
    return EXIT_OK


async def preflight(io: Io, transport: Transport, request_id: str) -> int:
    """``--preflight``: wait for the checks, print their table; 0 when all passed (4 when one failed)."""
    state = await wait_final(transport, request_id)
    body: dict[str, Any] | None = None
    async for _, event in transport.events(request_id):
        if isinstance(event, Report) and event.document == DocumentKind.PREFLIGHT:
            body = event.body
    if io.output != "table":
        write_data(
            io.out, {"id": state.id, "phase": state.phase, "reason": state.reason, **(body or {})}, io.output
        )
    else:
        if body is not None:
            io.out.print(preflight_table(body))
            problems = int(body.get("problems", 0))
            verdict = f"[red]{problems} problem(s)[/]" if problems else "[green]all passed[/]"
            io.out.print(f"{len(body.get('checks') or [])} checks, {verdict}", highlight=False)
        line = f"{state.id}: {phase_text(state.phase)}"
        if state.phase is not Phase.COMPLETED and (body is None or not body.get("problems")):
            line += f" — {state.reason}"  # failed before the checks could report (an unknown step...)
        io.out.print(line, highlight=False)
    return EXIT_OF_PHASE.get(state.phase, EXIT_ERROR)


async def status(args: argparse.Namespace, io: Io, transport: Transport) -> int:
    if args.document:  # a step's document: JSON as stored, or YAML with -o yaml
        data = json.loads(await transport.document(args.id, args.document))
        write_data(io.out, data, "yaml" if io.output == "yaml" else "json")
        return EXIT_OK
    state = await transport.get(args.id)
    if io.output == "table":
        show_state(io.out, state, await original_of(transport, state))
    else:
        write_data(io.out, state, io.output)
    return EXIT_OK


async def watch_request(args: argparse.Namespace, io: Io, transport: Transport) -> int:
    state = await transport.get(args.id)
    io.live.print(f"{state.id}: {state.request.kind.value} {phase_text(state.phase)}", highlight=False)
    return await follow(io, transport, state, args.after)


async def list_requests(args: argparse.Namespace, io: Io, transport: Transport) -> int:
    if args.label and "=" not in args.label:
        raise UsageError("--label", "expected key=value")
    if not 1 <= args.limit <= 1000:
        raise UsageError("--limit", "must be between 1 and 1000")
    since = ""
    if args.since:
        try:
            when = dt.datetime.fromisoformat(args.since.replace("Z", "+00:00"))
        except ValueError:
            raise UsageError("--since", "expected an ISO 8601 time, e.g. 2026-11-23T10:00:00Z") from None
        when = when if when.tzinfo else when.replace(tzinfo=dt.UTC)
        since = when.astimezone(dt.UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    query = ListQuery(
        phase=args.phase or "",
        kind=args.kind or "",
        label=args.label or "",
        since=since,
        limit=args.limit,
    )
    states = await transport.list(query)
    if io.output == "table":
        io.out.print(requests_table(states) if states else "no requests")
    else:
        write_data(io.out, {"items": states}, io.output)
    return EXIT_OK


async def cancel(args: argparse.Namespace, io: Io, transport: Transport) -> int:
    state = await transport.cancel(args.id)
    if io.output == "table":
        now = "cancelled" if state.phase is Phase.CANCELLED else "stops at its next checkpoint"
        io.out.print(
            f"{state.id}: cancellation requested; {now} ({phase_text(state.phase)})", highlight=False
        )
    else:
        write_data(io.out, state, io.output)
    return EXIT_OK


async def snapshots(args: argparse.Namespace, io: Io, transport: Transport) -> int:
    """The catalog's documents (shared/contracts/snapshots.py): a list, one snapshot, a deletion."""
    if args.keep_last is not None or args.keep_within:
        return await retain(args, io, transport)
    if args.dry_run:
        raise UsageError("--dry-run", "goes with --keep-last or --keep-within")
    if args.delete and not args.id:
        raise UsageError("--delete", "name the snapshot to delete: ferry snapshots ID --delete")
    if args.limit is not None and args.limit < 1:
        raise UsageError("--limit", "must be at least 1")
    filters: list[tuple[str, str]] = [("cluster", args.cluster), ("namespace", args.namespace)]
    filters += [("app", args.app), ("repository", args.repository), ("limit", str(args.limit or ""))]
    query = {k: v for k, v in filters if v}
    doc: Any = await transport.snapshots(args.id, query, delete=args.delete)
    if io.output != "table":
        write_data(io.out, doc, io.output)
    elif args.delete:
        freed = doc.get("bytes_freed", 0) if isinstance(doc, dict) else 0
        io.out.print(f"snapshot {args.id} deleted ({decimal(int(freed))} freed)", highlight=False)
    elif args.id is None:
        items = doc.get("items", []) if isinstance(doc, dict) else doc
        io.out.print(snapshots_table(items) if items else "no snapshots")
    else:
        show_snapshot(io.out, doc)
    return EXIT_OK


async def retain(args: argparse.Namespace, io: Io, transport: Transport) -> int:
    """``ferry snapshots --keep-last N --keep-within AGE [--app A] [--dry-run]``: a retention policy."""
    if args.id or args.delete:
        raise UsageError("--keep-last", "a retention policy applies to a series, not to one snapshot ID")
    if args.keep_last is not None and args.keep_last < 1:
        raise UsageError("--keep-last", "must be at least 1")
    query: dict[str, Any] = {
        "app": args.app or "",
        "repository": args.repository or "",
        "dry_run": args.dry_run,
    }
    if args.keep_last is not None:
        query["keep_last"] = args.keep_last
    if args.keep_within:
        query["keep_within"] = args.keep_within
    doc: Any = await transport.retain(query)
    if io.output != "table":
        write_data(io.out, doc, io.output)
        return EXIT_OK
    removed, kept = doc.get("removed", []), doc.get("kept", [])
    verb = "would remove" if args.dry_run else "removed"
    freed = "" if args.dry_run else f", {decimal(int(doc.get('bytes_freed', 0)))} freed"
    io.out.print(f"kept {len(kept)}, {verb} {len(removed)} snapshot(s){freed}", highlight=False)
    for snapshot_id in removed:
        io.out.print(f"  {verb} {snapshot_id}", highlight=False)
    return EXIT_OK


async def clusters(args: argparse.Namespace, io: Io, transport: Transport) -> int:
    doc = await transport.clusters()
    if io.output != "table":
        write_data(io.out, doc, io.output)
        return EXIT_OK
    items = doc.get("items", [])
    if not items:
        io.out.print(
            "no clusters: no kubeconfig found"
            + (f" ({doc.get('kubeconfig')})" if doc.get("kubeconfig") else "")
        )
        return EXIT_OK
    columns = ["name", "server", "reachable", "version", "latency_ms", "error"]
    io.out.print(generic_table(items, columns))
    return EXIT_OK


COMMANDS = {
    "migrate": submit,
    "replicate": submit,
    "restore": submit,
    "drill": submit,
    "rollback": rollback,
    "migrations": migrations,
    "status": status,
    "watch": watch_request,
    "list": list_requests,
    "cancel": cancel,
    "snapshots": snapshots,
    "clusters": clusters,
}

__all__ = [
    "COMMANDS",
    "EXIT_CANCELLED",
    "EXIT_ERROR",
    "EXIT_FAILED",
    "EXIT_OK",
    "EXIT_PARTIAL",
    "EXIT_USAGE",
    "CliError",
    "Io",
]
