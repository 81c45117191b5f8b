"""What the console's templates show, computed from the contracts: pure functions, no I/O.

The templates only lay out what these return, so the arithmetic a person relies on (a step's
duration, a volume's rate and time left, which verification problems come first) is plain Python
that a unit test reads, not logic hidden in Jinja.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any

from shared.contracts.events import Progress
from shared.contracts.reports import Verification
from shared.contracts.states import Phase, RequestState, StepStatus

HIDDEN = "(hidden)"


def human_bytes(n: float) -> str:
    """Decimal units, as the CLI prints them (25.0 MB)."""
    for unit in ("B", "kB", "MB", "GB", "TB"):
        if abs(n) < 1000 or unit == "TB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    return f"{n:.1f} TB"  # pragma: no cover - the loop always returns


def human_seconds(seconds: float | None) -> str:
    if seconds is None:
        return ""
    if seconds < 10:
        return f"{seconds:.1f} s"
    minutes, secs = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    if hours:
        return f"{hours} h {minutes} min"
    return f"{minutes} min {secs} s" if minutes else f"{secs} s"


def _when(text: str) -> dt.datetime | None:
    if not text:
        return None
    try:
        return dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None


def phase_tone(phase: Phase | StepStatus | str) -> str:
    """A CSS class for a phase or a step status: ok, warn, bad, busy or idle."""
    value = str(phase)
    if value in ("Completed", "Succeeded"):
        return "ok"
    if value in ("PartiallyFailed", "Cancelled"):
        return "warn"
    if value == "Failed":
        return "bad"
    return "busy" if value in ("InProgress", "Running", "Queued") else "idle"


@dataclass(frozen=True)
class TimelineRow:
    step: str
    status: str
    tone: str
    attempts: int
    started: str
    duration: str
    detail: str


def timeline(state: RequestState) -> list[TimelineRow]:
    """One row per step of the itinerary: its status, tries, when it started and how long it took."""
    rows = []
    now = dt.datetime.now(dt.UTC)
    for step in state.steps:
        started, finished = _when(step.started_at), _when(step.finished_at)
        took = ((finished or now) - started).total_seconds() if started else None
        detail = step.error
        if not detail and step.result is not None:
            counts = ", ".join(f"{v} {k}" for k, v in sorted(step.result.counts.items()))
            detail = step.result.message or counts
        rows.append(
            TimelineRow(
                step=step.step.value,
                status=step.status.value,
                tone=phase_tone(step.status),
                attempts=step.attempts,
                started=started.strftime("%H:%M:%S") if started else "",
                duration=human_seconds(took) + ("" if finished or not started else " so far"),
                detail=detail,
            )
        )
    return rows


def steps_done(state: RequestState) -> tuple[int, int, str]:
    """Finished steps, all steps, and the one running now (the overview's progress)."""
    done = sum(1 for s in state.steps if s.status.done)
    running = next((s.step.value for s in state.steps if s.status is StepStatus.RUNNING), "")
    return done, len(state.steps), running


@dataclass(frozen=True)
class VolumeBar:
    label: str
    done: int
    total: int
    percent: int
    shown: str  # "12.0 MB of 25.0 MB"
    rate: str
    eta: str
    finished: bool


@dataclass
class _Seen:
    first_at: float
    first_bytes: int
    at: float
    done: int
    total: int


@dataclass
class VolumeTracker:
    """Per-volume progress from ``Progress`` events: bytes, average rate since the volume began, ETA."""

    volumes: dict[tuple[str, str], _Seen] = field(default_factory=dict)

    def feed(self, event: Progress) -> bool:
        """Take one event; True when it was about a volume (the bars changed)."""
        if not event.volume:
            return False
        key = (event.step.value if event.step else "", event.volume)
        seen = self.volumes.get(key)
        if seen is None:
            self.volumes[key] = _Seen(
                event.at, event.bytes_done, event.at, event.bytes_done, event.bytes_total
            )
        else:
            seen.at, seen.done, seen.total = event.at, event.bytes_done, event.bytes_total
        return True

    def bars(self) -> list[VolumeBar]:
        """The bars, in the order the volumes first appeared; the rate is over the events' own clock."""
        return [self._bar(step, volume, seen) for (step, volume), seen in self.volumes.items()]

    @staticmethod
    def _bar(step: str, volume: str, seen: _Seen) -> VolumeBar:
        total = max(seen.total, seen.done, 1)
        elapsed = seen.at - seen.first_at
        rate = (seen.done - seen.first_bytes) / elapsed if elapsed > 0 else 0.0
        finished = seen.total > 0 and seen.done >= seen.total
        eta = "done" if finished else (human_seconds((total - seen.done) / rate) if rate > 0 else "…")
        return VolumeBar(
            label=f"{step} {volume}".strip(),
            done=seen.done,
            total=total,
            percent=int(100 * seen.done / total),
            shown=f"{human_bytes(seen.done)} of {human_bytes(seen.total)}",
            rate=f"{human_bytes(rate)}/s" if rate > 0 else "",
            eta=eta,
            finished=finished,
        )


@dataclass(frozen=True)
class VerificationView:
    ok: bool
    summary: str
    problems: list[dict[str, str]]  # objects that are not fine, then volumes that are not
    volumes: list[dict[str, Any]]  # every volume, the ones not equal to the snapshot first


def verification_view(report: Verification) -> VerificationView:
    """The verification report with its problems first, as a person reads it after a migration."""
    problems = [
        {"what": o.target or o.key, "outcome": o.outcome.value, "reason": o.reason} for o in report.objects
    ]
    volumes = sorted(report.volumes, key=lambda v: (v.ok, v.claim))
    for v in volumes:
        if not v.ok:
            damaged = ", ".join(f"{p}: {why}" for p, why in list(v.damaged.items())[:3])
            problems.append({"what": v.claim, "outcome": "volume differs", "reason": v.reason or damaged})
    equal = sum(1 for v in report.volumes if v.ok)
    summary = (
        f"objects: {report.objects_present}/{report.objects_expected} accounted for, "
        f"{report.objects_differing} differ, {report.objects_missing} missing; "
        f"volumes: {equal}/{len(report.volumes)} equal to the snapshot"
    )
    rows = [
        {
            "claim": v.claim,
            "ok": v.ok,
            "files": v.files,
            "bytes": human_bytes(v.bytes),
            "action": v.action.value if v.action else "",
            "reason": v.reason,
        }
        for v in volumes
    ]
    return VerificationView(ok=report.ok, summary=summary, problems=problems, volumes=rows)


def redacted(document: Any) -> Any:
    """``document`` with the values of every Secret hidden (keys kept): what the console shows.

    The steps store Secret values as digests already; this is the console's own guarantee that a
    page never carries one, whatever a document holds.
    """
    if isinstance(document, list):
        return [redacted(item) for item in document]
    if not isinstance(document, dict):
        return document
    is_secret = document.get("kind") == "Secret"
    out: dict[str, Any] = {}
    for key, value in document.items():
        if is_secret and key in ("data", "stringData") and isinstance(value, dict):
            out[key] = dict.fromkeys(value, HIDDEN)
        else:
            out[key] = redacted(value)
    return out
