"""Steps, the itinerary (routing slip) and what each step hands on.

A request carries its itinerary: the ordered steps it goes through. Each service consumes the
command for its step, records a StepResult, and forwards the command to the next step. New
itineraries need no new service.
"""

from __future__ import annotations

from enum import StrEnum

import msgspec
from msgspec import Struct, field

from shared.contracts.requests import MobilityRequest, RequestKind


class StepName(StrEnum):
    PREFLIGHT = "preflight"  # clusters, permissions, storage classes, repositories: before any copy
    DISCOVER = "discover"
    SNAPSHOT = "snapshot"
    TRANSFER = "transfer"
    RESTORE = "restore"
    VERIFY = "verify"
    # A stub step used by tests and the backbone demo: it only reports progress.
    ECHO = "echo"


_ITINERARIES: dict[RequestKind, tuple[StepName, ...]] = {
    RequestKind.MIGRATE: (
        StepName.PREFLIGHT,
        StepName.DISCOVER,
        StepName.SNAPSHOT,
        StepName.TRANSFER,
        StepName.RESTORE,
        StepName.VERIFY,
    ),
    RequestKind.REPLICATE: (StepName.PREFLIGHT, StepName.DISCOVER, StepName.SNAPSHOT, StepName.TRANSFER),
    RequestKind.RESTORE: (StepName.PREFLIGHT, StepName.TRANSFER, StepName.RESTORE, StepName.VERIFY),
    RequestKind.DRILL: (StepName.PREFLIGHT, StepName.TRANSFER, StepName.RESTORE, StepName.VERIFY),
}


def itinerary_for(request: MobilityRequest) -> tuple[StepName, ...]:
    """The steps a request goes through.

    Every default itinerary starts with the preflight checks, so a request that cannot run fails in
    seconds, before any snapshot. ``preflight_only`` runs just those checks; a dry run stops after
    discovery (or renders the restore). An explicit ``itinerary`` is taken as it is.
    """
    if request.preflight_only:
        return (StepName.PREFLIGHT,)
    steps = tuple(StepName(s) for s in request.itinerary) or _ITINERARIES[request.kind]
    if request.dry_run and StepName.DISCOVER in steps:
        return steps[: steps.index(StepName.DISCOVER) + 1]
    return steps


class StepCommand(Struct, frozen=True, kw_only=True):
    """The message on ``ferry.step.<step>``: the routing slip for one request at one step."""

    request_id: str
    step: StepName
    index: int  # position of `step` in `itinerary`
    itinerary: tuple[StepName, ...]
    request: MobilityRequest
    outputs: dict[str, str] = field(default_factory=dict)  # accumulated outputs of earlier steps


class StepResult(Struct, frozen=True, kw_only=True):
    """What a step reports when it ends. ``partial`` means some items failed (PartiallyFailed)."""

    outputs: dict[str, str] = field(default_factory=dict)  # e.g. {"inventory": "...", "snapshot": "..."}
    counts: dict[str, int] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    partial: bool = False
    message: str = ""
    bytes_moved: int = 0  # volume bytes the step read, sent or checked (metric ferry_bytes_total)


command_encoder = msgspec.json.Encoder()
command_decoder = msgspec.json.Decoder(StepCommand)
