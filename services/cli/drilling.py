"""``ferry drills [POLICY]``: what each DR drill proved, one row per drill, newest first.

A drill report (``shared.contracts.drills.DrillReport``) answers the questions of a DR review: how
long the application took to come up on the DR side (RTO), how old the data it came up with was
(RPO), whether verification passed, what it found, and whether the drill's namespaces were removed.
The table shows the first problem and how many more; ``-o json`` has them all.
"""

from __future__ import annotations

import argparse

from rich.markup import escape
from rich.table import Table

from services.cli.commands import EXIT_OK, Io
from services.cli.parsing import UsageError
from services.cli.rendering import duration, short_time, write_data
from services.cli.transports import Transport
from shared.contracts.drills import FAILED_PREFIX, KEPT, PENDING, REMOVED, DrillReport


async def drill_reports(args: argparse.Namespace, io: Io, transport: Transport) -> int:
    if not 1 <= args.limit <= 1000:
        raise UsageError("--limit", "must be between 1 and 1000")
    found = await transport.drills(args.policy or "", args.limit)
    if io.output != "table":
        write_data(io.out, found, io.output)
    elif found.items:
        io.out.print(drills_table(found.items))
    else:
        io.out.print(f"no drills{f' of policy {args.policy}' if args.policy else ''}", highlight=False)
    return EXIT_OK


def subject(report: DrillReport) -> str:
    """The policy drilled, or for an ad hoc drill the application: cluster/namespaces."""
    return report.policy or f"{report.source_cluster}/{','.join(report.namespaces) or '*'}"


def cleanup_text(value: str) -> str:
    if value == REMOVED:
        return "[green]removed[/]"
    if value in (KEPT, PENDING):
        return f"[yellow]{value}[/]"
    if value.startswith(FAILED_PREFIX):
        return f"[red]{escape(value)}[/]"
    return escape(value or "-")


def verified_text(report: DrillReport) -> str:
    if report.verified:
        return "[green]✓ yes[/]"
    return "[yellow]… not yet[/]" if report.cleanup == PENDING else "[red]✗ no[/]"


def problems_text(problems: list[str]) -> str:
    if not problems:
        return "-"
    more = f" (+{len(problems) - 1} more)" if len(problems) > 1 else ""
    return escape(problems[0]) + more


def drills_table(reports: list[DrillReport]) -> Table:
    """One row per drill: when, what, which snapshot, RTO, RPO, verified, problems, clean-up."""
    table = Table(box=None, header_style="bold")
    cells = [_cells(report) for report in reports]
    for i, column in enumerate(("WHEN (UTC)", "DRILL", "POLICY/APP", "SNAPSHOT", "RTO", "RPO", "VERIFIED")):
        # the short columns are never cut: as wide as their longest value
        table.add_column(column, no_wrap=True, min_width=max(len(column), *(len(c[i]) for c in cells)))
    table.add_column("PROBLEMS", overflow="fold", ratio=2)
    table.add_column("CLEAN-UP", overflow="fold", ratio=1)
    for report, plain in zip(reports, cells, strict=True):
        shown = [escape(value) for value in plain[:6]]
        table.add_row(
            *shown, verified_text(report), problems_text(report.problems), cleanup_text(report.cleanup)
        )
    return table


def _cells(report: DrillReport) -> list[str]:
    """The plain text of the short columns (their widths are measured on it)."""
    verified = "✓ yes" if report.verified else ("… not yet" if report.cleanup == PENDING else "✗ no")
    return [
        short_time(report.started_at),
        report.request_id,
        subject(report),
        report.snapshot or "-",
        duration(report.rto_seconds),
        duration(report.rpo_seconds),
        verified,
    ]
