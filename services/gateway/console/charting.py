"""What the console's policy pages show, computed from the contracts: RPO tones and the RPO chart.

A policy's status keeps only its RPO now, not a history, so the chart is rebuilt from the runs
themselves: the ``replicate`` requests carrying the policy's label (``ferry.dev/policy``). Between
two replicas the RPO (the age of the newest replica) grows one second per second; when a run
completes it drops to that run's own age (its creation, as ``PolicyStatus.last_replica_at`` counts
it). So each completed run adds two points at its completion time — the RPO just before (the
previous replica's age, the peak) and just after — and the line ends at "now" with the RPO the
policy service reports. Before the first replica the RPO runs from the policy's creation. The
result is the sawtooth an SRE expects, with the target as a dashed line; an SVG drawn here (no
JavaScript, allowed by the console's CSP) with a text summary for screen readers.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from services.gateway.console.views import human_seconds
from shared.contracts.policies import PolicyState
from shared.contracts.states import Phase, RequestState

WIDTH, HEIGHT = 640, 200
LEFT, RIGHT, TOP, BOTTOM = 56, 12, 12, 28  # margins for the axis labels
AMBER_AT = 0.75  # the RPO is amber from this share of its target, red above the target


def _epoch(text: str) -> float:
    if not text:
        return 0.0
    try:
        return dt.datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return 0.0


def rpo_tone(state: PolicyState) -> str:
    """``ok`` (green) well within target, ``warn`` (amber) near it, ``bad`` (red) breached."""
    status = state.status
    if status.breached or (status.rpo_target_seconds and status.rpo_seconds > status.rpo_target_seconds):
        return "bad"
    if status.rpo_target_seconds and status.rpo_seconds >= AMBER_AT * status.rpo_target_seconds:
        return "warn"
    return "ok"


def rpo_words(state: PolicyState) -> str:
    """``RPO 4 min 12 s / 30m``, and whether the target holds, in words."""
    status = state.status
    verdict = "breached" if rpo_tone(state) == "bad" else "met"
    return f"RPO {human_seconds(status.rpo_seconds)} / {state.policy.rpo} ({verdict})"


def rpo_points(state: PolicyState, runs: list[RequestState], now: float) -> list[tuple[float, float]]:
    """(unix time, RPO seconds) over the policy's life, from its completed runs (module docstring)."""
    done = sorted(
        (r for r in runs if r.phase is Phase.COMPLETED and r.created_at and r.updated_at),
        key=lambda r: _epoch(r.updated_at),
    )
    base = _epoch(state.status.created_at) or (_epoch(done[0].created_at) if done else now)
    points = [(base, 0.0)]
    for run in done:
        finished, taken = _epoch(run.updated_at), _epoch(run.created_at)
        if taken <= base:  # an older replica than the newest one: it lowers nothing
            continue
        points += [(finished, finished - base), (finished, max(0.0, finished - taken))]
        base = taken
    points.append((now, max(0.0, now - base)))
    return points


@dataclass(frozen=True)
class Chart:
    """An SVG's numbers: the line, the target line, the labels and a sentence for screen readers."""

    width: int
    height: int
    line: str  # the polyline's points "x,y x,y"
    target_y: float
    target_label: str
    top_label: str
    start_label: str
    end_label: str
    summary: str
    breached: bool


def rpo_chart(state: PolicyState, runs: list[RequestState], now: float) -> Chart:
    """The RPO over time of one policy, scaled into a ``WIDTH`` × ``HEIGHT`` SVG."""
    points = rpo_points(state, runs, now)
    target = state.status.rpo_target_seconds or 1.0
    t0, t1 = points[0][0], max(points[-1][0], points[0][0] + 1.0)
    top = max(target * 1.25, *(rpo for _, rpo in points)) or 1.0
    inner_w, inner_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM

    def x(t: float) -> float:
        return round(LEFT + inner_w * (t - t0) / (t1 - t0), 1)

    def y(rpo: float) -> float:
        return round(TOP + inner_h * (1 - rpo / top), 1)

    peak = max(rpo for _, rpo in points)
    completed = sum(1 for r in runs if r.phase is Phase.COMPLETED)
    summary = (
        f"RPO of policy {state.policy.name} over {completed} completed run(s): now "
        f"{human_seconds(points[-1][1])}, at most {human_seconds(peak)}, target {state.policy.rpo}"
    )
    return Chart(
        width=WIDTH,
        height=HEIGHT,
        line=" ".join(f"{x(t)},{y(rpo)}" for t, rpo in points),
        target_y=y(target),
        target_label=f"target {state.policy.rpo}",
        top_label=human_seconds(top),
        start_label=_clock(t0),
        end_label=_clock(t1),
        summary=summary,
        breached=peak > target,
    )


def _clock(unix: float) -> str:
    return dt.datetime.fromtimestamp(unix, dt.UTC).strftime("%m-%d %H:%M UTC")
