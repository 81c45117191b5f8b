"""Fixtures for bus tests: a fresh nats-server per test (streams and consumers are global names,
so isolation comes from the server), settings pointing at it, and a connected BusClient."""

from __future__ import annotations

import pytest

from sandbox.localstack import NatsServer
from shared.runtime import Settings, load_settings


@pytest.fixture
def settings(nats_server: NatsServer) -> Settings:
    return load_settings(
        {},
        nats={"url": nats_server.url},
        http_port=0,
        http_host="127.0.0.1",
        ack_wait=2.0,
        lease=2.0,
        max_attempts=3,
        drain_grace=2.0,
        concurrency=1,
    )
