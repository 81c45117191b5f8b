"""The S3 (and S3-compatible) object store, through boto3: the only module of Ferry that imports it.

Built for throughput against gateways such as SeaweedFS, MinIO or AWS itself:
- ``request_checksum_calculation="when_required"``: boto3's default CRC on every PUT costs 1.2-1.4x
  CPU for nothing (packs carry their own BLAKE3 id and AEAD tags);
- one client shared by all threads (boto3 clients are thread-safe) with a connection pool larger than
  the upload pool, so that concurrent PUTs never queue on a connection;
- boto3 is imported when the first ``S3Store`` is made, not with this module (it costs ~0.1 s of
  start-up that a mover on a local directory should not pay), and botocore's data files (S3's model,
  endpoint rules, the endpoints table) are parsed with msgspec: its own JSON loader (``json`` with an
  ``OrderedDict`` hook) takes ~0.1 s of every mover's start for them, msgspec ~0.04 s;
- botocore's own retries are switched off and replaced by Ferry's one policy (``shared.retrying``,
  through ``base.retried``) so that every failure is classified into Ferry's errors (temporary /
  permanent), a ``Retry-After`` is honoured and each attempt is logged;
- TLS: a CA bundle is checked when the store is made (a missing or empty file is a permanent error
  naming it, not a "network" failure retried at the first request), and ``verify_tls=False``
  (``--s3-insecure``) turns verification off even when a CA bundle is also given.
"""

from __future__ import annotations

import io
import os
import ssl
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, TypeVar

from shared.retrying import RetryPolicy
from shared.store.base import ObjectInfo, retried
from shared.store.errors import (
    AccessDenied,
    ObjectNotFound,
    PermanentStoreError,
    StoreError,
    TemporaryStoreError,
)

T = TypeVar("T")

_NOT_FOUND = {"NoSuchKey", "404", "NotFound", "NoSuchBucket"}
_DENIED = {"AccessDenied", "403", "InvalidAccessKeyId", "SignatureDoesNotMatch", "Forbidden"}
_TEMPORARY = {
    "SlowDown",
    "RequestTimeout",
    "Throttling",
    "ThrottlingException",
    "RequestTimeTooSkewed",
    "InternalError",
    "ServiceUnavailable",
    "503",
    "500",
    "502",
    "504",
    "429",
}


@dataclass(frozen=True)
class S3Settings:
    """Where the repository lives on S3 and how to reach it (from flags, env vars or a Secret)."""

    bucket: str
    prefix: str = ""
    endpoint: str | None = None
    region: str = "us-east-1"
    access_key: str | None = None
    secret_key: str | None = None
    session_token: str | None = None
    path_style: bool = True
    verify_tls: bool = True
    ca_bundle: str | None = None
    connections: int = 16
    retry: RetryPolicy = field(default_factory=RetryPolicy)


def _checked_ca_bundle(path: str) -> str:
    """``path`` if it holds CA certificates; otherwise a permanent error naming it.

    urllib3 reads the bundle only once connected, and its error names neither the file nor the
    setting, and reads as a network failure (retried, then "temporary"): check it up front.
    """
    try:
        ssl.create_default_context(cafile=path)
    except ssl.SSLError as e:
        raise PermanentStoreError(f"the S3 CA bundle {path} holds no usable CA certificate: {e}") from e
    except OSError as e:
        raise PermanentStoreError(f"cannot read the S3 CA bundle {path}: {e.strerror or e}") from e
    return path


