"""Bounded polls for tests: wait for an outcome, never sleep for a fixed time."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable


async def eventually(
    check: Callable[[], bool | Awaitable[bool]], *, within: float = 30.0, what: str = ""
) -> None:
    """Poll ``check`` (sync or async) until it is true; fail with ``what`` after ``within`` seconds."""
    deadline = time.monotonic() + within
    delay = 0.02
    for _ in range(100_000):
        result = check()
        if not isinstance(result, bool):
            result = await result
        if result:
            return
        if time.monotonic() > deadline:
            break
        await asyncio.sleep(delay)
        delay = min(delay * 1.5, 0.25)
    raise AssertionError(f"not true within {within}s: {what or check}")
