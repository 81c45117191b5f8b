"""Fixtures of the verify tests: settings with one local repository, west, on the test's own
nats-server (``tests/conftest.py::nats_server``)."""

from __future__ import annotations

from pathlib import Path

import pytest

from sandbox.localstack import NatsServer
from shared.runtime import Settings, load_settings
from tests.store.conftest import PASSWORD


@pytest.fixture
def settings(nats_server: NatsServer, tmp_path: Path) -> Settings:
    return load_settings({}, nats={"url": nats_server.url}, http_port=0, http_host="127.0.0.1", ack_wait=10.0,
                         lease=20.0, max_attempts=2, drain_grace=2.0, concurrency=4,
                         repositories={"west": str(tmp_path / "west")}, repo_password=PASSWORD.decode())  # fmt: skip
