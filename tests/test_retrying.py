"""Ferry's one retry policy: Retry-After honoured and capped, exponential waits with jitter, the
attempts and the budget bound the loop, and an error not worth retrying passes through at once."""

from __future__ import annotations

import asyncio
import logging
import time

import pytest

from shared.bus.consuming import Backoff
from shared.contracts.errors import PermanentError, TemporaryError
from shared.retrying import RetryPolicy, delay, hint_of, retrying, retrying_sync

STEADY = RetryPolicy(attempts=6, initial=0.2, maximum=1.0, multiplier=2.0, jitter=0.0)


@pytest.mark.parametrize(
    ("attempt", "hint", "expected"),
    [
        (1, None, 0.2),
        (2, None, 0.4),
        (3, None, 0.8),
        (4, None, 1.0),
        (9, None, 1.0),
        (1, 0.7, 0.7),
        (5, 0.0, 0.0),
        (1, 30.0, 1.0),
        (1, -3.0, 0.0),
    ],
    ids=[
        "the first wait is the initial one",
        "the second wait is doubled",
        "the third wait is doubled again",
        "a wait never grows past the maximum",
        "a late attempt still waits the maximum",
        "a Retry-After hint replaces the exponential wait",
        "a Retry-After of zero retries at once",
        "a Retry-After longer than the maximum is capped",
        "a negative Retry-After waits nothing",
    ],
)
def test_the_delay_of_an_attempt(attempt: int, hint: float | None, expected: float) -> None:
    assert delay(STEADY, attempt, hint) == pytest.approx(expected)


def test_jitter_only_shortens_a_wait_and_spreads_it() -> None:
    policy = RetryPolicy(initial=1.0, maximum=10.0, jitter=0.5)
    waits = [delay(policy, 2) for _ in range(500)]
    assert all(1.0 <= w <= 2.0 for w in waits)
    assert max(waits) - min(waits) > 0.5  # spread out, not one value


def test_the_step_backoff_keeps_its_patience() -> None:
    backoff = Backoff(initial=1.0, maximum=60.0)
    assert 3.6 <= delay(backoff, 3) <= 4.0
    assert delay(backoff, 20) <= 60.0
    assert delay(backoff, 2, 30.0) == 30.0  # a repository lock's hint
    assert delay(backoff, 2, 600.0) == 60.0


def test_the_hint_of_an_error_is_its_retry_after() -> None:
    assert hint_of(TemporaryError("busy", retry_after=2)) == 2.0
    assert hint_of(TemporaryError("busy")) is None
    assert hint_of(ValueError("no hint")) is None
    assert hint_of(None) is None


class Flaky:
    """Fails with the given errors, one per call, then answers "done"."""

    def __init__(self, *errors: BaseException) -> None:
        self.errors = list(errors)
        self.calls = 0

    def __call__(self) -> str:
        self.calls += 1
        if self.errors:
            raise self.errors.pop(0)
        return "done"

    async def run(self) -> str:
        return self()


async def test_a_retry_after_hint_is_waited_and_each_attempt_logged(caplog: pytest.LogCaptureFixture) -> None:
    flaky = Flaky(
        TemporaryError("slow down", retry_after=0.15), TemporaryError("slow down", retry_after=0.15)
    )
    policy = RetryPolicy(attempts=3, initial=0.001)
    started = time.monotonic()
    with caplog.at_level(logging.WARNING, logger="ferry.retry"):
        assert await retrying(policy, what="GET /version")(flaky.run) == "done"
    assert time.monotonic() - started >= 0.3
    assert flaky.calls == 3
    assert "GET /version failed (attempt 1/3)" in caplog.text
    assert "attempt 2/3" in caplog.text and "slow down" in caplog.text


async def test_a_retry_after_beyond_the_maximum_waits_only_the_maximum() -> None:
    flaky = Flaky(TemporaryError("slow down", retry_after=30.0))
    started = time.monotonic()
    assert await retrying(RetryPolicy(attempts=2, maximum=0.05))(flaky.run) == "done"
    assert time.monotonic() - started < 1.0


async def test_when_the_attempts_run_out_the_last_error_is_raised_as_it_is() -> None:
    flaky = Flaky(*(TemporaryError(f"failure {n}") for n in range(1, 10)))
    with pytest.raises(TemporaryError, match="failure 4"):
        await retrying(RetryPolicy(attempts=4, initial=0.001))(flaky.run)
    assert flaky.calls == 4


async def test_the_budget_stops_retrying_before_the_attempts_run_out() -> None:
    flaky = Flaky(*(TemporaryError("down") for _ in range(100)))
    policy = RetryPolicy(attempts=100, initial=0.2, jitter=0.0, multiplier=1.0, budget=0.5)
    started = time.monotonic()
    with pytest.raises(TemporaryError, match="down"):
        await retrying(policy)(flaky.run)
    assert flaky.calls == 3  # at 0, 0.2, 0.4 s; a fourth would start past the budget
    assert time.monotonic() - started < 0.9


@pytest.mark.parametrize(
    "error",
    [PermanentError("no such bucket"), ValueError("a bug"), asyncio.CancelledError()],
    ids=["a permanent error", "an unexpected error", "a cancellation"],
)
async def test_an_error_not_worth_retrying_passes_through_at_once(error: BaseException) -> None:
    flaky = Flaky(error)
    with pytest.raises(type(error)):
        await retrying(RetryPolicy(attempts=5, initial=1.0))(flaky.run)
    assert flaky.calls == 1


async def test_retry_on_may_be_a_predicate_over_the_error() -> None:
    flaky = Flaky(TemporaryError("409 conflict"), TemporaryError("503 busy"))
    with pytest.raises(TemporaryError, match="409"):
        await retrying(STEADY, retry_on=lambda e: "409" not in str(e))(flaky.run)
    assert flaky.calls == 1


async def test_the_loop_can_be_iterated_around_a_block() -> None:
    flaky = Flaky(TemporaryError("lost the connection"))
    result = ""
    async for attempt in retrying(RetryPolicy(initial=0.001)):
        with attempt:
            result = await flaky.run()
    assert (result, flaky.calls) == ("done", 2)


def test_the_blocking_loop_honours_retry_after_and_passes_other_errors(
    caplog: pytest.LogCaptureFixture,
) -> None:
    flaky = Flaky(OSError("reset"), OSError("reset"))
    policy = RetryPolicy(attempts=3, initial=0.001)
    with caplog.at_level(logging.WARNING, logger="ferry.retry"):
        assert retrying_sync(policy, retry_on=OSError, what="put data/00")(flaky) == "done"
    assert flaky.calls == 3 and "put data/00 failed (attempt 2/3)" in caplog.text
    hinted = Flaky(TemporaryError("slow down", retry_after=0.1))
    started = time.monotonic()
    assert retrying_sync(policy)(hinted) == "done"
    assert time.monotonic() - started >= 0.1
    refused = Flaky(PermanentError("access denied"))
    with pytest.raises(PermanentError):
        retrying_sync(policy, retry_on=OSError)(refused)
    assert refused.calls == 1
