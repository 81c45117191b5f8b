"""Migration plans: the stages, the cutover and the rollbacks of one application's move, seen as one.

A staged migration is several ``migrate`` requests — stages while the source keeps serving, then a
cutover — and perhaps a ``rollback``. They belong together when they move the same application
(source cluster, namespaces and selector) to the same place (target cluster and namespace mapping):
``plan_key`` names that, every object a migrate restores carries it as the ``ferry.dev/migration``
label (so a rollback finds what the whole plan created), and ``plans`` folds the stored request
states into one ``MigrationPlan`` per key for ``ferry migrations``, the gateway and the bus. Nothing
is stored twice: a plan is computed from the requests each time.
"""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime

from msgspec import Struct, field

from shared.contracts.requests import MobilityRequest, RequestKind
from shared.contracts.states import Phase, RequestState
from shared.contracts.steps import StepName

PLAN_LABEL = "ferry.dev/migration"
QUIESCED_AT = "quiesced_at"  # snapshot output on a cutover: when the source was first quiesced (unix s)
AVAILABLE_AT = "available_at"  # restore output on a cutover: when every workload was available (unix s)
DOWNTIME = "downtime_seconds"  # restore output on a cutover: available_at - quiesced_at


def plan_key(request: MobilityRequest) -> str:
    """A short, label-safe name of the application's move (the same for every stage and cutover)."""
    identity = {
        "from": request.source.cluster,
        "namespaces": sorted(request.source.namespaces),
        "selector": request.source.selector,
        "to": request.target.cluster or request.source.cluster,
        "map": sorted(request.target.namespace_map.items()),
    }
    digest = hashlib.sha256(json.dumps(identity, sort_keys=True).encode()).hexdigest()
    return f"m-{digest[:16]}"


class MigrationPlan(Struct, kw_only=True, omit_defaults=True):
    """What a team asks of a staged migration: how far it is, how fresh, and whether the source is down."""

    key: str
    source_cluster: str
    namespaces: list[str]
    target_cluster: str
    stages: int = 0  # completed stages
    last_stage_at: str = ""  # when the last completed stage (or cutover) finished
    last_stage_bytes: int = 0  # bytes the last completed stage (or cutover) sent
    cutover: str = ""  # "" (none yet) | running | completed | failed | cancelled
    cutover_request: str = ""
    downtime_seconds: float | None = None
    source_quiesced: bool = False  # the source is held at zero replicas by a cutover
    rolled_back: bool = False  # the last cutover (or migrate) was rolled back
    requests: list[str] = field(default_factory=list)  # oldest first


def _bytes_sent(state: RequestState) -> int:
    return sum(s.result.bytes_moved for s in state.steps if s.result and s.step is StepName.TRANSFER)


def _finished_at(state: RequestState) -> str:
    """When the request's last step ended (not ``updated_at``: a later rollback mark moves that)."""
    return max((s.finished_at for s in state.steps if s.finished_at), default=state.updated_at)


def _apply(plan: MigrationPlan, state: RequestState) -> None:
    request = state.request
    plan.requests.append(state.id)
    outputs = state.outputs
    if state.phase is Phase.COMPLETED or state.phase is Phase.PARTIALLY_FAILED:
        plan.last_stage_at, plan.last_stage_bytes = _finished_at(state), _bytes_sent(state)
        if request.stage:
            plan.stages += 1
    if not request.cutover:
        if state.rolled_back:
            plan.rolled_back = True
        return
    plan.cutover_request = state.id
    plan.cutover = {
        Phase.COMPLETED: "completed",
        Phase.PARTIALLY_FAILED: "completed",
        Phase.FAILED: "failed",
        Phase.CANCELLED: "cancelled",
    }.get(state.phase, "running")
    plan.rolled_back = state.rolled_back
    plan.source_quiesced = QUIESCED_AT in outputs and not state.rolled_back and not state.rollback_request
    if DOWNTIME in outputs:
        plan.downtime_seconds = float(outputs[DOWNTIME])


def plans(states: list[RequestState]) -> list[MigrationPlan]:
    """One plan per application moved, newest activity first, from the stored migrate requests."""
    found: dict[str, MigrationPlan] = {}
    for state in sorted(states, key=lambda s: s.created_at):
        request = state.request
        if request.kind is not RequestKind.MIGRATE or request.dry_run or request.preflight_only:
            continue
        key = plan_key(request)
        plan = found.setdefault(
            key,
            MigrationPlan(
                key=key,
                source_cluster=request.source.cluster,
                namespaces=sorted(request.source.namespaces),
                target_cluster=request.target.cluster or request.source.cluster,
            ),
        )
        _apply(plan, state)
    return sorted(found.values(), key=lambda p: p.last_stage_at or "", reverse=True)


def rollback_request(state: RequestState) -> MobilityRequest:
    """The rollback of a stored request: the same source and target, and one idempotency key, so a
    rollback asked twice (by a person and by a failed cutover's automatic one) is one request."""
    original = state.request
    return MobilityRequest(
        kind=RequestKind.ROLLBACK,
        source=original.source,
        target=original.target,
        rollback_of=state.id,
        idempotency_key=f"rollback-{state.id}"[:256],
        labels={k: v for k, v in original.labels.items()},
    )


def age_seconds(iso: str, now: datetime | None = None) -> float | None:
    """Seconds since an ISO time (a stage's data age), or None when there is none."""
    if not iso:
        return None
    then = datetime.fromisoformat(iso.replace("Z", "+00:00"))
    return ((now or datetime.now(UTC)) - then).total_seconds()
