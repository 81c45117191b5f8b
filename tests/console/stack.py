"""The running Ferry the browser tests use: tests/gateway/stack.py's, with steps slow enough to watch.

Each stub step waits ``STEP_DELAY`` before doing what tests/gateway/stubs.py's steps do (volume
progress, a verification report), so a request stays running long enough for a page to follow it
live, and a test can tell a live update from a page that was already final when it loaded. A stub
snapshot catalog answers ``ferry.snapshots.list`` and ``.retain`` with a few snapshots of two
applications, so the snapshots page has something to show.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import aiohttp
import msgspec

from services.gateway.service import GatewayService
from services.intake.drills import DrillsService
from services.intake.intake import IntakeService
from services.intake.policies import PolicyService
from shared.bus.client import BusClient
from shared.contracts import subjects
from shared.contracts.snapshots import RetentionResult, SnapshotList, SnapshotSummary, retention_decoder
from shared.contracts.steps import StepResult
from shared.runtime import Service, Settings, StepContext
from tests.bus.stubs import running
from tests.gateway.stack import STEPS, TOKENS, gateway_config
from tests.gateway.stubs import VolumeStep, volume_step

STEP_DELAY = 0.6  # seconds each stub step waits: a six-step migration runs for about four seconds

CATALOG = [
    SnapshotSummary(
        id=f"snap-{app}-{n}",
        time=f"2026-12-0{n}T10:00:00Z",
        app=app,
        cluster="east",
        namespaces=[app],
        objects=23,
        volumes=2,
        bytes=50_022_202 + n,
        new_bytes=50_064_963 if n == 1 else 1_204_000 * n,
        consistency="csi",
        repository="east",
    )
    for app in ("shop", "blog")
    for n in (3, 2, 1)
]


def slow(step: type[VolumeStep]) -> type[VolumeStep]:
    async def handle(self: VolumeStep, ctx: StepContext) -> StepResult:
        await asyncio.sleep(STEP_DELAY)
        return await step.handle(self, ctx)

    return type(f"Slow{step.__name__}", (step,), {"handle": handle})


@dataclass
class ConsoleStack:
    url: str
    client: BusClient
    session: aiohttp.ClientSession

    async def login(self, who: str) -> aiohttp.ClientSession:
        """A plain HTTP session signed in to the console (no browser), for the server-side checks."""
        session = aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True))
        async with session.post(self.url + "/login", data={"token": TOKENS[who], "next": "/"}) as response:
            assert response.status == 200, await response.text()
        return session


async def _catalog(client: BusClient) -> list[Any]:
    """Answer the snapshot subjects as the snapshot service would, from ``CATALOG``."""

    async def listing(msg: Any) -> None:
        app = msgspec.json.decode(msg.data).get("app", "")
        items = [s for s in CATALOG if not app or s.app == app]
        await msg.respond(msgspec.json.encode(SnapshotList(items=items)))

    async def retain(msg: Any) -> None:
        query = retention_decoder.decode(msg.data)
        assert query.dry_run, "the console must only ever ask for a dry run"
        series = [s for s in CATALOG if not query.app or s.app == query.app]
        keep = series[: query.keep_last or 0]
        gone = [s for s in series if s not in keep]
        result = RetentionResult(
            kept=[s.id for s in keep],
            removed=[s.id for s in gone],
            records_removed=3 * len(gone),
            bytes_freed=sum(s.new_bytes for s in gone),
        )
        await msg.respond(msgspec.json.encode(result))

    return [
        await client.nc.subscribe(subjects.SNAPSHOTS_LIST, cb=listing),
        await client.nc.subscribe(subjects.SNAPSHOTS_RETAIN, cb=retain),
    ]


@contextlib.asynccontextmanager
async def console_stack(
    settings: Settings, client: BusClient, *, kubeconfig: str
) -> AsyncIterator[ConsoleStack]:
    """Intake with the policy and drill services, slow stub steps, the stub catalog and the gateway
    (which serves the console)."""
    gateway = GatewayService(settings, config=gateway_config(kubeconfig))
    services: list[Service] = [IntakeService(settings), PolicyService(settings), DrillsService(settings)]
    services += [slow(volume_step(step))(settings) for step in STEPS]
    subscriptions = await _catalog(client)
    try:
        async with running(*services, gateway), aiohttp.ClientSession() as session:
            yield ConsoleStack(gateway.url, client, session)
    finally:
        for sub in subscriptions:
            await sub.unsubscribe()
