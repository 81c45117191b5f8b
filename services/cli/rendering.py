"""What ``ferry`` prints: tables for people, JSON or YAML for scripts (``-o``).

JSON and YAML are the contract types encoded as they travel (``msgspec.to_builtins``), written
raw to stdout without colours or wrapping, so ``ferry status ID -o json | jq`` always parses.
Tables use rich and are meant to be read, not parsed.

A staged migration adds lines of its own under a request (``outcome_lines``): what a stage sent and
wrote and how fresh the target's data is, a cutover's downtime, what a rollback removed and brought
back; and ``ferry migrations`` shows the plans (``shared.contracts.migrations``) as one table.
"""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

import msgspec
import yaml
from rich.console import Console
from rich.filesize import decimal
from rich.markup import escape
from rich.table import Table

from shared.contracts.migrations import AVAILABLE_AT, DOWNTIME, QUIESCED_AT, MigrationPlan, age_seconds
from shared.contracts.requests import RequestKind
from shared.contracts.states import Phase, RequestState
from shared.contracts.steps import StepName

PHASE_STYLE = {
    Phase.COMPLETED: "green",
    Phase.PARTIALLY_FAILED: "yellow",
    Phase.FAILED: "red",
    Phase.CANCELLED: "magenta",
    Phase.IN_PROGRESS: "cyan",
}
STATUS_STYLE = {
    "Succeeded": "green",
    "PartiallyFailed": "yellow",
    "Failed": "red",
    "Cancelled": "magenta",
    "Running": "cyan",
}


def write_data(console: Console, data: Any, output: str) -> None:
    builtins = msgspec.to_builtins(data)
    if output == "yaml":
        text = yaml.safe_dump(builtins, sort_keys=False, allow_unicode=True)
    else:
        text = json.dumps(builtins, indent=2, ensure_ascii=False) + "\n"
    console.file.write(text)
    console.file.flush()


def phase_text(phase: Phase) -> str:
    style = PHASE_STYLE.get(phase, "")
    return f"[{style}]{phase.value}[/]" if style else phase.value


def _route(state: RequestState) -> str:
    source, target = state.request.source, state.request.target
    return f"{source.cluster}→{target.cluster}" if target.cluster else source.cluster


def short_time(value: str) -> str:
    """``2026-11-23T20:10:49.745Z`` -> ``2026-11-23 20:10:49`` (UTC, as stored)."""
    return value[:19].replace("T", " ") if value else "-"


def took(started: str, finished: str) -> str:
    try:
        seconds = (
            dt.datetime.fromisoformat(finished.replace("Z", "+00:00"))
            - dt.datetime.fromisoformat(started.replace("Z", "+00:00"))
        ).total_seconds()
    except ValueError:
        return "-"
    return f"{seconds:.1f}s" if seconds < 120 else f"{seconds / 60:.1f}m"


def _key_column(table: Table, name: str, values: list[str]) -> None:
    """A column people copy from (ids): never wrapped, never cut."""
    table.add_column(name, no_wrap=True, min_width=max([len(name), *map(len, values)]))


def requests_table(states: list[RequestState]) -> Table:
    table = Table(box=None, header_style="bold")
    _key_column(table, "ID", [s.id for s in states])
    _key_column(table, "PHASE", [s.phase.value for s in states])
    for column in ("KIND", "CLUSTERS", "NAMESPACES", "CREATED (UTC)"):
        table.add_column(column, no_wrap=column != "NAMESPACES", overflow="ellipsis")
    for state in states:
        namespaces = ",".join(state.request.source.namespaces) or state.request.source.selector or "-"
        table.add_row(
            state.id,
            phase_text(state.phase),
            state.request.kind.value,
            _route(state),
            namespaces,
            short_time(state.created_at),
        )
    return table


