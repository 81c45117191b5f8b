"""A policy's status rules and gauges: what its last run says, how old its newest replica is.

Pure changes of a ``PolicyStatus`` (applied under compare-and-set by the policy service, so they may
run more than once and must give the same result) and the Prometheus gauges of every policy. Kept
apart from the service so the rules read in one place: a run is observed only when its request is
final; the RPO is ``now − last_replica_at`` (``created_at`` before the first replica), breached when
above the policy's target, and the ``RPOBreached`` condition holds exactly while it is.

The failover and failback rules are here too (``begin_failover``, ``settle``): which states may
fail over or back, what a failover records (its mode, the data lost), and what the end of their
requests does — a failover that failed or was cancelled makes the policy active again (a failed
cutover rolls itself back, the primary serves again), a failback that completed does too, and its
snapshot, which the DR repository now holds, counts as the newest replica.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from prometheus_client import CollectorRegistry, Counter, Gauge

from shared.contracts.errors import Conflict
from shared.contracts.migrations import AVAILABLE_AT, DOWNTIME
from shared.contracts.policies import (
    MAX_SKIPPED,
    RPO_BREACHED,
    Condition,
    PolicyPhase,
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


CUTOVER, RESTORE = "cutover", "restore"  # failover modes: the primary answered, or it did not
_SUCCEEDED = (Phase.COMPLETED.value, Phase.PARTIALLY_FAILED.value)  # the application landed
_ENDED = (Phase.FAILED.value, Phase.CANCELLED.value, "Rejected")  # it did not


def may_fail_over(state: PolicyState) -> None:
    """``Conflict`` saying why the policy cannot fail over now; nothing when it can."""
    name, status = state.policy.name, state.status
    if status.state is PolicyPhase.PAUSED:
        raise Conflict(
            f"policy {name} is paused: resume it first (a failover stops its schedule itself)", field="name"
        )
    if status.state is PolicyPhase.FAILED_OVER and status.failover_request:
        raise Conflict(
            f"policy {name} is already failed over ({status.failover_request}, "
            f"{status.failover_phase or 'Queued'}): fail back first",
            field="name",
        )


def begin_failover(state: PolicyState, at: str, mode: str, reason: str, now: float) -> bool:
    """Record a failover asked at ``at``; False when a previous call recorded one it did not submit
    yet (that call's ``at``, and so its idempotency key, is reused: one request whatever happens)."""
    may_fail_over(state)
    status = state.status
    if status.state is PolicyPhase.FAILED_OVER:
        return False
    if mode == RESTORE and not status.last_replica_at:
        raise Conflict(
            f"the primary of policy {state.policy.name} does not answer ({reason}) and the DR "
            "repository has no replica of it yet: nothing to fail over to",
            field="name",
        )
    evaluate(state, now)
    status.state, status.failover_at = PolicyPhase.FAILED_OVER, at
    status.failover_mode, status.failover_reason = mode, reason
    status.failover_request = status.failover_phase = ""
    status.data_lost_seconds = 0.0 if mode == CUTOVER else status.rpo_seconds
    status.rto_seconds = status.downtime_seconds = None
    status.failback_request = status.failback_at = status.failback_phase = status.failed_back_at = ""
    return True


def begin_failback(state: PolicyState, at: str) -> bool:
    """Record a failback asked at ``at`` (False: a previous call's is reused, as for a failover)."""
    name, status = state.policy.name, state.status
    if status.state is not PolicyPhase.FAILED_OVER:
        raise Conflict(
            f"policy {name} is not failed over ({status.state.value}): nothing to fail back", field="name"
        )
    if status.failover_phase not in _SUCCEEDED:
        raise Conflict(
            f"the failover of policy {name} ({status.failover_request or 'not submitted yet'}) is "
            f"{status.failover_phase or 'starting'}: fail back once it has completed",
            field="name",
        )
    if status.failback_request and status.failback_phase not in _ENDED:
        raise Conflict(
            f"policy {name} is failing back already ({status.failback_request}, "
            f"{status.failback_phase or 'Queued'})",
            field="name",
        )
    if status.failback_at and not status.failback_request:
        return False
    status.failback_at, status.failback_request, status.failback_phase = at, "", ""
    return True


def settle(
    state: PolicyState, failover: RequestState | None, failback: RequestState | None
) -> tuple[bool, bool]:
    """Take what the failover's and the failback's requests say into the status: (changed, the
    policy is active again and its schedules must run)."""
    status = state.status
    changed = resumed = False
    if failover is not None and failover.id == status.failover_request:
        if status.failover_phase != failover.phase.value:
            changed, status.failover_phase = True, failover.phase.value
            resumed = _failover_ended(state, failover)
    if failback is not None and failback.id == status.failback_request:
        if status.failback_phase != failback.phase.value:
            changed, status.failback_phase = True, failback.phase.value
            if failback.phase.value in _SUCCEEDED and status.state is PolicyPhase.FAILED_OVER:
                status.state, status.failed_back_at = PolicyPhase.ACTIVE, failback.updated_at
                if epoch(failback.created_at) > epoch(status.last_replica_at):
                    status.last_replica_at = failback.created_at  # its snapshot is in the DR repository
                resumed = True
    return changed, resumed


def _failover_ended(state: PolicyState, run: RequestState) -> bool:
    """A final failover: its RTO when it landed; the policy active again when it did not."""
    status = state.status
    if run.phase.value in _SUCCEEDED:
        outputs = run.outputs
        finished = max((s.finished_at for s in run.steps if s.finished_at), default=run.updated_at)
        available = float(outputs[AVAILABLE_AT]) if AVAILABLE_AT in outputs else epoch(finished)
        status.rto_seconds = round(max(0.0, available - epoch(status.failover_at)), 1)
        if DOWNTIME in outputs:
            status.downtime_seconds = float(outputs[DOWNTIME])
        return False
    if run.phase.final and status.state is PolicyPhase.FAILED_OVER and not status.failback_request:
        status.state = PolicyPhase.ACTIVE
        status.data_lost_seconds = None
        return True
    return False


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
