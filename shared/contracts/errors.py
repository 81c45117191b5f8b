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
    """The JSON path a msgspec validation error names (``$.source.cluster``), or "" when none.

    For an error on a dict's key (msgspec: ``at `key` in `$.labels```) the path of the dict; which key
    it was, msgspec does not say (``shared.contracts.requests`` finds it for a request)."""
    text = str(error)
    if " - at `" not in text:
        return ""
    where = text.rsplit(" - at `", 1)[1].rstrip("`")
    return where.split("` in `", 1)[1] if "` in `" in where else where  # "`key` in `$.labels`"


class Conflict(PermanentError):
    """The call contradicts what is stored: an idempotency key reused with a different body."""


# One taxonomy for bus rejections (``Rejected.code``) and gateway errors (``ErrorBody.code``): the
# code says what kind of problem it is, and this table the HTTP status the gateway answers with.
STATUS_OF_CODE = {
    "invalid": 400,  # the input is wrong; `field` names where
    "unauthorized": 401,
    "forbidden": 403,
    "not-found": 404,
    "conflict": 409,  # it contradicts what exists (an idempotency key used for another body)
    "too-large": 413,
    "unreadable": 500,  # a stored document that no longer decodes (reported, never fatal to a list)
    "failed": 502,
    "unavailable": 503,  # the bus or a service does not answer: retry
}


def http_status(code: str) -> int:
    """The HTTP status of an error code (400 for a code this table does not know)."""
    return STATUS_OF_CODE.get(code, 400)


VALUE_LIMIT = 100  # an error message never echoes more of a value than this many characters


def shown(value: str, limit: int = VALUE_LIMIT) -> str:
    """A value quoted for an error message, cut to ``limit`` characters (and saying how long it was)."""
    if len(value) <= limit:
        return repr(value)
    return f"{value[:limit]!r}… ({len(value)} characters)"


def clipped(message: str, limit: int = VALUE_LIMIT) -> str:
    """A library's error message with each quoted value cut to ``limit`` characters.

    msgspec quotes the offending value (``Invalid enum value '…'``, ``unknown field `…```); a
    value may be 10,000 characters long, and a reply must stay short. For each quote character the
    span from its first to its last occurrence is one value (a value may itself hold quotes).
    """
    for quote in ("'", "`", '"'):
        first, last = message.find(quote), message.rfind(quote)
        if first != -1 and last - first - 1 > limit:
            inner = message[first + 1 : last]
            message = f"{message[: first + 1]}{inner[:limit]}…{quote} ({len(inner)} characters){message[last + 1 :]}"
    return message
