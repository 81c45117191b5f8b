"""How a step ended, as data: the one typed outcome every step handler returns.

kopf's ``_core/actions/execution.py`` ``Outcome`` is the model. A handler returns ``Succeeded`` with
its result, ``RetryAfter`` (temporary: the message comes back, after ``delay`` or the consumer's
backoff), ``Failed`` (permanent: the request fails with ``reason``, something a person can act on)
or ``WasCancelled`` (the request's cancellation was seen at a checkpoint). The step runner
(``stepping``) interprets the outcome in one ``match``.

Code deep inside a handler still raises Ferry's errors (``shared.contracts.errors``): a helper ten
calls down cannot return an outcome through every caller. ``outcome_of`` turns such an exception
into an outcome, and ``outcome`` applies it to a running handler — the one place where exceptions
are classified, so the runner never does it itself.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable
from dataclasses import dataclass, field

import msgspec

from shared.contracts.errors import Cancelled, PermanentError, TemporaryError
from shared.contracts.steps import StepResult

log = logging.getLogger("ferry.runtime")


@dataclass(frozen=True)
class Succeeded:
    """The step did its work; ``result`` is recorded and the slip forwarded."""

    result: StepResult


@dataclass(frozen=True)
class RetryAfter:
    """Worth trying again: a timeout, a lock, a lost connection.

    ``delay`` is a hint in seconds (a Retry-After); None lets the consumer's backoff policy choose,
    growing with the attempt. After ``max_attempts`` the request fails with ``reason``.
    """

    reason: str
    delay: float | None = None
    error: BaseException | None = field(default=None, compare=False, repr=False)  # the cause, if any


@dataclass(frozen=True)
class Failed:
    """Retrying will not help: the request fails now with ``reason``.

    ``code`` is the error taxonomy's (``shared.contracts.errors``): ``failed`` unless the error that
    stopped the step carries its own (``conflict``, ``invalid``: a document that does not decode).
    """

    reason: str
    code: str = "failed"
    error: BaseException | None = field(default=None, compare=False, repr=False)


@dataclass(frozen=True)
class WasCancelled:
    """The request was cancelled; the step stopped at a checkpoint (not the exception ``Cancelled``)."""

    reason: str = "cancelled by request"


Outcome = Succeeded | RetryAfter | Failed | WasCancelled


def reason_of(error: BaseException) -> str:
    """An error's message, or its class name when it has none (a bare ``KeyError()``)."""
    return str(error) or type(error).__name__


def outcome_of(error: Exception) -> Outcome:
    """The outcome an exception raised inside a handler stands for.

    Ferry's own errors say what they are; a message that does not decode is permanent; anything else
    is a bug or an unwrapped library error, logged with its traceback and retried like a temporary
    error (the attempts are bounded, and the last reason is the request's).
    """
    match error:
        case Cancelled():
            return WasCancelled(reason_of(error))
        case TemporaryError():
            return RetryAfter(reason_of(error), delay=error.retry_after, error=error)
        case PermanentError():  # a coded error (Conflict, Invalid, ...) keeps its code
            return Failed(reason_of(error), code=str(getattr(error, "code", "failed")), error=error)
        case msgspec.DecodeError():  # and ValidationError, its subclass
            return Failed(reason_of(error), code="invalid", error=error)
    log.error("unexpected error in a step handler: %s", reason_of(error), exc_info=error)
    return RetryAfter(reason_of(error), error=error)


async def outcome(handling: Awaitable[Outcome | StepResult]) -> Outcome:
    """Await a handler and return its outcome: an exception it raised becomes ``outcome_of`` it, and a
    bare ``StepResult`` (the short form, kopf's plain return value) becomes ``Succeeded``.

    Only ``Exception`` is converted: ``asyncio.CancelledError`` (a drain, a lost lease) goes through,
    since the runner must see the task was cancelled.
    """
    try:
        done = await handling
    except Exception as e:
        return outcome_of(e)
    return Succeeded(done) if isinstance(done, StepResult) else done
