"""``ferry watch``: live progress bars per step and per volume, then the verification summary.

One bar per step of the itinerary (created up front, so the whole route shows from the start) and
one indented bar per volume as soon as a step reports on it. Byte progress shows size, rate and ETA;
item progress shows counts. Warnings, failed attempts and phase changes are printed above the bars as
they happen. A ``Report`` of document kind ``verification`` is kept and printed as a table at the end,
and so are the problems of a failed preflight.

A cutover's downtime clock runs under the bars from the ``Quiesced`` event's ``since`` until an event
carrying ``available_at`` (a second ``Quiesced``, or the restore's ``available_at`` output), or until
the stream ends; it is drawn by ``ClockedProgress`` so it ticks between events.

On a terminal the bars animate; in a log (no TTY) rich prints the final bars once, and the lines
above them still tell the story in order.
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import AsyncIterator, Iterable

import msgspec
from rich.console import Console, RenderableType
from rich.filesize import decimal
from rich.progress import BarColumn, Progress, ProgressColumn, Task, TaskID, TextColumn, TimeRemainingColumn
from rich.table import Column, Table
from rich.text import Text

from services.cli.rendering import duration, flatten, phase_text, preflight_table
from shared.contracts.events import (
    Event,
    Failed,
    PhaseChanged,
    Quiesced,
    Report,
    StepCompleted,
    StepStarted,
    Warning,
)
from shared.contracts.events import (
    Progress as ProgressEvent,
)
from shared.contracts.migrations import AVAILABLE_AT
from shared.contracts.reports import DocumentKind, Verification
from shared.contracts.requests import RequestKind
from shared.contracts.states import Phase, RequestState


class AmountColumn(ProgressColumn):
    """``12.3 MB/40.0 MB`` for bytes, ``3/7`` for items."""

    def render(self, task: Task) -> Text:
        total = task.total
        if task.fields.get("unit") == "bytes":
            done = decimal(int(task.completed))
            return Text(f"{done}/{decimal(int(total))}" if total else done, style="progress.download")
        if total:
            return Text(f"{int(task.completed)}/{int(total)}", style="progress.download")
        return Text("")


class RateColumn(ProgressColumn):
    def render(self, task: Task) -> Text:
        speed = task.finished_speed or task.speed
        if task.fields.get("unit") != "bytes" or not speed:
            return Text("")
        return Text(f"{decimal(int(speed))}/s", style="progress.data.speed")


class DowntimeClock:
    """The application's downtime during a cutover: from the source's quiesce until the target is
    available (``until``), or now while it is not."""

    def __init__(self, since: float) -> None:
        self.since = since
        self.until = 0.0

    @property
    def seconds(self) -> float:
        return (self.until or time.time()) - self.since

    def __rich__(self) -> Text:
        if self.until:
            return Text(f"⏱ downtime {duration(self.seconds)} (target available)", style="green")
        return Text(f"⏱ downtime {duration(self.seconds)} (source quiesced, target not available yet)", "red")


class ClockedProgress(Progress):
    """The bars, then the downtime clock when a cutover has quiesced the source (redrawn with the
    bars, several times a second, so it runs between events)."""

    clock: DowntimeClock | None = None

    def get_renderables(self) -> Iterable[RenderableType]:
        yield from super().get_renderables()
        if self.clock is not None:
            yield self.clock


def _utc(unix: float) -> str:
    return dt.datetime.fromtimestamp(unix, dt.UTC).strftime("%H:%M:%S")


def new_progress(console: Console) -> ClockedProgress:
    return ClockedProgress(
        TextColumn(
            "{task.description}",
            table_column=Column(min_width=24, max_width=40, no_wrap=True, overflow="ellipsis"),
        ),
        BarColumn(bar_width=30),
        AmountColumn(),
        RateColumn(),
        TimeRemainingColumn(),
        console=console,
        refresh_per_second=8,
    )


class Watcher:
    def __init__(self, console: Console, state: RequestState) -> None:
        self.console = console
        self.state = state
        self.progress = new_progress(console)
        self.steps: dict[str, TaskID] = {}
        self.volumes: dict[tuple[str, str], TaskID] = {}
        self.reports: list[Report] = []
        self.phase = state.phase
        self.reason = state.reason
        for step in state.steps:
            self.steps[step.step.value] = self.progress.add_task(
                f"  {step.step.value}", total=None, start=False, unit=""
            )

    def _step(self, name: str) -> TaskID:
        if name not in self.steps:  # a step not in the itinerary we saw (should not happen)
            self.steps[name] = self.progress.add_task(f"  {name}", total=None, unit="")
        return self.steps[name]

    def _volume(self, step: str, volume: str) -> TaskID:
        key = (step, volume)
        if key not in self.volumes:
            self.volumes[key] = self.progress.add_task(
                f"    [dim]{step}[/] {volume}", total=None, unit="bytes"
            )
        return self.volumes[key]

    def _quiesced(self, event: Quiesced) -> None:
        """Start the downtime clock (the first quiesce counts), stop it once the target is available."""
        say = self.progress.console.print
        clock = self.progress.clock
        if clock is None:
            clock = self.progress.clock = DowntimeClock(event.since)
            say(
                f"[red]⏸[/] source quiesced at {_utc(event.since)} UTC ({len(event.workloads)} workload(s)): "
                "downtime starts",
                highlight=False,
            )
        if event.available_at:
            self._available(event.available_at)

    def _available(self, at: float) -> None:
        clock = self.progress.clock
        if clock is None or clock.until:
            return
        clock.until = at
        say = self.progress.console.print
        say(
            f"[green]▶[/] target available at {_utc(at)} UTC: downtime {duration(clock.seconds)}",
            highlight=False,
        )

    def handle(self, event: Event) -> None:
        step = event.step.value if event.step is not None else ""
        say = self.progress.console.print
        if isinstance(event, Quiesced):
            self._quiesced(event)
        elif isinstance(event, StepStarted):
            task = self._step(step)
            self.progress.start_task(task)
            retry = f" (attempt {event.attempt})" if event.attempt > 1 else ""
            self.progress.update(task, description=f"[cyan]▶[/] {step}{retry}")
        elif isinstance(event, ProgressEvent):
            if event.volume:
                task = self._volume(step, event.volume)
                self.progress.update(task, completed=event.bytes_done, total=event.bytes_total or None)
            elif event.bytes_total:
                self.progress.update(
                    self._step(step), completed=event.bytes_done, total=event.bytes_total, unit="bytes"
                )
            elif event.items_total:
                self.progress.update(
                    self._step(step), completed=event.items_done, total=event.items_total, unit=""
                )
        elif isinstance(event, StepCompleted):
            task = self._step(step)
            total = self.progress.tasks[task].total or 1
            mark = "[yellow]![/]" if event.partial else "[green]✓[/]"
            self.progress.update(task, completed=total, total=total, description=f"{mark} {step}")
            if event.message:  # above the bars, where a long line can wrap without squeezing them
                say(f"{mark} {step}: {event.message}", highlight=False)
            if AVAILABLE_AT in event.outputs:
                self._available(float(event.outputs[AVAILABLE_AT]))
            for (vstep, volume), vtask in self.volumes.items():
                if vstep == step:
                    vtotal = self.progress.tasks[vtask].total
                    described = f"  {mark} [dim]{step}[/] {volume}"
                    self.progress.update(vtask, completed=vtotal or 0, total=vtotal, description=described)
        elif isinstance(event, Failed):
            kind = f"retrying ({event.attempt}/{event.max_attempts})" if event.temporary else "failed"
            say(f"[red]✗ {step} {kind}:[/] {event.reason}", highlight=False)
            if not event.temporary:
                self.progress.update(self._step(step), description=f"[red]✗[/] {step}")
        elif isinstance(event, Warning):
            where = f" ({event.object})" if event.object else ""
            say(f"[yellow]warning[/] {step}: {event.message}{where}", highlight=False)
        elif isinstance(event, Report):
            self.reports.append(event)
            # The preflight's verdict is its step's line; its problems, a table at the end.
            if event.document not in (DocumentKind.VERIFICATION, DocumentKind.PREFLIGHT):
                say(f"[bold]{event.title}[/]: {report_line(event.body)}", highlight=False)
        elif isinstance(event, PhaseChanged):
            self.phase, self.reason = event.phase, event.reason or self.reason
            say(
                f"{self.state.id} → {phase_text(event.phase)}"
                + (f": {event.reason}" if event.reason else ""),
                highlight=False,
            )

    def summary(self) -> None:
        clock = self.progress.clock
        if clock is not None and not clock.until:  # the stream ended with the target not available
            self.console.print(
                f"[red]the source is down since {_utc(clock.since)} UTC ({duration(clock.seconds)})[/]",
                highlight=False,
            )
        for report in self.reports:  # a failed preflight: the problems as a table
            if report.document == DocumentKind.PREFLIGHT and report.body.get("problems"):
                self.console.print(preflight_table(report.body, only_problems=True))
        verification = [r for r in self.reports if r.document == DocumentKind.VERIFICATION]
        for report in verification:
            show_verification(self.console, report)
        request = self.state.request
        quiet = request.preflight_only or request.kind is RequestKind.ROLLBACK  # nothing to verify
        if not verification and self.phase is Phase.COMPLETED and not quiet:
            why = (
                "a dry run restores nothing to verify"
                if self.state.request.dry_run
                else "this itinerary does not verify"
            )
            self.console.print(f"[dim]no verification report ({why})[/]")
        line = f"{self.state.id}: {phase_text(self.phase)}"
        self.console.print(
            line + (f" — {self.reason}" if self.reason and self.phase is not Phase.COMPLETED else "")
        )


def report_line(body: dict[str, object]) -> str:
    """One line for a step's report: its counts, else its top-level scalars."""
    counts = body.get("counts")
    pairs = (
        counts.items()
        if isinstance(counts, dict)
        else ((k, v) for k, v in body.items() if not isinstance(v, dict | list))
    )
    return ", ".join(f"{k}={v}" for k, v in list(pairs)[:6])


