"""Ferry's errors for the Kubernetes API: one class per ``Status.reason`` a caller acts on.

The client library's ``ApiException`` (or, worse, a ``kind: Status`` document handed back as if it
were an object, which is what kubernetes-asyncio 36.1's DynamicClient does) never leaves
``shared.kube``: every failure becomes one of these, chained ``from`` the original. Each class is
also a ``TemporaryError`` or a ``PermanentError``, so the step runner can decide retry-or-fail
without knowing about Kubernetes (kopf's ``_cogs/clients/errors.py`` is the model):

- temporary: ``Unreachable`` (connection refused, DNS, TLS handshake, timeout), ``ServerError``
  (5xx), ``TooManyRequests`` (429), ``Conflict`` (stale resourceVersion: re-read and try again),
  ``Expired`` (410: a watch or continue token is too old; re-list);
- permanent: ``NotFound``, ``AlreadyExists``, ``Invalid`` (422), ``BadRequest``, ``Forbidden``,
  ``Unauthorized``, ``UnsupportedMediaType`` (415, e.g. strategic merge on a custom resource),
  ``MethodNotAllowed``, ``UnknownResource`` (the cluster does not serve that type),
  ``NoSuchCluster`` (no kubeconfig context of that name).
"""

from __future__ import annotations

from typing import Any

from shared.contracts.errors import FerryError, PermanentError, TemporaryError


class KubeError(FerryError):
    """Base of every error raised by ``shared.kube``. ``status`` is the HTTP code (0: none)."""

    status: int = 0
    retry_after: float | None = None

    def __init__(
        self,
        message: str,
        *,
        status: int = 0,
        reason: str = "",
        details: dict[str, Any] | None = None,
        cluster: str = "",
    ) -> None:
        super().__init__(message)
        self.message = message
        self.status = status or type(self).status
        self.reason = reason
        self.details = details or {}
        self.cluster = cluster


class ApiError(KubeError):
    """The API server answered with an error ``Status``."""


class NotFound(ApiError, PermanentError):
    status = 404


class AlreadyExists(ApiError, PermanentError):
    status = 409


class Conflict(ApiError, TemporaryError):
    """A stale resourceVersion or a failed precondition: read the object again and retry."""

    status = 409


class Invalid(ApiError, PermanentError):
    status = 422


class BadRequest(ApiError, PermanentError):
    status = 400


class Unauthorized(ApiError, PermanentError):
    status = 401


class Forbidden(ApiError, PermanentError):
    status = 403


class MethodNotAllowed(ApiError, PermanentError):
    status = 405


class Expired(ApiError, TemporaryError):
    """410 Gone: a watch resourceVersion or a continue token is older than the server keeps."""

    status = 410


class UnsupportedMediaType(ApiError, PermanentError):
    status = 415


class TooManyRequests(ApiError, TemporaryError):
    status = 429


class ServerError(ApiError, TemporaryError):
    status = 500


class Unreachable(KubeError, TemporaryError):
    """The API server did not answer at all (connection refused, DNS, TLS, timeout)."""


class UnknownResource(KubeError, PermanentError):
    """The cluster serves no such resource type, even after discovery was refreshed."""


class NoSuchCluster(KubeError, PermanentError):
    """No kubeconfig context (cluster) of that name, or its configuration cannot be loaded."""


_BY_STATUS: dict[int, type[ApiError]] = {
    400: BadRequest,
    401: Unauthorized,
    403: Forbidden,
    404: NotFound,
    405: MethodNotAllowed,
    410: Expired,
    415: UnsupportedMediaType,
    422: Invalid,
    429: TooManyRequests,
}


def error_for(status: int, body: Any, *, cluster: str = "", what: str = "") -> ApiError:
    """The error a response with ``status`` and a (possibly ``Status``) ``body`` stands for."""
    doc = body if isinstance(body, dict) else {}
    reason = str(doc.get("reason") or "")
    message = str(doc.get("message") or "") or (body if isinstance(body, str) and body else "")
    message = message or f"HTTP {status}"
    if cluster:
        message = f"{message} (cluster {cluster}{', ' + what if what else ''})"
    details = doc.get("details") if isinstance(doc.get("details"), dict) else None
    if status == 409:
        kind: type[ApiError] = AlreadyExists if reason == "AlreadyExists" else Conflict
    elif status >= 500:
        kind = ServerError
    else:
        kind = _BY_STATUS.get(status, BadRequest if status < 500 else ServerError)
    error = kind(message, status=status, reason=reason, details=details, cluster=cluster)
    error.status = status
    return error


def is_status(doc: Any) -> bool:
    """True for a ``kind: Status`` document (an error or a bare success), never an object."""
    return isinstance(doc, dict) and doc.get("kind") == "Status" and doc.get("apiVersion", "v1") == "v1"