class _RetryAfter(TemporaryStoreError):
    def __init__(self, message: str, retry_after: float | None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


def classify(error: Exception, what: str) -> StoreError:
    """Map a botocore exception onto Ferry's error types (the caller chains it with ``from``)."""
    import botocore.exceptions

    if isinstance(error, botocore.exceptions.ClientError):
        info = error.response.get("Error", {})
        code = str(info.get("Code", ""))
        status = str(error.response.get("ResponseMetadata", {}).get("HTTPStatusCode", ""))
        message = f"{what}: {code or status} {info.get('Message', '')}".strip()
        if code in _NOT_FOUND or status == "404":
            return ObjectNotFound(what, code)
        if code in _DENIED or status == "403":
            return AccessDenied(message)
        if code in _TEMPORARY or status in _TEMPORARY:
            headers = error.response.get("ResponseMetadata", {}).get("HTTPHeaders", {})
            retry_after = headers.get("retry-after")
            return _RetryAfter(message, float(retry_after) if retry_after and retry_after.isdigit() else None)
        return PermanentStoreError(message)
    if isinstance(
        error, botocore.exceptions.NoCredentialsError | botocore.exceptions.PartialCredentialsError
    ):
        return AccessDenied(f"{what}: {error}")
    if isinstance(error, botocore.exceptions.ParamValidationError):
        return PermanentStoreError(f"{what}: {error}")
    # Connection refused/reset, timeouts, truncated bodies: the network, worth another try.
    return TemporaryStoreError(f"{what}: {error}")


class _ViewReader(io.RawIOBase):
    """A seekable read-only file over a buffer, for boto3 bodies (it reads, seeks back, re-reads)."""

    def __init__(self, data: bytearray | memoryview) -> None:
        self._view = memoryview(data).cast("B")
        self._position = 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        n = max(0, min(len(buffer), len(self._view) - self._position))
        buffer[:n] = self._view[self._position : self._position + n]
        self._position += n
        return n

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._position, io.SEEK_END: len(self._view)}[whence]
        self._position = base + offset
        return self._position

    def tell(self) -> int:
        return self._position

    def __len__(self) -> int:
        return len(self._view)


def _data_loader(data_path: str | None) -> Any:
    """botocore's data ``Loader`` made for a process that only builds S3 clients, and that starts fast.

    - Files are parsed with msgspec: the same dicts in the same key order, ~0.05 s sooner per client.
    - A service is known by a look at its own directory. botocore checks that a service is known
      before it loads each of its models by listing the directories of all 445 services it ships,
      ~25 ms a model; S3 needs two models per client (the credential chain may need STS or SSO).
    ``data_path`` is ``AWS_DATA_PATH`` (extra model directories), as botocore's ``create_loader`` takes it.
    """
    import gzip

    import botocore.loaders
    import msgspec

    class FileLoader(botocore.loaders.JSONFileLoader):  # type: ignore[misc]
        def load_file(self, file_path: str) -> Any:
            for extension, opener in ((".json", open), (".json.gz", gzip.open)):
                try:
                    with opener(file_path + extension, "rb") as f:
                        return msgspec.json.decode(f.read())
                except FileNotFoundError:
                    continue
            return None

    class Known:
        """botocore's known services, asked one name at a time: ``in`` looks at that service's own
        directory; iterating (an error message) lists them all, as botocore does."""

        def __init__(self, loader: Any, type_name: str) -> None:
            self.loader, self.type_name = loader, type_name

        def __contains__(self, service: object) -> bool:
            for root in self.loader.search_paths:
                directory = os.path.join(root, str(service))
                if os.path.isdir(directory) and any(
                    self.loader.file_loader.exists(os.path.join(directory, version, self.type_name))
                    for version in os.listdir(directory)
                ):
                    return True
            return False

        def __iter__(self) -> Any:
            return iter(botocore.loaders.Loader.list_available_services(self.loader, self.type_name))

    class Loader(botocore.loaders.Loader):  # type: ignore[misc]
        def list_available_services(self, type_name: str) -> Any:
            return Known(self, type_name)

    extra = (
        [os.path.expanduser(os.path.expandvars(path)) for path in data_path.split(os.pathsep)]
        if data_path
        else None
    )
    return Loader(extra_search_paths=extra, file_loader=FileLoader())


