"""Steps, the itinerary (routing slip) and what each step hands on.

A request carries its itinerary: the ordered steps it goes through. Each service consumes the
command for its step, records a StepResult, and forwards the command to the next step. New
itineraries need no new service.
"""

from __future__ import annotations

import msgspec
from msgspec import Struct, field

from shared.contracts.itineraries import StepName, planned
from shared.contracts.requests import MobilityRequest

__all__ = [
    "StepCommand",
    "StepName",
    "StepResult",
    "command_decoder",
    "command_encoder",
    "itinerary_for",
]


def itinerary_for(request: MobilityRequest) -> tuple[StepName, ...]:
    """The steps a request goes through (``itineraries.planned``: preflight first; a dry run stops
    after discovery; ``preflight_only`` runs just the checks; an explicit ``itinerary`` as it is)."""
    return planned(
        request.kind, request.itinerary, preflight_only=request.preflight_only, dry_run=request.dry_run
    )


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
