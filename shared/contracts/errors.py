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


def json_path(error: Exception) -> str:
    """The JSON path a msgspec validation error names (``$.source.cluster``), or "" when none."""
    text = str(error)
    return text.rsplit(" - at `", 1)[1].rstrip("`") if " - at `" in text else ""
