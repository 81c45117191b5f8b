"""Fixtures for the data path: a store on the real SeaweedFS or in a local directory, and repositories.

``store`` is parametrized: every test using it runs once against S3 (a fresh bucket on the session's
SeaweedFS, made through Ferry's own store) and once against a local directory. The repository and
mover tests import these fixtures from here.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from sandbox.localstack import LocalStack
from shared.repository import Repository
from shared.store import LocalStore, ObjectStore, S3Settings, S3Store

PASSWORD = b"correct horse battery staple"
FAST_SCRYPT = 2**10  # tests open repositories often; production uses 2**15


def s3_settings(stack: LocalStack, bucket: str, prefix: str = "repo") -> S3Settings:
    return S3Settings(
        bucket=bucket,
        prefix=prefix,
        endpoint=stack.s3.endpoint,
        region=stack.s3.region,
        access_key=stack.s3.access_key,
        secret_key=stack.s3.secret_key,
    )


@pytest.fixture(scope="session")
def data_bucket(stack: LocalStack) -> str:
    """One bucket for all data-path tests, a unique prefix per test.

    SeaweedFS makes every bucket a collection with its own volumes, and the local server has room for
    only a few dozen volumes: a bucket per test runs it out of writable volumes.
    """
    bucket = f"ferry-datapath-{secrets.token_hex(3)}"
    store = S3Store(s3_settings(stack, bucket))
    store.create_bucket()
    store.close()
    return bucket


@pytest.fixture(params=["s3", "local"])
def store_kind(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def store(
    store_kind: str, stack: LocalStack, data_bucket: str, unique: str, tmp_path: Path
) -> Iterator[ObjectStore]:
    if store_kind == "s3":
        s3 = S3Store(s3_settings(stack, data_bucket, f"repo-{unique}"))
        yield s3
        s3.close()
    else:
        yield LocalStore(tmp_path / "repo")


@pytest.fixture
def repo(store: ObjectStore) -> Repository:
    return Repository.init(store, PASSWORD, scrypt_n=FAST_SCRYPT, pack_size=1024 * 1024)


def repo_url(store: ObjectStore) -> str:
    """The ``--repo`` value for ``ferry-mover`` pointing at ``store``."""
    if isinstance(store, S3Store):
        return f"s3://{store.settings.bucket}/{store.settings.prefix}"
    assert isinstance(store, LocalStore)
    return str(store.root)


class Recording:
    """The real store, noting the key of every GET and the prefix of every LIST it serves."""

    def __init__(self, store: ObjectStore) -> None:
        self.store = store
        self.gets: list[str] = []
        self.lists: list[str] = []

    def __getattr__(self, name: str) -> Any:
        return getattr(self.store, name)

    def get(self, key: str) -> bytes:
        self.gets.append(key)
        return self.store.get(key)

    def list(self, prefix: str) -> Any:
        self.lists.append(prefix)
        return self.store.list(prefix)
