"""A running service answers its health and metrics endpoints and is listed by NATS micro tooling."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import aiohttp
import nats
import pytest
from prometheus_client.parser import text_string_to_metric_families

from sandbox.localstack import NatsServer
from services.demo.echo import EchoService
from services.intake.intake import IntakeService
from shared.bus.client import BusClient
from shared.contracts.events import PhaseChanged
from shared.contracts.requests import MobilityRequest, RequestKind, Source, Target
from shared.contracts.states import Phase
from shared.runtime import load_settings


async def test_health_readiness_metrics_and_micro_discovery(nats_server: NatsServer) -> None:
    settings = load_settings({}, nats={"url": nats_server.url}, http_port=0, http_host="127.0.0.1")
    service = IntakeService(settings)
    async with service, aiohttp.ClientSession() as http:
        assert service.health is not None
        base = f"http://127.0.0.1:{service.health.port}"
        async with http.get(f"{base}/healthz") as response:
            assert response.status == 200
        async with http.get(f"{base}/readyz") as response:
            assert (response.status, await response.json()) == (200, {"ready": True})
        async with http.get(f"{base}/metrics") as response:
            assert "ferry_requests_total" in await response.text()
        nc = await nats.connect(nats_server.url)
        try:
            ping = await nc.request("$SRV.PING.ferry-intake", b"", timeout=2)
            info = await nc.request("$SRV.INFO.ferry-intake", b"", timeout=2)
        finally:
            await nc.close()
        endpoints = {e["subject"] for e in json.loads(info.data)["endpoints"]}
        assert json.loads(ping.data)["name"] == "ferry-intake"
        assert {"ferry.requests", "ferry.requests.get", "ferry.requests.cancel"} <= endpoints
        await service.drain()
        await service.drain()  # idempotent
        assert service.nc is not None and service.nc.is_closed


@pytest.mark.parametrize(
    ("env", "code", "words"),
    [
        pytest.param({"FERRY_HTTP_PORT": "eighty"}, 2, "http_port", id="a bad setting"),
        pytest.param(
            {"FERRY_CONFIG": "/nonexistent/ferry.toml"}, 2, "FERRY_CONFIG", id="a missing settings file"
        ),
    ],
)
def test_a_service_that_cannot_start_says_why_in_one_line(env: dict[str, str], code: int, words: str) -> None:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("FERRY_")}
    done = subprocess.run(
        [sys.executable, "-m", "services.intake"],
        env={**clean, **env},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == code, done.stderr
    assert done.stderr.startswith("ferry intake: ") and words in done.stderr
    assert "Traceback" not in done.stderr


async def test_a_step_counts_the_bytes_it_moved_in_its_metrics(nats_server: NatsServer) -> None:
    settings = load_settings({}, nats={"url": nats_server.url}, http_port=0, http_host="127.0.0.1")
    echo = EchoService(settings)
    async with IntakeService(settings), echo, aiohttp.ClientSession() as http:
        nc = await nats.connect(nats_server.url)
        try:
            client = BusClient(nc, timeout=5)
            request = MobilityRequest(
                kind=RequestKind.REPLICATE, source=Source(cluster="east"), target=Target(cluster="west"),
                itinerary=["echo"],
            )  # fmt: skip
            request_id = await client.submit(request)
            events = [event async for _, event in client.events(request_id)]
        finally:
            await nc.close()
        assert isinstance(events[-1], PhaseChanged) and events[-1].phase is Phase.COMPLETED
        assert echo.health is not None
        async with http.get(f"http://127.0.0.1:{echo.health.port}/metrics") as response:
            text = await response.text()
    moved = {
        sample.labels["step"]: sample.value
        for family in text_string_to_metric_families(text)
        if family.name == "ferry_bytes"
        for sample in family.samples
        if sample.name == "ferry_bytes_total"
    }
    assert moved == {"echo": 10 << 20}