def show_verification(console: Console, report: Report, limit: int = 20) -> None:
    """The verify step's proof as people read it: objects accounted for, each volume, each problem."""
    try:
        proof = msgspec.convert(report.body, Verification)
    except msgspec.ValidationError:  # another shape: show it as it is
        table = Table(title="Verification", box=None, header_style="bold", title_justify="left")
        table.add_column("CHECK")
        table.add_column("RESULT")
        for key, value in flatten(report.body):
            table.add_row(key, value)
        console.print(table)
        return
    verdict = "[green]verified[/]" if proof.ok else "[red]verification found problems[/]"
    console.print(f"[bold]Verification[/] of snapshot {proof.snapshot or '-'}: {verdict}", highlight=False)
    volumes_differing = sum(1 for v in proof.volumes if not v.ok)
    console.print(
        f"  objects: {proof.objects_present}/{proof.objects_expected} accounted for, "
        f"{proof.objects_differing} differ, {proof.objects_missing} missing; "
        f"volumes: {len(proof.volumes) - volumes_differing}/{len(proof.volumes)} equal to the snapshot",
        highlight=False,
    )
    if proof.volumes:
        table = Table(box=None, header_style="bold", padding=(0, 2))
        for column in ("VOLUME", "RESTORE", "OK", "FILES", "BYTES", "REASON"):
            table.add_column(column)
        for volume in proof.volumes[:limit]:
            ok = "[green]yes[/]" if volume.ok else "[red]no[/]"
            action = volume.action.value if volume.action else "-"
            table.add_row(
                volume.claim, action, ok, str(volume.files), decimal(volume.bytes), volume.reason or ""
            )
        console.print(table)
    problems = [f"{o.target or o.key}: {o.reason}" for o in proof.objects]
    problems += [
        f"{v.claim}: {path}: {why}" for v in proof.volumes for path, why in sorted(v.damaged.items())
    ]
    for line in problems[:limit]:
        console.print(f"  [red]✗[/] {line}", highlight=False)
    if len(problems) > limit:
        console.print(f"  ... and {len(problems) - limit} more (ferry status ID -o json)", highlight=False)


async def watch(console: Console, state: RequestState, events: AsyncIterator[tuple[int, Event]]) -> Phase:
    """Render events until the stream ends; the phase it ended in."""
    watcher = Watcher(console, state)
    with watcher.progress:
        async for _, event in events:
            watcher.handle(event)
    watcher.summary()
    return watcher.phase
