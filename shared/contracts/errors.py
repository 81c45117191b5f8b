"""Ferry's own small error hierarchy: every failure is temporary (retry) or permanent (give up).

Each library's errors are wrapped at its boundary (nats, botocore, the Kubernetes client) into one
of these, chained with ``from e``, so the step runner decides retry-or-fail in one place
(kopf's ``_cogs/clients/errors.py`` and Temporal's RetryPolicy are the models).

A failure a caller is told about is a ``CodedError``: one class per ``code``, each with the HTTP
``status`` the gateway answers with, so code -> class -> status is one table (``CODES``) used by the
gateway, the CLI and the bus replies (``Rejected.code``). ``error_for(code, ...)`` and
``from_status(status, ...)`` build the right class from a reply (nats.py's ``nats/js/errors.py``
with its ``APIError.from_error`` is the model). The codes on the wire never change.
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


# --- the taxonomy of errors a caller is told about ---------------------------------------------------
class CodedError(FerryError):
    """A failure reported to a caller: what is wrong (the message), where (``field``: a JSON path or
    a parameter), what kind of problem (``code``, as it travels) and the HTTP ``status`` for it.

    ``code`` and ``status`` are the class's; an instance may carry another status (a gateway answer
    read back by the CLI) or a code this table does not know (kept as it came, answered with 400).
    """

    code: str = "invalid"
    status: int = 400

    def __init__(self, message: str, *, field: str = "", status: int = 0) -> None:
        super().__init__(message)
        self.field = field
        self.status = status or type(self).status


class Invalid(CodedError, PermanentError):
    """The input is wrong; ``field`` names where."""

    code, status = "invalid", 400


class Unauthorized(CodedError, PermanentError):
    """No token, or one nobody issued."""

    code, status = "unauthorized", 401


class Forbidden(CodedError, PermanentError):
    """A valid token without the scope the call needs."""

    code, status = "forbidden", 403


class NotFound(CodedError, PermanentError):
    """No request, snapshot or document of that id."""

    code, status = "not-found", 404


class MethodNotAllowed(CodedError, PermanentError):
    """A path that exists, asked with a method it does not serve."""

    code, status = "method-not-allowed", 405


class Conflict(CodedError, PermanentError):
    """The call contradicts what is stored: an idempotency key reused with a different body."""

    code, status = "conflict", 409


class TooLarge(CodedError, PermanentError):
    """A body above the limit."""

    code, status = "too-large", 413


class Unreadable(CodedError, PermanentError):
    """A stored document that no longer decodes (reported, never fatal to a list)."""

    code, status = "unreadable", 500


class Internal(CodedError, PermanentError):
    """A bug: the details are in the log, never in the answer."""

    code, status = "internal", 500


class ServiceFailed(CodedError, PermanentError):
    """A service behind the gateway failed, or answered with something it should not."""

    code, status = "failed", 502


class Unavailable(CodedError, TemporaryError):
    """The bus or a service does not answer: retry (``retry_after`` is a hint in seconds)."""

    code, status = "unavailable", 503

    def __init__(
        self, message: str, *, field: str = "", status: int = 0, retry_after: float | None = None
    ) -> None:
        super().__init__(message, field=field, status=status)
        self.retry_after = retry_after


# One table: the code says what kind of problem it is, its class the HTTP status. The first class of
# a status is the one ``from_status`` picks (500 is Internal: an unreadable document says so by code).
CODED: tuple[type[CodedError], ...] = (
    Invalid,
    Unauthorized,
    Forbidden,
    NotFound,
    MethodNotAllowed,
    Conflict,
    TooLarge,
    Internal,
    Unreadable,
    ServiceFailed,
    Unavailable,
)
CODES: dict[str, type[CodedError]] = {kind.code: kind for kind in CODED}
_OF_STATUS: dict[int, type[CodedError]] = {kind.status: kind for kind in reversed(CODED)}


def error_for(code: str, message: str, *, field: str = "", status: int = 0) -> CodedError:
    """The error a code stands for (a bus ``Rejected``, a gateway ``ErrorBody``).

    A code this table does not know is kept as it came (a newer service's), as an ``Invalid``: 400.
    """
    kind = CODES.get(code)
    if kind is not None:
        return kind(message, field=field, status=status)
    error = Invalid(message, field=field, status=status)
    error.code = code
    return error


def from_status(status: int, message: str, *, field: str = "") -> CodedError:
    """The error an HTTP status stands for, when there is no code to go by (aiohttp's own 404/405, a
    proxy's page); a status this table does not know is an ``Invalid`` with that status."""
    return _OF_STATUS.get(status, Invalid)(message, field=field, status=status)


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
