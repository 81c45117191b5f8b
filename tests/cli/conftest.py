"""Fixtures for the ``ferry`` command tests: a fresh nats-server per test, the running stack of
tests/gateway/stack.py (real intake, stub steps, the gateway), and ``ferry``: the command run
in-process with captured consoles, over the gateway or straight on the bus (``transport``)."""

from __future__ import annotations

import io
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import msgspec
import nats
import pytest
from rich.console import Console

from sandbox.localstack import NatsServer
from services.cli.main import run
from shared.bus.client import BusClient
from shared.runtime import Settings, load_settings
from tests.gateway.stack import TOKENS, Gateway, ferry_stack, token_entries


@dataclass
class Result:
    code: int
    out: str
    err: str


Ferry = Callable[..., Awaitable[Result]]


def consoles(terminal: bool = False) -> tuple[Console, io.StringIO, Console, io.StringIO]:
    out_buf, err_buf = io.StringIO(), io.StringIO()
    options = {
        "width": 140,
        "highlight": False,
        "force_terminal": terminal,
        "color_system": None if not terminal else "standard",
    }
    return Console(file=out_buf, **options), out_buf, Console(file=err_buf, **options), err_buf  # type: ignore[arg-type]


async def invoke(*argv: str, terminal: bool = False) -> Result:
    out, out_buf, err, err_buf = consoles(terminal)
    code = await run(list(argv), out=out, err=err)
    return Result(code, out_buf.getvalue(), err_buf.getvalue())


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


@pytest.fixture(params=["gateway", "bus"])
def transport(
    request: pytest.FixtureRequest, gateway: Gateway, nats_server: NatsServer, monkeypatch: pytest.MonkeyPatch
) -> list[str]:
    """The flags that pick a transport; the gateway's token comes from FERRY_TOKEN."""
    monkeypatch.setenv("FERRY_TOKEN", TOKENS["cli"])
    return ["--url", gateway.url] if request.param == "gateway" else ["--bus", nats_server.url]


@pytest.fixture
def ferry(transport: list[str]) -> Ferry:
    """``await ferry("status", ID)``: the command with the transport flags appended."""

    async def call(*argv: str, terminal: bool = False) -> Result:
        return await invoke(*argv, *transport, terminal=terminal)

    return call
