"""A running Ferry for tests: the real intake, policy and drill services, stub steps, the gateway.

Shared by the gateway, CLI and console tests, with the fixtures ``settings`` and ``gateway``. ``ferry_stack`` starts everything on the test's nats-server
(the pattern of tests/bus/test_lifecycle.py) and hands back a ``Gateway`` with its URL, a session,
and the clear-text tokens of one token per scope.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass

import aiohttp
import msgspec
import pytest

from sandbox.localstack import NatsServer
from services.gateway.config import GatewayConfig, Scope, TokenEntry, Tokens, hash_token
from services.gateway.service import GatewayService
from services.intake.drills import DrillsService
from services.intake.intake import IntakeService
from services.intake.policies import PolicyService
from shared.bus.client import BusClient
from shared.contracts.steps import StepName
from shared.runtime import Service, Settings, load_settings
from tests.bus.stubs import running
from tests.gateway.stubs import volume_step

TOKENS = {
    "read": "rd-3f9a1c6e5b2d4f70",
    "submit": "sb-8c1d2e3f4a5b6c7d",
    "admin": "ad-0a1b2c3d4e5f6071",
    "cli": "cl-9e8d7c6b5a4f3e2d",  # read + submit, what a person's `ferry` gets
}
STEPS = (
    StepName.PREFLIGHT,
    StepName.DISCOVER,
    StepName.SNAPSHOT,
    StepName.TRANSFER,
    StepName.RESTORE,
    StepName.VERIFY,
    StepName.ROLLBACK,
    StepName.CLEANUP,
    StepName.ECHO,
)


def token_entries() -> list[TokenEntry]:
    scopes = {
        "read": [Scope.READ],
        "submit": [Scope.SUBMIT],
        "admin": [Scope.ADMIN],
        "cli": [Scope.READ, Scope.SUBMIT],
    }
    return [TokenEntry(sha256=hash_token(TOKENS[n]), scopes=s, name=n) for n, s in scopes.items()]


@dataclass
class Gateway:
    url: str
    session: aiohttp.ClientSession
    service: GatewayService
    client: BusClient

    def auth(self, who: str | None) -> dict[str, str]:
        return {"Authorization": f"Bearer {TOKENS[who]}"} if who else {}


def gateway_config(kubeconfig: str = "", max_body: int = 64 * 1024) -> GatewayConfig:
    return GatewayConfig(
        tokens=Tokens(tuple(token_entries())),
        host="127.0.0.1",
        port=0,
        max_body=max_body,
        kubeconfig=kubeconfig,
    )


@contextlib.asynccontextmanager
async def ferry_stack(
    settings: Settings, client: BusClient, *, kubeconfig: str = "", steps: bool = True
) -> AsyncIterator[Gateway]:
    """Intake, the policy and drill services (as ``python -m services.intake`` runs them), stubs for
    every step (when ``steps``), and the gateway."""
    gateway = GatewayService(settings, config=gateway_config(kubeconfig))
    services: list[Service] = [IntakeService(settings), PolicyService(settings), DrillsService(settings)]
    if steps:
        services += [volume_step(step)(settings) for step in STEPS]
    async with running(*services, gateway), aiohttp.ClientSession() as session:
        yield Gateway(gateway.url, session, gateway, client)


# --- the fixtures of the packages that run this stack (gateway, cli, console) import these -----------
@pytest.fixture
def settings(nats_server: NatsServer) -> Settings:
    """Settings on the test's nats-server carrying the test tokens, short leases, two workers."""
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
async def gateway(settings: Settings, client: BusClient) -> AsyncIterator[Gateway]:
    async with ferry_stack(settings, client) as running_gateway:
        yield running_gateway
