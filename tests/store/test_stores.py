"""The object stores: the same behaviour from S3 (real SeaweedFS) and from a local directory."""

from __future__ import annotations

import logging
import mmap
import os
from pathlib import Path
from typing import Any

import botocore.awsrequest
import pytest

from sandbox.localstack import LocalStack
from shared.store import (
    AccessDenied,
    LocalStore,
    ObjectNotFound,
    ObjectStore,
    RetryPolicy,
    S3Settings,
    S3Store,
    TemporaryStoreError,
    layout,
    open_store,
)
from tests.store.conftest import s3_settings


def test_objects_round_trip_whole_and_by_range(store: ObjectStore) -> None:
    data = bytes(range(256)) * 4096
    store.put(layout.pack("ab" + "0" * 62), data)
    store.put(layout.index("i1"), b"index")
    assert store.get(layout.pack("ab" + "0" * 62)) == data
    assert store.get_range(layout.pack("ab" + "0" * 62), 1000, 10) == data[1000:1010]
    assert store.get_range(layout.pack("ab" + "0" * 62), -4, 4) == data[-4:]
    assert store.get_range(layout.pack("ab" + "0" * 62), -100, 10) == data[-100:-90]
    assert {info.key: info.size for info in store.list(layout.DATA)} == {
        layout.pack("ab" + "0" * 62): len(data)
    }
    assert store.exists(layout.index("i1"))
    store.delete(layout.index("i1"))
    store.delete(layout.index("i1"))  # deleting twice is fine
    assert not store.exists(layout.index("i1"))
    assert list(store.list(layout.INDEX)) == []


def test_a_missing_object_is_reported_by_key(store: ObjectStore) -> None:
    with pytest.raises(ObjectNotFound, match="snapshots/nope"):
        store.get(layout.snapshot("nope"))


def test_local_writes_are_atomic_and_leave_no_temporary_files(tmp_path: Path) -> None:
    store = LocalStore(tmp_path / "repo")
    store.put("data/aa/aa11", b"x" * 100)
    store.put("data/aa/aa11", b"y" * 10)  # overwrite
    assert store.get("data/aa/aa11") == b"y" * 10
    assert [p.name for p in (tmp_path / "repo" / "data" / "aa").iterdir()] == ["aa11"]


def test_open_store_reads_repository_urls(tmp_path: Path) -> None:
    s3 = open_store("s3://bucket/some/prefix", S3Settings(bucket="", endpoint="http://127.0.0.1:1"))
    assert isinstance(s3, S3Store) and s3.location == "s3://bucket/some/prefix"
    local = open_store(str(tmp_path))
    assert isinstance(local, LocalStore) and local.location == str(tmp_path)


def test_wrong_s3_credentials_are_a_permanent_access_error(stack: LocalStack, data_bucket: str) -> None:
    bad = S3Store(S3Settings(**{**s3_settings(stack, data_bucket).__dict__, "secret_key": "wrong"}))
    with pytest.raises(AccessDenied):
        bad.put("config", b"x")


def test_an_unreachable_endpoint_is_temporary_after_retries(caplog: pytest.LogCaptureFixture) -> None:
    settings = S3Settings(bucket="b", endpoint="http://127.0.0.1:9", access_key="a", secret_key="b",
                          retry=RetryPolicy(attempts=3, initial=0.01))  # fmt: skip
    with caplog.at_level(logging.WARNING, logger="ferry.store"), pytest.raises(TemporaryStoreError):
        S3Store(settings).get("config")
    assert "attempt 2/3" in caplog.text


class _Body:
    def __init__(self, data: bytes) -> None:
        self.data = data

    def stream(self, **_: Any) -> Any:
        yield self.data


def test_an_injected_s3_error_is_retried_and_the_write_lands(
    stack: LocalStack, data_bucket: str, unique: str, caplog: pytest.LogCaptureFixture
) -> None:
    """SeaweedFS answers for real; the first two PUTs are answered 503 SlowDown before they leave."""
    settings = s3_settings(stack, data_bucket, f"retry-{unique}")
    store = S3Store(S3Settings(**{**settings.__dict__, "retry": RetryPolicy(initial=0.01)}))
    failures = {"left": 2}

    def fail_twice(request: Any, **_: Any) -> Any:
        if failures["left"] == 0:
            return None
        failures["left"] -= 1
        body = b"<Error><Code>SlowDown</Code><Message>Please reduce your request rate.</Message></Error>"
        return botocore.awsrequest.AWSResponse(request.url, 503, {}, _Body(body))

    store.client.meta.events.register("before-send.s3.PutObject", fail_twice)
    with caplog.at_level(logging.WARNING, logger="ferry.store"):
        store.put("data/00/0011", b"payload")
    assert failures["left"] == 0
    assert "attempt 2/6" in caplog.text and "SlowDown" in caplog.text
    assert store.get("data/00/0011") == b"payload"


@pytest.mark.parametrize(
    "size", [1024 * 1024, 3 * 1024 * 1024 + 100], ids=["whole blocks", "a partial last block"]
)
def test_local_direct_writes_of_aligned_buffers_read_back_exactly(tmp_path: Path, size: int) -> None:
    """Pack buffers are page-aligned and written with O_DIRECT: the tail block must be cut exactly."""
    buffer = mmap.mmap(-1, size + 8192)
    payload = os.urandom(size)
    buffer[:size] = payload
    store = LocalStore(tmp_path / "repo")
    store.put("data/aa/aa22", memoryview(buffer)[:size])
    assert store.get("data/aa/aa22") == payload
    assert [info.size for info in store.list("data/")] == [size]