class S3Store:
    """An ``ObjectStore`` on one bucket (and optional key prefix) of an S3 API."""

    def __init__(self, settings: S3Settings) -> None:
        self.settings = settings
        self._prefix = settings.prefix.strip("/") + "/" if settings.prefix.strip("/") else ""
        # Imported here: a mover working on a local directory does not pay for it. The client comes
        # from botocore's session (what boto3.client() wraps) to skip boto3's resource layer at start.
        import botocore.config
        import botocore.session

        config = botocore.config.Config(
            region_name=settings.region,
            s3={"addressing_style": "path" if settings.path_style else "virtual"},
            retries={"total_max_attempts": 1, "mode": "standard"},
            max_pool_connections=settings.connections,
            connect_timeout=10,
            read_timeout=60,
            request_checksum_calculation="when_required",
            response_checksum_validation="when_required",
            tcp_keepalive=True,
        )
        session = botocore.session.get_session()
        session.register_component("data_loader", _data_loader(session.get_config_variable("data_path")))
        verify: bool | str = False
        if settings.verify_tls:  # insecure wins over a CA bundle, as curl's -k over --cacert
            verify = _checked_ca_bundle(settings.ca_bundle) if settings.ca_bundle else True
        self.client: Any = session.create_client(
            "s3",
            endpoint_url=settings.endpoint or None,
            aws_access_key_id=settings.access_key,
            aws_secret_access_key=settings.secret_key,
            aws_session_token=settings.session_token,
            config=config,
            verify=verify,
        )

    @property
    def location(self) -> str:
        return f"s3://{self.settings.bucket}/{self._prefix}".rstrip("/")

    def _call(self, what: str, call: Callable[[], T]) -> T:
        import botocore.exceptions

        def once() -> T:
            try:
                return call()
            except (botocore.exceptions.BotoCoreError, botocore.exceptions.ClientError) as e:
                raise classify(e, what) from e

        return retried(self.settings.retry, what, once)

    def _key(self, key: str) -> str:
        return self._prefix + key

    def create_bucket(self) -> None:
        """Create the bucket if it does not exist yet (used by ``init`` and by tests)."""
        bucket = self.settings.bucket
        try:
            self._call(f"head bucket {bucket}", lambda: self.client.head_bucket(Bucket=bucket))
        except ObjectNotFound:
            self._call(f"create bucket {bucket}", lambda: self.client.create_bucket(Bucket=bucket))

    def put(self, key: str, data: bytes | bytearray | memoryview) -> None:
        # A pack arrives as a view of a reused buffer: stream it instead of copying 16 MiB per PUT.
        def body() -> bytes | _ViewReader:
            return data if isinstance(data, bytes) else _ViewReader(data)

        self._call(
            f"put {key}",
            lambda: self.client.put_object(Bucket=self.settings.bucket, Key=self._key(key), Body=body()),
        )

    def get(self, key: str) -> bytes:
        def read() -> bytes:
            response = self.client.get_object(Bucket=self.settings.bucket, Key=self._key(key))
            return bytes(response["Body"].read())

        return self._call(f"get {key}", read)

    def get_range(self, key: str, offset: int, length: int) -> bytes:
        # A suffix range ("the last N bytes") when offset < 0, from which the first ``length`` are kept.
        spec = f"bytes=-{-offset}" if offset < 0 else f"bytes={offset}-{offset + length - 1}"

        def read() -> bytes:
            response = self.client.get_object(Bucket=self.settings.bucket, Key=self._key(key), Range=spec)
            return bytes(response["Body"].read(length))

        data = self._call(f"get {key} [{spec}]", read)
        if len(data) != length:
            raise PermanentStoreError(f"get {key} [{spec}]: got {len(data)} bytes, expected {length}")
        return data

    def delete(self, key: str) -> None:
        self._call(
            f"delete {key}",
            lambda: self.client.delete_object(Bucket=self.settings.bucket, Key=self._key(key)),
        )

    def exists(self, key: str) -> bool:
        try:
            self._call(
                f"head {key}",
                lambda: self.client.head_object(Bucket=self.settings.bucket, Key=self._key(key)),
            )
        except ObjectNotFound:
            return False
        return True

    def list(self, prefix: str) -> Iterator[ObjectInfo]:
        token: str | None = None
        while True:
            kwargs: dict[str, Any] = {"Bucket": self.settings.bucket, "Prefix": self._key(prefix)}
            if token:
                kwargs["ContinuationToken"] = token
            page = self._call(f"list {prefix}", lambda kw=kwargs: self.client.list_objects_v2(**kw))  # type: ignore[misc]
            for item in page.get("Contents", []):
                yield ObjectInfo(item["Key"][len(self._prefix) :], int(item["Size"]))
            if not page.get("IsTruncated"):
                return
            token = page.get("NextContinuationToken")

    def close(self) -> None:
        self.client.close()
