"""What ``ferry`` prints: tables for people, JSON or YAML for scripts (``-o``).

JSON and YAML are the contract types encoded as they travel (``msgspec.to_builtins``), written
raw to stdout without colours or wrapping, so ``ferry status ID -o json | jq`` always parses.
Tables use rich and are meant to be read, not parsed.
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

from shared.contracts.states import Phase, RequestState

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


def show_state(console: Console, state: RequestState) -> None:
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
