"""Ferry's public contracts: the messages on the bus, their subjects, and their JSON Schema.

Everything here is data (msgspec Structs, frozen), so every service and every client in any
language agrees on one shape. Rules for change (msgspec's schema-evolution guide): new fields get
defaults, a field's type never changes, tags never change.
"""

from shared.contracts.events import (
    Event,
    Failed,
    PhaseChanged,
    Progress,
    StepCompleted,
    StepStarted,
    Warning,
)
from shared.contracts.requests import (
    ConflictPolicy,
    MobilityRequest,
    RequestKind,
    Source,
    Target,
    VolumePolicy,
)
from shared.contracts.states import Phase, RequestState, StepState, StepStatus
from shared.contracts.steps import StepCommand, StepName, StepResult, itinerary_for

__all__ = [
    "ConflictPolicy",
    "Event",
    "Failed",
    "MobilityRequest",
    "Phase",
    "PhaseChanged",
    "Progress",
    "RequestKind",
    "RequestState",
    "Source",
    "StepCommand",
    "StepCompleted",
    "StepName",
    "StepResult",
    "StepStarted",
    "StepState",
    "StepStatus",
    "Target",
    "VolumePolicy",
    "Warning",
    "itinerary_for",
]