def show_state(console: Console, state: RequestState, original: RequestState | None = None) -> None:
    """A request, its steps, then what a stage, a cutover or a rollback did (``original``: the
    migrate a rollback undid, as stored now)."""
    console.print(
        f"[bold]{state.id}[/]  {state.request.kind.value}  {_route(state)}  {phase_text(state.phase)}",
        highlight=False,
    )
    if state.reason:
        console.print(f"reason: {state.reason}", markup=False)
    namespaces = ", ".join(state.request.source.namespaces) or "-"
    console.print(
        f"namespaces: {namespaces}   created: {short_time(state.created_at)}   updated: {short_time(state.updated_at)} (UTC)",
        markup=False,
        highlight=False,
    )
    table = Table(box=None, header_style="bold")
    _key_column(table, "STEP", [s.step.value for s in state.steps])
    _key_column(table, "STATUS", [s.status.value for s in state.steps])
    for column in ("TRIES", "TOOK", "RESULT"):
        table.add_column(column, no_wrap=column != "RESULT")
    for step in state.steps:
        style = STATUS_STYLE.get(step.status.value, "")
        status = f"[{style}]{step.status.value}[/]" if style else step.status.value
        result = step.error
        if step.result is not None:  # the message says it for people; counts are in -o json
            result = step.result.message or ", ".join(f"{k}={v}" for k, v in step.result.counts.items())
        duration = took(step.started_at, step.finished_at) if step.finished_at else "-"
        table.add_row(step.step.value, status, str(step.attempts), duration, result or "")
    console.print(table)
    for line in outcome_lines(state, original):
        console.print(line, highlight=False)


def generic_table(items: list[dict[str, Any]], columns: list[str] | None = None) -> Table:
    """A table of JSON objects (snapshots, clusters): the given columns, or the first item's scalars."""
    table = Table(box=None, header_style="bold")
    if not items:
        return table
    keys = columns or [k for k, v in items[0].items() if not isinstance(v, dict | list)][:7]
    for key in keys:
        table.add_column(key.upper())
    for item in items:
        table.add_row(*(_cell(item.get(key)) for key in keys))
    return table


def preflight_table(body: dict[str, Any], only_problems: bool = False) -> Table:
    """The preflight report (``shared.runtime.preflighting``): one row per check, problems in red."""
    table = Table(box=None, header_style="bold")
    for column in ("CHECK", "SUBJECT", "OK", "DETAIL"):
        table.add_column(column, overflow="fold")
    for check in body.get("checks") or []:
        if only_problems and check.get("ok"):
            continue
        ok = "[green]✓[/]" if check.get("ok") else "[red]✗[/]"
        what, subject, detail = (escape(str(check.get(k, ""))) for k in ("what", "subject", "detail"))
        table.add_row(what, subject, ok, detail)  # details quote settings such as "[repositories]"
    return table


def _cell(value: Any) -> str:
    if value is None or value == "":
        return "-"
    if value is True:
        return "[green]yes[/]"
    if value is False:
        return "[red]no[/]"
    if isinstance(value, dict | list):
        return json.dumps(value)
    return str(value)


def flatten(body: dict[str, Any], prefix: str = "") -> list[tuple[str, str]]:
    """A nested report as (dotted key, value) rows."""
    rows: list[tuple[str, str]] = []
    for key, value in body.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict) and value:
            rows += flatten(value, name + ".")
        else:
            rows.append((name, json.dumps(value) if isinstance(value, list | dict) else str(value)))
    return rows


def _size(value: Any) -> str:
    return decimal(int(value)) if isinstance(value, int) else "-"


def snapshots_table(items: list[dict[str, Any]]) -> Table:
    """SnapshotSummary documents: what was captured, when, how big, how consistent."""
    table = Table(box=None, header_style="bold")
    _key_column(table, "ID", [str(item.get("id", "-")) for item in items])
    for column in ("TIME (UTC)", "CLUSTER", "NAMESPACES", "OBJECTS", "VOLUMES", "SIZE", "CONSISTENCY"):
        table.add_column(column, no_wrap=column != "NAMESPACES", overflow="ellipsis")
    for item in items:
        table.add_row(
            str(item.get("id", "-")),
            short_time(str(item.get("time", ""))),
            str(item.get("cluster") or "-"),
            ",".join(item.get("namespaces") or []) or "-",
            str(item.get("objects", "-")),
            str(item.get("volumes", "-")),
            _size(item.get("bytes")),
            str(item.get("consistency") or "-"),
        )
    return table


