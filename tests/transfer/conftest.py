"""Fixtures for transfer tests: two repositories standing for two regions, and a snapshot to move.

``region_stores`` gives the source and target stores: two buckets on the session's SeaweedFS (two
regions) or two local directories. ``settings`` points a TransferService at a fresh nats-server and
names the two repositories ``east`` and ``west``.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from sandbox.localstack import LocalStack, NatsServer
from shared.repository import Repository, backup, put_blob
from shared.runtime import Settings, load_settings
from shared.store import LocalStore, ObjectStore, S3Store
from tests.repository.trees import random_files
from tests.store.conftest import FAST_SCRYPT, PASSWORD, s3_settings

PACK = 1024 * 1024


@dataclass
class Regions:
    kind: str
    source: ObjectStore
    target: ObjectStore
    source_url: str
    target_url: str


def _url(store: ObjectStore) -> str:
    if isinstance(store, S3Store):
        return f"s3://{store.settings.bucket}/{store.settings.prefix}"
    assert isinstance(store, LocalStore)
    return str(store.root)


@pytest.fixture(scope="session")
def region_buckets(stack: LocalStack) -> tuple[str, str]:
    """Two buckets for all transfer tests (SeaweedFS has room for few buckets); a prefix per test."""
    names = (f"ferry-east-{secrets.token_hex(3)}", f"ferry-west-{secrets.token_hex(3)}")
    for name in names:
        store = S3Store(s3_settings(stack, name))
        store.create_bucket()
        store.close()
    return names


@pytest.fixture(params=["s3", "local"])
def regions(
    request: pytest.FixtureRequest,
    tmp_path: Path,
    unique: str,
    stack: LocalStack,
    region_buckets: tuple[str, str],
) -> Iterator[Regions]:
    if request.param == "s3":
        east, west = (S3Store(s3_settings(stack, b, f"t-{unique}")) for b in region_buckets)
    else:
        east, west = LocalStore(tmp_path / "east"), LocalStore(tmp_path / "west")
    yield Regions(str(request.param), east, west, _url(east), _url(west))
    east.close()
    west.close()


@pytest.fixture
def source_repo(regions: Regions) -> Repository:
    return Repository.init(regions.source, PASSWORD, scrypt_n=FAST_SCRYPT, pack_size=PACK)


def make_snapshot(
    repo: Repository, root: Path, *, files: int = 24, size: int = 400_000, seed: int = 1
) -> str:
    """A Ferry snapshot: one volume record and a manifests blob under one group id; returns the group."""
    group = secrets.token_hex(8)
    random_files(root, files, size, seed=seed)
    backup(repo, root, name="shop/data", group=group)
    put_blob(repo, b'{"kind": "List", "items": []}', name="manifests", group=group)
    return group


@pytest.fixture
def settings(nats_server: NatsServer, regions: Regions, stack: LocalStack) -> Settings:
    return load_settings(
        {},
        nats={"url": nats_server.url},
        http_port=0,
        http_host="127.0.0.1",
        ack_wait=5.0,
        lease=5.0,
        max_attempts=3,
        drain_grace=2.0,
        concurrency=1,
        repositories={"east": regions.source_url, "west": regions.target_url},
        repo_password=PASSWORD.decode(),
        s3={
            "endpoint": stack.s3.endpoint,
            "access_key": stack.s3.access_key,
            "secret_key": stack.s3.secret_key,
        },
    )
