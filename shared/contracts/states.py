"""The state of a request, as kept in the ``ferry-requests`` KV bucket (one key per request).

Phases follow Velero's Backup phases so operators recognise them. Writers update a state only by
compare-and-set on the KV revision (see shared.bus.states), so two writers never lose an update.

A stored state is at most ``MAX_STATE_BYTES`` of JSON: the request in it is at most
``MAX_REQUEST_BYTES`` (shared.contracts.requests), and a step result that would push the state past
the bound is kept whole in the ``ferry-inventories`` object store, under ``result_document(id,
step)``, with a summary in the state that names it (outputs ``<step>_result``). So a state always
fits in one NATS message, and a page of a list always holds at least one.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated

import msgspec
from msgspec import Meta, Struct, field

from shared.contracts.errors import CodedError, error_for
from shared.contracts.requests import MobilityRequest
from shared.contracts.steps import StepName, StepResult

MAX_STATE_BYTES = 256 * 1024  # a RequestState as stored in the KV bucket, encoded as JSON
MAX_LIST_LIMIT = 1000  # items on one page of a list


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
    rollback_request: str = ""  # the rollback request started for this one (a cutover that failed)
    rolled_back: bool = False  # a rollback removed what this request created and brought the source back

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
    code: str = "invalid"  # invalid | not-found | conflict | unreadable | unavailable (errors.CODES)

    @classmethod
    def of(cls, error: CodedError) -> Rejected:
        """The reply that tells a caller about ``error``: its message, field and code."""
        return cls(error=str(error), field=error.field, code=error.code)

    def as_error(self) -> CodedError:
        """The error this reply stands for (its class, hence its HTTP status, by code)."""
        return error_for(self.code, self.error, field=self.field)


Reply = Accepted | Rejected


class ListQuery(Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    phase: str = ""
    kind: str = ""
    label: str = ""  # key=value
    since: str = ""  # ISO time: created at or after
    limit: int = 100  # at most this many items on the page (1..MAX_LIST_LIMIT)
    cursor: Annotated[str, Meta(max_length=512)] = ""  # a RequestList's `next`: the page after it


class Unreadable(Struct, frozen=True, kw_only=True):
    """A stored request a list had to leave out, and why (its state does not decode, say)."""

    id: str
    reason: str


class RequestList(Struct, frozen=True, kw_only=True, omit_defaults=True):
    """One page of requests, newest first. ``next`` is the cursor of the page after this one (absent
    on the last page); ``skipped`` names stored requests that could not be read (absent when none:
    one unreadable entry never fails a list)."""

    items: list[RequestState]
    next: str = ""
    skipped: list[Unreadable] = field(default_factory=list)


def result_document(request_id: str, step: StepName) -> str:
    """The object-store name of a step result kept outside the state (see the module docstring)."""
    return f"{request_id}/results/{step.value}.json"


def result_output(step: StepName) -> str:
    """The output key of a state's step result summary that names the whole result's document."""
    return f"{step.value}_result"


state_encoder = msgspec.json.Encoder()
state_decoder = msgspec.json.Decoder(RequestState)
reply_decoder = msgspec.json.Decoder(Reply)