def show_snapshot(console: Console, doc: dict[str, Any]) -> None:
    """A SnapshotDetail: the summary, object counts per resource, one row per volume."""
    summary = doc.get("summary") or {}
    if not summary:  # not the catalog's shape: show it as it is
        console.file.write(yaml.safe_dump(doc, sort_keys=False))
        return
    console.print(
        f"[bold]{summary.get('id')}[/]  {short_time(str(summary.get('time', '')))}  app {summary.get('app') or '-'}",
        highlight=False,
    )
    namespaces = ",".join(summary.get("namespaces") or []) or "-"
    console.print(
        f"cluster {summary.get('cluster') or '-'}  namespaces {namespaces}  request {summary.get('request_id') or '-'}",
        highlight=False,
    )
    console.print(
        f"{summary.get('objects', 0)} objects, {summary.get('volumes', 0)} volumes, {_size(summary.get('bytes'))} "
        f"({_size(summary.get('new_bytes'))} new), consistency {summary.get('consistency') or '-'}",
        highlight=False,
    )
    counts = doc.get("counts") or {}
    if counts:
        console.print("objects: " + ", ".join(f"{k}={v}" for k, v in sorted(counts.items())), highlight=False)
    volumes = doc.get("volume_records") or []
    if volumes:
        table = Table(box=None, header_style="bold")
        _key_column(table, "VOLUME", [f"{v.get('namespace')}/{v.get('claim')}" for v in volumes])
        for column in ("FILES", "SIZE", "NEW", "STORED", "CONSISTENCY"):
            table.add_column(column, no_wrap=True)
        table.add_column("RECORD", no_wrap=True, overflow="ellipsis", max_width=14)
        for v in volumes:
            table.add_row(
                f"{v.get('namespace')}/{v.get('claim')}",
                str(v.get("files", 0)),
                _size(v.get("bytes")),
                _size(v.get("new_bytes")),
                _size(v.get("stored_bytes")),
                str(v.get("consistency") or "-"),
                str(v.get("record", "")),
            )
        console.print(table)


# --- staged migrations ------------------------------------------------------------------------------
def duration(seconds: float | None) -> str:
    """``42.3s``, ``3m12s``, ``2h05m``, ``3d04h``: a downtime or a data age, as people say it."""
    if seconds is None:
        return "-"
    if seconds < 60:
        return f"{max(seconds, 0.0):.1f}s"
    whole = int(seconds)
    if whole < 3600:
        return f"{whole // 60}m{whole % 60:02d}s"
    if whole < 86400:
        return f"{whole // 3600}h{whole % 3600 // 60:02d}m"
    return f"{whole // 86400}d{whole % 86400 // 3600:02d}h"


def _clock(unix: str) -> str:
    """A unix time output (``quiesced_at``) as UTC wall time."""
    try:
        return dt.datetime.fromtimestamp(float(unix), dt.UTC).strftime("%H:%M:%S")
    except ValueError:
        return unix


def _bytes_sent(state: RequestState) -> int:
    return sum(s.result.bytes_moved for s in state.steps if s.result and s.step is StepName.TRANSFER)


def _one_repository(state: RequestState) -> bool:
    """Source and target share one repository: the transfer had nothing to send."""
    return _counts(state, StepName.TRANSFER).get("same_repository") == 1


def _counts(state: RequestState, step: StepName) -> dict[str, int]:
    found = [s.result.counts for s in state.steps if s.step is step and s.result is not None]
    return found[0] if found else {}


def stage_line(state: RequestState) -> str:
    """What a stage did: bytes sent, files the restore rewrote (and left, already right), data age."""
    restored = _counts(state, StepName.RESTORE)
    written = f"wrote {restored.get('files_written', 0)} file(s)"
    if "bytes_written" in restored:
        written += f" ({decimal(restored['bytes_written'])})"
    if "files_skipped" in restored:
        written += f", {restored['files_skipped']} already right"
    snapshot = [s for s in state.steps if s.step is StepName.SNAPSHOT and s.finished_at]
    taken = snapshot[0].finished_at if snapshot else state.updated_at
    sent = (
        "nothing to send (one repository)"
        if _one_repository(state)
        else f"sent {decimal(_bytes_sent(state))}"
    )
    return (
        f"stage: {sent}, restore {written}; "
        f"data as of {short_time(taken)} UTC (age {duration(age_seconds(taken))})"
    )


