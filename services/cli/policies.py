"""``ferry policy create|list|get|pause|resume|delete``: replication policies from the command line.

A policy is built from flags that read like ``ferry replicate``'s (``--from``, ``-n``, ``--to``,
``--to-repository``...) plus its schedule, RPO and retention, and checked locally with the policy
service's own ``decode_policy`` before anything is sent, so a bad value is refused naming the flag
(exit 2), as a request's flags are. The table of ``ferry policy list`` puts each policy's RPO
against its target first (``RPO 4m12s / 15m ✓`` or ``✗ BREACHED``): the one thing a person on call
reads. ``next_slot`` says when the schedule fires next where that is knowable: a cron pattern (in
the policy's time zone) or ``@every`` counted from the last slot handled.
"""

from __future__ import annotations

import argparse
import datetime as dt
from collections.abc import Callable
from typing import Any

import msgspec
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from services.cli.parsing import UsageError, items, pairs
from services.cli.rendering import duration, short_time, write_data
from shared.contracts.errors import Invalid
from shared.contracts.policies import PolicyState, decode_policy
from shared.contracts.schedules import ScheduleInvalid, parse_schedule

# JSON path of a policy field -> the flag that sets it (longest prefix wins).
FLAG_OF_FIELD = {
    "$.name": "NAME",
    "$.source": "--from",
    "$.source.cluster": "--from",
    "$.source.namespaces": "-n/--namespace",
    "$.source.selector": "-l/--selector",
    "$.source.repository": "--from-repository",
    "$.target": "--to",
    "$.target.cluster": "--to",
    "$.target.repository": "--to-repository",
    "$.target.namespace_map": "--namespace-mapping",
    "$.schedule": "--schedule",
    "$.time_zone": "--time-zone",
    "$.rpo": "--rpo",
    "$.source_retention.keep_last": "--source-keep-last",
    "$.source_retention.keep_within": "--source-keep-within",
    "$.target_retention.keep_last": "--target-keep-last",
    "$.target_retention.keep_within": "--target-keep-within",
    "$.drill_schedule": "--drill-schedule",
    "$.labels": "--label",
    "$.itinerary": "--steps",
}
EXAMPLES = """examples:
  ferry policy create shop-dr --from east -n shop --to west --to-repository west \\
      --schedule '@every 15m' --rpo 30m --keep-last 96 --keep-within 7d --drill-schedule '@weekly'
  ferry policy create billing-dr --from east -n billing --to west --schedule '0 0 2 * * *' \\
      --time-zone Europe/Paris --rpo 26h --target-keep-within 30d
  ferry policy list                     # RPO against target, last success, next slot, state
  ferry policy get shop-dr -o json
  ferry policy pause shop-dr; ferry policy resume shop-dr   # missed slots are counted
  ferry policy delete shop-dr"""


