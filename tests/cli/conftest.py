"""Fixtures for the ``ferry`` command tests: a fresh nats-server per test, the running stack of
tests/gateway/stack.py (real intake, stub steps, the gateway), and ``ferry``: the command run
in-process with captured consoles, over the gateway or straight on the bus (``transport``)."""

from __future__ import annotations

import io
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import pytest
from rich.console import Console

from sandbox.localstack import NatsServer
from services.cli.main import run
from tests.gateway.stack import TOKENS, Gateway


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
