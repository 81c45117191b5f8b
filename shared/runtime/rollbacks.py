"""The automatic rollback of a cutover that failed or was cancelled: one request, submitted like any other.

A cutover quiesces the source and leaves it down, so a cutover that ends without the application
running in the target must not leave it down: the step runner (``stepping``) submits the rollback
(``shared.contracts.migrations.rollback_request``) to the intake over the bus, exactly as the CLI or
automation would, and records it on the failed request. Its idempotency key (``rollback-<id>``)
makes a rollback asked twice — by this code after a redelivery, or by a person — one request.

It is submitted for every failed or cancelled cutover with ``auto_rollback`` (not only when the
snapshot step got as far as quiescing): a rollback that finds nothing to remove and nothing to
bring back is harmless, and one rule is easier to trust than a guess at how far a crash got.
When the intake does not answer, the request's reason says so and names the command to run.
"""

from __future__ import annotations

import logging

from nats.aio.client import Client

from shared.bus.client import BusClient
from shared.contracts.migrations import rollback_request
from shared.contracts.requests import RequestKind
from shared.contracts.states import Phase, RequestState

log = logging.getLogger("ferry.runtime")

SUBMIT_TIMEOUT = 10.0  # seconds the intake has to accept the rollback request


def needs_rollback(state: RequestState) -> bool:
    """A cutover that ended failed or cancelled, asks for an automatic rollback, and has none yet."""
    request = state.request
    return (
        request.kind is RequestKind.MIGRATE
        and request.cutover
        and request.auto_rollback
        and state.phase in (Phase.FAILED, Phase.CANCELLED)
        and not state.rollback_request
    )


async def submit_rollback(
    nc: Client, state: RequestState, *, within: float = SUBMIT_TIMEOUT
) -> tuple[str, str]:
    """Submit the rollback of ``state``'s request; returns (the rollback's id or "", the note for the
    request's reason). Never raises: the request has already failed, this only adds to it."""
    try:
        rollback_id = await BusClient(nc, timeout=within).submit(rollback_request(state))
    except Exception as e:  # intake down, rejected, connection closed: all end in the same advice
        log.error("automatic rollback of %s could not be submitted: %s", state.id, e)
        why = str(e) or type(e).__name__
        return "", f"automatic rollback could not be submitted: {why}; run `ferry rollback {state.id}`"
    log.info("automatic rollback of %s submitted as %s", state.id, rollback_id)
    return rollback_id, f"rolling back (request {rollback_id})"


def noted(state: RequestState, rollback_id: str, note: str) -> bool:
    """A state change (for ``RequestStore.update``): record the rollback and say so in the reason, once."""
    if state.rollback_request or note in state.reason:
        return False
    state.rollback_request = rollback_id
    state.reason = f"{state.reason}; {note}" if state.reason else note
    return True
