"""Events a request emits on ``ferry.events.<request-id>.<kind>``: its audit trail and live progress.

One tagged union (the tag field is ``kind``), so a client decodes any event with one decoder and
dispatches on its type. Every event names its request and, when it has one, its step.
"""

from __future__ import annotations

import time
from typing import Any

import msgspec
from msgspec import Struct, field

from shared.contracts.states import Phase
from shared.contracts.steps import StepName


def now() -> float:
    return time.time()


class _Event(Struct, frozen=True, kw_only=True, tag_field="kind"):
    request_id: str
    step: StepName | None = None
    at: float = field(default_factory=now)


class Progress(_Event, frozen=True, tag="progress"):
    """Bytes and items done so far; ``volume`` is set for one volume's progress, empty for the total."""

    bytes_done: int = 0
    bytes_total: int = 0
    items_done: int = 0
    items_total: int = 0
    volume: str = ""
    message: str = ""


class Warning(_Event, frozen=True, tag="warning"):  # noqa: A001 - the event's name in the contract
    message: str
    object: str = ""  # e.g. "shop/deployment.apps/web"


class StepStarted(_Event, frozen=True, tag="step-started"):
    attempt: int = 1


class StepCompleted(_Event, frozen=True, tag="step-completed"):
    outputs: dict[str, str] = field(default_factory=dict)
    counts: dict[str, int] = field(default_factory=dict)
    partial: bool = False
    message: str = ""


class Failed(_Event, frozen=True, tag="failed"):
    """A step failed. ``temporary`` failures are retried: ``attempt`` of ``max_attempts``."""

    reason: str
    temporary: bool = False
    attempt: int = 1
    max_attempts: int = 1


class PhaseChanged(_Event, frozen=True, tag="phase"):
    phase: Phase
    reason: str = ""


class Report(_Event, frozen=True, tag="report"):
    """A structured document a step publishes for people: an inventory summary, a verification report."""

    title: str
    body: dict[str, Any] = field(default_factory=dict)
    document: str = ""  # a ``reports.DocumentKind`` value: what the body is (clients select by it)


class Quiesced(_Event, frozen=True, tag="quiesced"):
    """A cutover quiesced the source: the application is down since ``since`` (unix seconds) until the
    target is available (``available``, a later event of the same kind with ``available_at`` set)."""

    since: float
    workloads: list[str] = field(default_factory=list)  # "<resource>/<namespace>/<name>" scaled or suspended
    available_at: float = 0.0  # set once the target's workloads are available: the downtime ends


Event = Progress | Warning | StepStarted | StepCompleted | Failed | PhaseChanged | Report | Quiesced

event_encoder = msgspec.json.Encoder()
event_decoder = msgspec.json.Decoder(Event)


def event_kind(event: Event) -> str:
    """The subject token for an event's kind (its tag)."""
    return type(event).__struct_config__.tag  # type: ignore[return-value]
