"""Step names and the steps of each kind of request: what requests and steps both need.

A request checks an explicit ``itinerary`` against its kind's steps (``requests``), and
``steps.itinerary_for`` plans a request's routing slip from them; both read this leaf, so neither
module imports the other. Kinds are keyed by their value: ``RequestKind`` is a ``StrEnum`` that lives
with the request, and its members look up these keys as they are.
"""

from __future__ import annotations

from collections.abc import Sequence
from enum import StrEnum


class StepName(StrEnum):
    PREFLIGHT = "preflight"  # clusters, permissions, storage classes, repositories: before any copy
    DISCOVER = "discover"
    SNAPSHOT = "snapshot"
    TRANSFER = "transfer"
    RESTORE = "restore"
    VERIFY = "verify"
    ROLLBACK = "rollback"  # undo a migrate: its objects removed from the target, the source brought back
    CLEANUP = "cleanup"  # end a drill: measure RTO/RPO, remove what it restored (unless kept), report
    # A stub step used by tests and the backbone demo: it only reports progress.
    ECHO = "echo"


KIND_STEPS: dict[str, tuple[StepName, ...]] = {
    "migrate": (
        StepName.PREFLIGHT,
        StepName.DISCOVER,
        StepName.SNAPSHOT,
        StepName.TRANSFER,
        StepName.RESTORE,
        StepName.VERIFY,
    ),
    "replicate": (StepName.PREFLIGHT, StepName.DISCOVER, StepName.SNAPSHOT, StepName.TRANSFER),
    "restore": (StepName.PREFLIGHT, StepName.TRANSFER, StepName.RESTORE, StepName.VERIFY),
    # A drill's cleanup runs after a verify that found problems too (a partial step forwards the slip)
    "drill": (StepName.PREFLIGHT, StepName.TRANSFER, StepName.RESTORE, StepName.VERIFY, StepName.CLEANUP),
    "rollback": (StepName.ROLLBACK,),
}


def planned(
    kind: str, itinerary: Sequence[str] = (), *, preflight_only: bool = False, dry_run: bool = False
) -> tuple[StepName, ...]:
    """The steps a request goes through.

    Every default itinerary starts with the preflight checks, so a request that cannot run fails in
    seconds, before any snapshot. ``preflight_only`` runs just those checks; a dry run stops after
    discovery (or renders the restore). An explicit ``itinerary`` is taken as it is.
    """
    if preflight_only:
        return (StepName.PREFLIGHT,)
    steps = tuple(StepName(s) for s in itinerary) or KIND_STEPS[kind]
    if dry_run and StepName.DISCOVER in steps:
        return steps[: steps.index(StepName.DISCOVER) + 1]
    return steps
