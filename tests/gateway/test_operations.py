"""What operators see and rely on: Prometheus series per route, keep-alives on quiet streams, a cap
on open event streams."""

from __future__ import annotations

import asyncio
import dataclasses

import aiohttp
import msgspec
import pytest

from services.gateway import requests as gateway_requests
from services.gateway.service import GatewayService
from services.intake.intake import IntakeService
from shared.bus.client import BusClient
from shared.contracts.requests import MobilityRequest, RequestKind, Source, Target
from shared.runtime import Settings
from tests.gateway.stack import TOKENS, Gateway, gateway_config, running


def blocked_request() -> bytes:
    return msgspec.json.encode(
        MobilityRequest(
            kind=RequestKind.MIGRATE,
            source=Source(cluster="east", namespaces=["shop"]),
            target=Target(cluster="west"),
            itinerary=["echo"],
            labels={"behaviour": "block"},
        )
    )


async def test_calls_are_counted_per_route_and_status_on_the_metrics_port(gateway: Gateway) -> None:
    async with gateway.session.get(gateway.url + "/v1/requests") as response:
        assert response.status == 401
    for _ in range(2):
        async with gateway.session.get(
            gateway.url + "/v1/requests/abc", headers=gateway.auth("read")
        ) as response:
            assert response.status == 404
    assert gateway.service.health is not None
    async with gateway.session.get(f"http://127.0.0.1:{gateway.service.health.port}/metrics") as response:
        text = await response.text()
    assert 'ferry_gateway_http_requests_total{method="GET",route="/v1/requests",status="401"} 1.0' in text
    assert (
        'ferry_gateway_http_requests_total{method="GET",route="/v1/requests/{id}",status="404"} 2.0' in text
    )
    assert "ferry_gateway_http_request_duration_seconds_bucket" in text


async def test_a_quiet_stream_gets_keep_alive_comments(
    gateway: Gateway, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(gateway_requests, "KEEPALIVE", 0.2)
    async with gateway.session.post(
        gateway.url + "/v1/requests", data=blocked_request(), headers=gateway.auth("cli")
    ) as response:
        rid = (await response.json())["id"]
    comments = 0
    url = gateway.url + f"/v1/requests/{rid}/events"
    async with gateway.session.get(url, headers=gateway.auth("read")) as response:
        async for line in response.content:
            comments += line == b": keep-alive\n"
            if comments == 2:
                break
    await gateway.client.cancel(rid)
    await gateway.client.wait(rid, within=15)
    assert comments == 2


async def test_event_streams_are_capped_per_replica(settings: Settings, client: BusClient) -> None:
    config = dataclasses.replace(gateway_config(), max_streams=1)
    gateway = GatewayService(settings, config=config)
    headers = {"Authorization": f"Bearer {TOKENS['cli']}"}
    async with running(IntakeService(settings), gateway), aiohttp.ClientSession(headers=headers) as session:
        async with session.post(gateway.url + "/v1/requests", data=blocked_request()) as response:
            rid = (await response.json())["id"]
        url = gateway.url + f"/v1/requests/{rid}/events"
        async with session.get(url) as first:
            assert first.status == 200
            await asyncio.wait_for(first.content.readline(), timeout=5)
            async with session.get(url) as second:
                assert second.status == 503
                assert "too many event streams" in (await second.json())["error"]
        await client.cancel(rid)
