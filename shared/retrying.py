"""Ferry's one retry policy: data (``RetryPolicy``) plus tenacity's loop, honouring Retry-After.

Every place that retries — Kubernetes API calls, S3 calls, compare-and-set writes, bus requests, the
CLI's HTTP and NATS transports — and every place that only computes a delay (the NAK of a step
message) uses the same rule, so a reader learns it once:

- a server's hint (an error's ``retry_after``: HTTP ``Retry-After``, a lease's remaining seconds) is
  obeyed, capped at ``maximum``: the server knows its load better than a guess does;
- otherwise the wait grows exponentially, ``initial * multiplier ** (attempt - 1)`` capped at
  ``maximum``, and is cut by up to ``jitter`` of itself at random, so replicas that failed together do
  not come back together (the wait never exceeds ``maximum``);
- at most ``attempts`` attempts are made, and none starts once ``budget`` seconds (if set) would be
  passed by waiting for it;
- only errors that ``retry_on`` accepts are retried; any other passes through at once;
- each retry is logged as ``<what> failed (attempt n/N), retrying in 0.40s: <error>``.

The loop itself is tenacity's (``AsyncRetrying`` for async code, ``Retrying`` for the blocking boto3
calls of ``shared.store``), so the edge cases (re-raising the last error, cancellation during the
wait) are a well-kept library's. Use it either way::

    result = await retrying(policy, retry_on=TemporaryError, what="GET /version")(fetch, path)

    async for attempt in retrying(policy, retry_on=is_worth_it, what="submit"):
        with attempt:
            reply = await send()

This module imports only the standard library, tenacity and ``shared.contracts``, so every layer may
use it.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Callable
from dataclasses import dataclass

import tenacity

from shared.contracts.errors import TemporaryError

log = logging.getLogger("ferry.retry")
# Jitter from a generator of its own: drawing from the global one would shift the sequence a program
# (or a property test's engine, which checks) seeded for itself.
_jitter = random.Random()

# What is worth another attempt: exception classes, or a predicate on the error.
RetryOn = type[BaseException] | tuple[type[BaseException], ...] | Callable[[BaseException], bool]


@dataclass(frozen=True)
class RetryPolicy:
    """How often and how patiently a temporary failure is retried (times in seconds).

    The defaults suit one call to a service over the network (6 attempts, waits 0.2 s .. 3.2 s,
    about 6 s in all); a caller that must answer sooner passes fewer attempts or a ``budget``.
    """

    attempts: int = 6
    initial: float = 0.2
    maximum: float = 10.0
    multiplier: float = 2.0
    jitter: float = 0.5  # each computed wait is cut by up to this fraction of itself, at random
    budget: float | None = None  # no attempt starts later than this after the first one


def hint_of(error: BaseException | None) -> float | None:
    """The seconds ``error`` asks to wait (its ``retry_after``), or None when it says nothing."""
    hint = getattr(error, "retry_after", None)
    return float(hint) if isinstance(hint, int | float) and not isinstance(hint, bool) else None


def delay(policy: RetryPolicy, attempt: int, hint: float | None = None) -> float:
    """The wait after failed attempt number ``attempt`` (1 for the first): the hint if given, capped."""
    if hint is not None:
        return min(max(hint, 0.0), policy.maximum)
    base = min(policy.maximum, policy.initial * policy.multiplier ** max(0, attempt - 1))
    return max(0.0, base * (1.0 - policy.jitter * _jitter.random()))


class _Wait(tenacity.wait.wait_base):
    """tenacity's wait strategy for a policy: ``delay`` with the hint of the error just raised."""

    def __init__(self, policy: RetryPolicy) -> None:
        self.policy = policy

    def __call__(self, retry_state: tenacity.RetryCallState) -> float:
        outcome = retry_state.outcome
        error = outcome.exception() if outcome is not None and outcome.failed else None
        return delay(self.policy, retry_state.attempt_number, hint_of(error))


def _stop(policy: RetryPolicy) -> tenacity.stop.stop_base:
    stop: tenacity.stop.stop_base = tenacity.stop_after_attempt(max(1, policy.attempts))
    if policy.budget is not None:
        stop = stop | tenacity.stop_before_delay(policy.budget)
    return stop


def _retry(retry_on: RetryOn) -> tenacity.retry_if_exception:
    if isinstance(retry_on, type | tuple):
        classes = retry_on
        return tenacity.retry_if_exception(lambda e: isinstance(e, classes))
    return tenacity.retry_if_exception(retry_on)


def _logger(
    policy: RetryPolicy, what: str, logger: logging.Logger, level: int
) -> Callable[[tenacity.RetryCallState], None]:
    def before_sleep(state: tenacity.RetryCallState) -> None:
        error = state.outcome.exception() if state.outcome is not None else None
        logger.log(
            level,
            "%s failed (attempt %d/%d), retrying in %.2fs: %s",
            what or "a call",
            state.attempt_number,
            policy.attempts,
            state.upcoming_sleep,
            error,
        )

    return before_sleep


def retrying(
    policy: RetryPolicy,
    *,
    retry_on: RetryOn = TemporaryError,
    what: str = "",
    logger: logging.Logger = log,
    level: int = logging.WARNING,
) -> tenacity.AsyncRetrying:
    """The async retry loop of ``policy``: iterate it (``async for attempt ...: with attempt:``) or
    call it (``await retrying(...)(fn, *args)``). The last error is raised as it is, not wrapped.

    Each retry is logged at ``level`` on ``logger`` (a compare-and-set conflict, routine, at DEBUG)."""
    return tenacity.AsyncRetrying(
        stop=_stop(policy),
        wait=_Wait(policy),
        retry=_retry(retry_on),
        before_sleep=_logger(policy, what, logger, level),
        reraise=True,
    )


def retrying_sync(
    policy: RetryPolicy,
    *,
    retry_on: RetryOn = TemporaryError,
    what: str = "",
    logger: logging.Logger = log,
    level: int = logging.WARNING,
) -> tenacity.Retrying:
    """``retrying`` for blocking code (boto3 calls in worker threads): it sleeps with ``time.sleep``."""
    return tenacity.Retrying(
        stop=_stop(policy),
        wait=_Wait(policy),
        retry=_retry(retry_on),
        before_sleep=_logger(policy, what, logger, level),
        reraise=True,
    )
