"""The state of a request, as kept in the ``ferry-requests`` KV bucket (one key per request).

Phases follow Velero's Backup phases so operators recognise them. Writers update a state only by
compare-and-set on the KV revision (see shared.bus.states), so two writers never lose an update.
"""

from __future__ import annotations

from enum import StrEnum

import msgspec
from msgspec import Struct, field

from shared.contracts.requests import MobilityRequest
from shared.contracts.steps import StepName, StepResult


class Phase(StrEnum):
    NEW = "New"
    QUEUED = "Queued"
    IN_PROGRESS = "InProgress"
    COMPLETED = "Completed"
    PARTIALLY_FAILED = "PartiallyFailed"
    FAILED = "Failed"
    CANCELLED = "Cancelled"

    @property
    def final(self) -> bool:
        return self in (Phase.COMPLETED, Phase.PARTIALLY_FAILED, Phase.FAILED, Phase.CANCELLED)


class StepStatus(StrEnum):
    PENDING = "Pending"
    RUNNING = "Running"
    SUCCEEDED = "Succeeded"
    PARTIALLY_FAILED = "PartiallyFailed"
    FAILED = "Failed"
    CANCELLED = "Cancelled"

    @property
    def done(self) -> bool:
        return self not in (StepStatus.PENDING, StepStatus.RUNNING)


class StepState(Struct, kw_only=True):
    step: StepName
    status: StepStatus = StepStatus.PENDING
    attempts: int = 0
    owner: str = ""  # the replica running it now
    lease_until: float = 0.0  # unix time; a Running step whose lease passed may be taken over
    started_at: str = ""
    finished_at: str = ""
    result: StepResult | None = None
    error: str = ""


class RequestState(Struct, kw_only=True):
    id: str
    request: MobilityRequest
    phase: Phase = Phase.NEW
    itinerary: tuple[StepName, ...] = ()
    steps: list[StepState] = field(default_factory=list)
    created_at: str = ""
    updated_at: str = ""
    reason: str = ""  # why it failed / was cancelled, in words a person can act on
    cancel_requested: bool = False

    def step_state(self, step: StepName) -> StepState:
        for state in self.steps:
            if state.step == step:
                return state
        raise KeyError(step)

    @property
    def outputs(self) -> dict[str, str]:
        """Outputs of every finished step so far, later steps winning."""
        merged: dict[str, str] = {}
        for state in self.steps:
            if state.result is not None:
                merged.update(state.result.outputs)
        return merged


class Accepted(Struct, frozen=True, tag="accepted"):
    """Reply to a submission: the request id (the same id again for a repeated idempotency key)."""

    id: str
    duplicate: bool = False


class Rejected(Struct, frozen=True, tag="rejected"):
    """Reply to any bad call on the bus: what was wrong, and where."""

    error: str
    field: str = ""
    code: str = "invalid"  # invalid | not-found | conflict | unavailable


Reply = Accepted | Rejected


class ListQuery(Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    phase: str = ""
    kind: str = ""
    label: str = ""  # key=value
    since: str = ""  # ISO time: created at or after
    limit: int = 100


class RequestList(Struct, frozen=True, kw_only=True):
    items: list[RequestState] = field(default_factory=list)


state_encoder = msgspec.json.Encoder()
state_decoder = msgspec.json.Decoder(RequestState)
reply_decoder = msgspec.json.Decoder(Reply)