def flag_for(path: str) -> str:
    matches = [p for p in FLAG_OF_FIELD if path == p or path.startswith((p + ".", p + "["))]
    return FLAG_OF_FIELD[max(matches, key=len)] if matches else path


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser], common: Any) -> None:
    """``ferry policy ACTION``: one sub-command per call of the policy service."""
    policy = sub.add_parser(
        "policy",
        help="replication policies: a schedule, an RPO target and retention per application",
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    actions = policy.add_subparsers(dest="action", required=True, metavar="ACTION")
    create = actions.add_parser("create", help="create a policy (the same flags again: no change)")
    create.add_argument("name", metavar="NAME", help="the policy's name (a DNS-1123 label)")
    _create_flags(create)
    common(create)
    common(actions.add_parser("list", help="every policy: RPO against target, last success, next slot"))
    for action, text in (
        ("get", "one policy: its definition, RPO, last run, skipped slots"),
        ("pause", "stop the slots (those missed while paused are counted on resume)"),
        ("resume", "start the slots again"),
        ("delete", "delete the policy and its schedule (replicas stay in the repositories)"),
    ):
        p = actions.add_parser(action, help=text)
        p.add_argument("name", metavar="NAME")
        common(p)


def _recovery_parsers(sub: argparse._SubParsersAction[argparse.ArgumentParser], common: Any) -> None:
    """``ferry drills``, ``ferry failover`` and ``ferry failback`` (``ferry drill`` is a request
    kind's parser, given a positional in ``parsing``)."""
    p = sub.add_parser("drills", help="drill reports: RTO, RPO, verified, problems, clean-up")
    p.add_argument("policy", nargs="?", metavar="POLICY", help="only this policy's drills")
    p.add_argument("--limit", type=int, default=50, help="at most this many, newest first")
    common(p)
    for name, text in (
        ("failover", "fail a policy's application over to its DR side (replication stops)"),
        ("failback", "bring a failed-over application back to its primary (replication resumes)"),
    ):
        p = sub.add_parser(name, help=text)
        p.add_argument("name", metavar="POLICY")
        follow = p.add_mutually_exclusive_group()
        follow.add_argument(
            "--wait", action="store_true", help="wait for the end; exit code tells the outcome"
        )
        follow.add_argument("--watch", action="store_true", help="show live progress until the end")
        common(p)


def add_parsers(
    sub: argparse._SubParsersAction[argparse.ArgumentParser],
    common: Callable[[argparse.ArgumentParser], None],
) -> None:
    """Every disaster-recovery command's parser but ``drill``'s (a request kind's, in ``parsing``)."""
    add_parser(sub, common)
    _recovery_parsers(sub, common)


def _create_flags(p: argparse.ArgumentParser) -> None:
    what = p.add_argument_group("what to replicate, and where")
    what.add_argument("--from", dest="source_cluster", required=True, metavar="CONTEXT")
    what.add_argument("-n", "--namespace", action="append", metavar="NS", help="repeatable, comma list")
    what.add_argument("-l", "--selector", metavar="SELECTOR")
    what.add_argument("--to", dest="target_cluster", required=True, metavar="CONTEXT", help="the DR cluster")
    what.add_argument("--from-repository", metavar="NAME", help="the source region's repository")
    what.add_argument("--to-repository", metavar="NAME", help="the DR region's repository")
    what.add_argument("--namespace-mapping", action="append", metavar="OLD:NEW", help="names on the DR side")
    when = p.add_argument_group("when, and how fresh")
    when.add_argument("--schedule", required=True, help="'@every 15m', '@hourly', or cron with seconds")
    when.add_argument("--time-zone", metavar="ZONE", help="IANA zone of a cron schedule (default UTC)")
    when.add_argument("--rpo", required=True, metavar="AGE", help="the newest replica is never older: 30m")
    when.add_argument("--drill-schedule", metavar="SCHEDULE", help="when to drill the DR side")
    when.add_argument("--paused", action="store_true", help="create it paused")
    keep = p.add_argument_group("retention (both sides, or per side)")
    keep.add_argument("--keep-last", type=int, metavar="N", help="keep the newest N replicas")
    keep.add_argument("--keep-within", metavar="AGE", help="keep the replicas younger than AGE: 7d")
    for side in ("source", "target"):
        keep.add_argument(f"--{side}-keep-last", type=int, metavar="N")
        keep.add_argument(f"--{side}-keep-within", metavar="AGE")
    p.add_argument("--label", action="append", metavar="K=V", help="labels on every run's request")
    p.add_argument("--steps", action="append", metavar="STEP", help=argparse.SUPPRESS)  # itinerary override


def _retention(args: argparse.Namespace, side: str) -> dict[str, Any]:
    """One side's retention: its own flags, else the shared ``--keep-last`` / ``--keep-within``."""
    last = getattr(args, f"{side}_keep_last")
    within = getattr(args, f"{side}_keep_within")
    last = args.keep_last if last is None else last
    return {"keep_last": last or 0, "keep_within": within or args.keep_within or ""}


def _flag(args: argparse.Namespace, path: str) -> str:
    """The flag that set ``path``: a side's retention came from the shared flag unless given apart."""
    flag = flag_for(path)
    for side in ("source", "target"):
        for what in ("keep_last", "keep_within"):
            if flag == f"--{side}-{what.replace('_', '-')}" and getattr(args, f"{side}_{what}") is None:
                return f"--{what.replace('_', '-')}"
    return flag


def policy_body(args: argparse.Namespace) -> bytes:
    """The policy the flags describe, checked as the policy service checks it (the flag is named)."""
    source: dict[str, Any] = {
        "cluster": args.source_cluster,
        "namespaces": items(args.namespace),
        "selector": args.selector or "",
        "repository": args.from_repository or "",
    }
    target = {
        "cluster": args.target_cluster,
        "repository": args.to_repository or "",
        "namespace_map": pairs(args.namespace_mapping, "--namespace-mapping"),
    }
    document = {
        "name": args.name,
        "source": source,
        "target": target,
        "schedule": args.schedule,
        "time_zone": args.time_zone or "",
        "rpo": args.rpo,
        "source_retention": _retention(args, "source"),
        "target_retention": _retention(args, "target"),
        "drill_schedule": args.drill_schedule or "",
        "paused": args.paused,
        "labels": pairs(args.label, "--label", "="),
        "itinerary": items(args.steps),
    }
    body = msgspec.json.encode(document)
    try:
        decode_policy(body)
    except Invalid as e:
        raise UsageError(_flag(args, e.field), str(e)) from None
    return body


# --- what is shown -----------------------------------------------------------------------------------
def rpo_text(state: PolicyState, *, markup: bool = True) -> str:
    """``RPO 4m12s / 15m ✓`` while the target holds, ``RPO 22m / 15m ✗ BREACHED`` when it does not."""
    status = state.status
    shown = f"RPO {duration(status.rpo_seconds)} / {state.policy.rpo}"
    if status.breached:
        return f"[red]{shown} ✗ BREACHED[/]" if markup else f"{shown} ✗ BREACHED"
    return f"[green]{shown} ✓[/]" if markup else f"{shown} ✓"


def _parse(text: str) -> dt.datetime | None:
    try:
        return dt.datetime.fromisoformat(text.replace("Z", "+00:00")) if text else None
    except ValueError:
        return None


def next_slot(state: PolicyState, now: dt.datetime | None = None) -> dt.datetime | None:
    """When the schedule fires next (UTC), when knowable: None for a paused or failed-over policy,
    and for ``@every`` before its first slot (the server counts from when it got the schedule)."""
    now = now or dt.datetime.now(dt.UTC)
    if state.status.state.value != "active":
        return None
    try:
        schedule = parse_schedule(state.policy.schedule)
    except ScheduleInvalid:
        return None
    if schedule.every:
        last = _parse(state.status.last_slot_at)
        if last is None:
            return None
        gone = max(0, int((now - last).total_seconds() // schedule.every) + 1)
        return last + dt.timedelta(seconds=gone * schedule.every)
    return _next_cron(schedule.fields, schedule.day_matches, now, state.policy.time_zone)


def _next_cron(
    fields: tuple[frozenset[int], ...], day_ok: Any, now: dt.datetime, zone: str
) -> dt.datetime | None:
    """The first instant after ``now`` the six cron fields match, read in ``zone``; a year at most."""
    from zoneinfo import ZoneInfo

    tz = ZoneInfo(zone) if zone else dt.UTC
    local = now.astimezone(tz)
    seconds, minutes, hours = (sorted(f) for f in fields[:3])
    day = local.date()
    for _ in range(370):
        if day_ok(day):
            for h in hours:
                for m in minutes:
                    for s in seconds:
                        at = dt.datetime(day.year, day.month, day.day, h, m, s, tzinfo=tz)
                        if at > local:
                            return at.astimezone(dt.UTC)
        day += dt.timedelta(days=1)
    return None


def policies_table(states: list[PolicyState], now: dt.datetime | None = None) -> Table:
    """``ferry policy list``: one row per policy, its RPO against target first."""
    table = Table(box=None, header_style="bold")
    table.add_column("NAME", no_wrap=True, min_width=max([4, *(len(s.policy.name) for s in states)]))
    for column in ("RPO", "LAST SUCCESS (UTC)", "NEXT SLOT (UTC)", "STATE", "SCHEDULE", "ROUTE"):
        table.add_column(column, no_wrap=column != "ROUTE", overflow="ellipsis")
    for state in states:
        policy, status = state.policy, state.status
        upcoming = next_slot(state, now)
        table.add_row(
            policy.name,
            rpo_text(state),
            short_time(status.last_success_at),
            upcoming.strftime("%Y-%m-%d %H:%M:%S") if upcoming else "-",
            _state_text(state),
            escape(policy.schedule + (f" ({policy.time_zone})" if policy.time_zone else "")),
            escape(_route(state)),
        )
    return table


def _state_text(state: PolicyState) -> str:
    value = state.status.state.value
    return {"active": "[green]active[/]", "paused": "[yellow]paused[/]"}.get(value, f"[red]{value}[/]")


def _route(state: PolicyState) -> str:
    source, target = state.policy.source, state.policy.target
    what = ",".join(source.namespaces) or source.selector or "*"
    repository = f" ({target.repository})" if target.repository else ""
    return f"{source.cluster}/{what} → {target.cluster}{repository}"


def show_policy(console: Console, state: PolicyState) -> None:
    """``ferry policy get NAME``: the definition, then what its slots did."""
    policy, status = state.policy, state.status
    console.print(f"[bold]{escape(policy.name)}[/]  {_state_text(state)}  {escape(_route(state))}")
    console.print(rpo_text(state), highlight=False)
    zone = f" ({policy.time_zone})" if policy.time_zone else ""
    upcoming = next_slot(state)
    rows = [
        ("schedule", f"{policy.schedule}{zone}"),
        ("next slot", upcoming.strftime("%Y-%m-%d %H:%M:%S UTC") if upcoming else "-"),
        ("last success", short_time(status.last_success_at)),
        ("newest replica", short_time(status.last_replica_at)),
        ("last run", f"{status.last_run_request or '-'} {status.last_run_phase}".strip()),
        ("runs", f"{status.runs} run, {len(status.skipped)} skipped (kept), {status.missed} missed"),
        ("retention", f"source {_keep(policy.source_retention)}; target {_keep(policy.target_retention)}"),
        ("last retention", f"{short_time(status.last_retention_at)} {status.last_retention}".strip()),
        ("drills", policy.drill_schedule or "on demand (ferry drill NAME)"),
    ]
    rows += [(extra, str(value)) for extra, value in _recovery(status)]
    for key, value in rows:
        console.print(f"{key + ':':<16}{value}", markup=False, highlight=False)
    for condition in status.conditions:
        console.print(
            f"[red]{escape(condition.type)}[/] since {condition.since}: {escape(condition.message)}"
        )
    for skipped in status.skipped[-5:]:
        console.print(f"skipped {short_time(skipped.slot_at)}: {skipped.reason}", markup=False)


def _recovery(status: Any) -> list[tuple[str, str]]:
    """The failover and failback requests, when the status has them (a newer policy service)."""
    found = []
    for name in ("failover_request", "failback_request"):
        value = getattr(status, name, "")
        if value:
            found.append((name.replace("_request", ""), str(value)))
    return found


def _keep(retention: Any) -> str:
    parts = []
    if retention.keep_last:
        parts.append(f"last {retention.keep_last}")
    if retention.keep_within:
        parts.append(f"within {retention.keep_within}")
    return " and ".join(parts) or "all"


def write_policies(console: Console, states: list[PolicyState], output: str, skipped: Any = ()) -> None:
    if output == "table":
        console.print(policies_table(states) if states else "no policies")
        for unreadable in skipped:
            console.print(f"unreadable policy {unreadable.name}: {unreadable.reason}", markup=False)
    else:
        write_data(console, {"items": states}, output)
