"""A policy's status rules and gauges: what its last run says, how old its newest replica is.

Pure changes of a ``PolicyStatus`` (applied under compare-and-set by the policy service, so they may
run more than once and must give the same result) and the Prometheus gauges of every policy. Kept
apart from the service so the rules read in one place: a run is observed only when its request is
final; the RPO is ``now − last_replica_at`` (``created_at`` before the first replica), breached when
above the policy's target, and the ``RPOBreached`` condition holds exactly while it is.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from prometheus_client import CollectorRegistry, Counter, Gauge

from shared.contracts.policies import (
    MAX_SKIPPED,
    RPO_BREACHED,
    Condition,
    PolicyState,
    PolicyStatus,
    SkippedSlot,
)
from shared.contracts.states import Phase, RequestState
from shared.durations import seconds


def epoch(text: str) -> float:
    """Unix seconds of an ISO time as Ferry writes them ("…Z"); 0 for ""."""
    if not text:
        return 0.0
    return dt.datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


def observe(status: PolicyStatus, run: RequestState | None) -> bool:
    """Take what the policy's last run says into its status; whether anything changed."""
    if run is None or run.id != status.last_run_request:
        return False
    before = (status.last_run_phase, status.last_success_at, status.last_replica_at)
    status.last_run_phase = run.phase.value
    if run.phase.final and run.created_at and run.updated_at:
        status.last_run_duration_seconds = max(0.0, epoch(run.updated_at) - epoch(run.created_at))
    if run.phase is Phase.COMPLETED and epoch(run.created_at) > epoch(status.last_replica_at):
        status.last_replica_at = run.created_at
        status.last_success_at = run.updated_at
    return (status.last_run_phase, status.last_success_at, status.last_replica_at) != before


@dataclass(frozen=True)
class Transition:
    """The RPO went from met to breached (or back): an event and a condition change."""

    breached: bool
    message: str
    since: str


def evaluate(state: PolicyState, now: float) -> Transition | None:
    """Set ``rpo_seconds``, ``rpo_target_seconds`` and ``breached``; the transition, if one happened."""
    status = state.status
    target = seconds(state.policy.rpo)
    base = epoch(status.last_replica_at or status.created_at)
    status.rpo_target_seconds = target
    status.rpo_seconds = round(max(0.0, now - base), 3) if base else 0.0
    breached = status.rpo_seconds > target
    if breached == status.breached:
        return None
    status.breached = breached
    since = dt.datetime.fromtimestamp(now, dt.UTC).isoformat(timespec="seconds").replace("+00:00", "Z")
    newest = (
        f"the newest replica is from {status.last_replica_at}" if status.last_replica_at else "no replica yet"
    )
    if breached:
        message = (
            f"RPO target {state.policy.rpo} breached: {newest}, {status.rpo_seconds:.0f}s ago"
            f" (last run {status.last_run_request or 'none'}: {status.last_run_phase or 'none'})"
        )
        status.conditions = [c for c in status.conditions if c.type != RPO_BREACHED]
        status.conditions.append(Condition(type=RPO_BREACHED, since=since, message=message))
    else:
        message = f"RPO target {state.policy.rpo} met again: {newest}, {status.rpo_seconds:.0f}s ago"
        status.conditions = [c for c in status.conditions if c.type != RPO_BREACHED]
    return Transition(breached=breached, message=message, since=since)


def skip(status: PolicyStatus, slot_at: str, reason: str, *, missed: bool = False) -> None:
    """Record a slot that did not run (the newest ``MAX_SKIPPED`` are kept)."""
    status.last_slot_at = max(status.last_slot_at, slot_at)
    status.skipped = [*status.skipped, SkippedSlot(slot_at=slot_at, reason=reason)][-MAX_SKIPPED:]
    if missed:
        status.missed += 1


class PolicyGauges:
    """The per-policy series on a service's registry (the RPO you can see)."""

    def __init__(self, registry: CollectorRegistry) -> None:
        def gauge(name: str, text: str) -> Gauge:
            return Gauge(name, text, ["policy"], registry=registry)

        self.last_success = gauge(
            "ferry_policy_last_success_timestamp_seconds", "When the newest successful run finished"
        )
        self.rpo = gauge("ferry_policy_rpo_seconds", "Age of the newest replica in the DR repository")
        self.target = gauge("ferry_policy_rpo_target_seconds", "The policy's RPO target")
        self.breached = gauge("ferry_policy_rpo_breached", "1 while the RPO is above its target")
        self.duration = gauge("ferry_policy_run_duration_seconds", "How long the newest finished run took")
        self.slots = Counter(
            "ferry_policy_slots", "Slots handled, by outcome", ["policy", "outcome"], registry=registry
        )
        self._all = (self.last_success, self.rpo, self.target, self.breached, self.duration)

    def show(self, state: PolicyState) -> None:
        name, status = state.policy.name, state.status
        self.last_success.labels(name).set(epoch(status.last_success_at))
        self.rpo.labels(name).set(status.rpo_seconds)
        self.target.labels(name).set(status.rpo_target_seconds)
        self.breached.labels(name).set(1 if status.breached else 0)
        self.duration.labels(name).set(status.last_run_duration_seconds)

    def forget(self, name: str) -> None:
        for series in self._all:
            try:
                series.remove(name)
            except KeyError:
                pass
