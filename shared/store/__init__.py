"""Object stores for Ferry repositories: S3 (boto3) or a local directory, behind one interface.

``open_store("s3://bucket/prefix", ...)`` or ``open_store("/path")`` is the one entry point; the
settings for S3 (endpoint, region, credentials, path style, TLS) come from the caller, which reads
them from flags, env vars or a mounted Secret. Only this package imports boto3 (import-linter).

The two backends are imported on first use (PEP 562): ``ferry-mover`` starts scrypt as soon as it
has parsed its flags, and reaching that point should not cost the S3 module and ``ssl``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from shared.lazy import lazy_names
from shared.retrying import RetryPolicy
from shared.store import layout
from shared.store.base import ObjectInfo, ObjectStore, retried
from shared.store.errors import (
    AccessDenied,
    ObjectNotFound,
    PermanentStoreError,
    StoreError,
    TemporaryStoreError,
)

if TYPE_CHECKING:
    from shared.store.local import LocalStore
    from shared.store.s3 import S3Settings, S3Store

__getattr__ = lazy_names(__name__, {"local": ["LocalStore"], "s3": ["S3Settings", "S3Store"]})


__all__ = [
    "AccessDenied",
    "LocalStore",
    "ObjectInfo",
    "ObjectNotFound",
    "ObjectStore",
    "PermanentStoreError",
    "RetryPolicy",
    "S3Settings",
    "S3Store",
    "StoreError",
    "TemporaryStoreError",
    "layout",
    "open_store",
    "retried",
]


def open_store(url: str, s3: S3Settings | None = None) -> LocalStore | S3Store:
    """Open ``s3://bucket[/prefix]`` (with ``s3`` giving endpoint and credentials) or a local path.

    For an S3 URL, ``s3.bucket`` and ``s3.prefix`` are replaced by the ones in the URL.
    """
    if url.startswith("s3://"):
        from shared.store.s3 import S3Settings, S3Store

        bucket, _, prefix = url[len("s3://") :].partition("/")
        if not bucket:
            raise PermanentStoreError(f"no bucket in repository URL {url!r}")
        base = s3 or S3Settings(bucket=bucket)
        settings = S3Settings(**{**base.__dict__, "bucket": bucket, "prefix": prefix})
        return S3Store(settings)
    if "://" in url:
        raise PermanentStoreError(f"unsupported repository URL {url!r}: use s3://bucket/prefix or a path")
    from shared.store.local import LocalStore

    return LocalStore(url.removeprefix("file://") if url.startswith("file://") else url)
