"""Ferry's own small error hierarchy: every failure is temporary (retry) or permanent (give up).

Each library's errors are wrapped at its boundary (nats, botocore, the Kubernetes client) into one
of these, chained with ``from e``, so the step runner decides retry-or-fail in one place
(kopf's ``_cogs/clients/errors.py`` and Temporal's RetryPolicy are the models).
"""

from __future__ import annotations


class FerryError(Exception):
    """Base of every error Ferry raises on purpose."""


class TemporaryError(FerryError):
    """Worth retrying: a timeout, a 5xx, a lost connection. ``retry_after`` is a hint in seconds."""

    def __init__(self, message: str, *, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class PermanentError(FerryError):
    """Retrying will not help: bad input, missing object, refused permission. Says what to fix."""


class Cancelled(FerryError):
    """The request was cancelled; the step stops at its checkpoint."""