def cutover_lines(state: RequestState) -> list[str]:
    """A cutover's downtime and last delta; or, when it stopped short, where the source stands."""
    outputs = state.outputs
    lines = []
    if DOWNTIME in outputs:
        window = ""
        if QUIESCED_AT in outputs and AVAILABLE_AT in outputs:
            window = f" (source quiesced {_clock(outputs[QUIESCED_AT])}, target available "
            window += f"{_clock(outputs[AVAILABLE_AT])} UTC)"
        lines.append(f"cutover: downtime {duration(float(outputs[DOWNTIME]))}{window}")
    elif QUIESCED_AT in outputs:
        lines.append(f"cutover: source quiesced at {_clock(outputs[QUIESCED_AT])} UTC")
    if _one_repository(state):
        lines.append("last delta: nothing to send (source and target share one repository)")
    elif any(s.step is StepName.TRANSFER and s.result for s in state.steps):
        lines.append(f"last delta: {decimal(_bytes_sent(state))} sent")
    if state.rolled_back:
        lines.append("rolled back: the target cleaned, the source restored")
    elif state.rollback_request:
        lines.append(f"rolling back: request {state.rollback_request} (ferry watch {state.rollback_request})")
    elif state.phase in (Phase.FAILED, Phase.CANCELLED) and QUIESCED_AT in outputs:
        lines.append(
            f"the source stays quiesced (no auto rollback): ferry rollback {state.id} brings it back"
        )
    return lines


def _names(value: str) -> list[str]:
    try:
        found = json.loads(value)
    except ValueError:
        return [value] if value else []
    return [str(v) for v in found] if isinstance(found, list) else [str(found)]


def rollback_lines(state: RequestState, original: RequestState | None) -> list[str]:
    """Each object a rollback removed and each workload it brought back, and the original's mark."""
    outputs = state.outputs
    lines = [f"removed {name}" for name in _names(outputs.get("removed", ""))]
    lines += [f"restored {name}" for name in _names(outputs.get("restored", ""))]
    if state.phase.final and not lines and state.phase is Phase.COMPLETED:
        lines.append("nothing to remove or restore (rolled back before?)")
    if original is not None:
        mark = "marked rolled back" if original.rolled_back else "not marked rolled back"
        lines.append(f"{original.id}: {mark}")
    return lines


def outcome_lines(state: RequestState, original: RequestState | None = None) -> list[str]:
    """The lines a stage, a cutover or a rollback adds under its request (none for the others)."""
    request = state.request
    if request.kind is RequestKind.ROLLBACK:
        return rollback_lines(state, original)
    if request.stage and any(s.result for s in state.steps):
        return [stage_line(state)]
    if request.cutover:
        return cutover_lines(state)
    return ["rolled back: the target cleaned, the source restored"] if state.rolled_back else []


def migrations_table(plans: list[MigrationPlan]) -> Table:
    """``ferry migrations``: one row per application moved."""
    table = Table(box=None, header_style="bold")
    apps = [f"{p.source_cluster}/{','.join(p.namespaces) or '*'} → {p.target_cluster}" for p in plans]
    _key_column(table, "APP", apps)
    columns = (
        "STAGES",
        "LAST STAGE (UTC)",
        "SIZE",
        "DATA AGE",
        "CUTOVER",
        "DOWNTIME",
        "QUIESCED",
        "ROLLED BACK",
    )
    for column in columns:
        table.add_column(column, no_wrap=True, min_width=len(column))
    for app, plan in zip(apps, plans, strict=True):
        table.add_row(
            app,
            str(plan.stages),
            short_time(plan.last_stage_at),
            decimal(plan.last_stage_bytes) if plan.last_stage_at else "-",
            duration(age_seconds(plan.last_stage_at)),
            plan.cutover or "-",
            duration(plan.downtime_seconds),
            "yes" if plan.source_quiesced else "no",
            "yes" if plan.rolled_back else "no",
        )
    return table
