"""Fixtures for the gateway tests: a fresh nats-server per test (as tests/bus does), settings that
carry the test tokens, a BusClient, and ``gateway``: the running stack of tests/gateway/stack.py."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import msgspec
import nats
import pytest

from sandbox.localstack import NatsServer
from shared.bus.client import BusClient
from shared.runtime import Settings, load_settings
from tests.gateway.stack import Gateway, ferry_stack, token_entries


@pytest.fixture
def nats_server(tmp_path: Path) -> Iterator[NatsServer]:
    server = NatsServer(tmp_path / "nats").start()
    yield server
    server.stop()


@pytest.fixture
def settings(nats_server: NatsServer) -> Settings:
    return load_settings(
        {},
        nats={"url": nats_server.url},
        http_port=0,
        http_host="127.0.0.1",
        ack_wait=2.0,
        lease=2.0,
        max_attempts=2,
        drain_grace=2.0,
        concurrency=2,
        gateway_tokens=msgspec.json.encode(token_entries()).decode(),
    )


@pytest.fixture
async def client(nats_server: NatsServer) -> AsyncIterator[BusClient]:
    nc = await nats.connect(nats_server.url)
    yield BusClient(nc, timeout=5)
    await nc.close()


@pytest.fixture
async def gateway(settings: Settings, client: BusClient) -> AsyncIterator[Gateway]:
    async with ferry_stack(settings, client) as running_gateway:
        yield running_gateway
