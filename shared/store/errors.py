"""Ferry's own object-store errors: every boto3/botocore or OS failure is wrapped into one of these.

Callers (the repository, the mover, the services) never see a botocore exception: they see whether a
failure is *temporary* (worth retrying later: network, throttling, 5xx) or *permanent* (missing bucket,
denied access, bad settings), which is what a Job controller or a NATS consumer needs to decide between
a retry and a failed request. The original error is always chained (``raise ... from e``).
"""

from __future__ import annotations


class StoreError(Exception):
    """An object-store operation failed."""

    temporary: bool = False


class TemporaryStoreError(StoreError):
    """The store could not be reached or asked us to slow down; retrying later may succeed."""

    temporary = True


class PermanentStoreError(StoreError):
    """The store refused the request for a reason a retry does not fix (settings, permissions)."""


class ObjectNotFound(PermanentStoreError):
    """The object (or the bucket) does not exist."""

    def __init__(self, key: str, detail: str = "") -> None:
        super().__init__(f"object not found: {key}" + (f" ({detail})" if detail else ""))
        self.key = key


class AccessDenied(PermanentStoreError):
    """The credentials are wrong or lack a permission."""
