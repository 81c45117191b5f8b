"""The side door every service opens without a token (``/healthz``, ``/readyz``, ``/metrics`` on
FERRY_HTTP_PORT): what a scraper finds there, and that it never finds a secret.

Scraped from a running service over HTTP, as Prometheus would: the standard process and Python series
sit next to Ferry's own, so the usual dashboards (memory, CPU, file descriptors, GC) work; none of the
credentials the service was started with shows up.
"""

from __future__ import annotations

import aiohttp
import pytest
from prometheus_client.parser import text_string_to_metric_families

from sandbox.localstack import NatsServer
from services.intake.intake import IntakeService
from shared.runtime import load_settings

PASSWORD = "side-door-repository-password-5c1e"
SECRET_KEY = "side-door-s3-secret-key-90ab"


async def scrape(nats_server: NatsServer) -> tuple[dict[str, set[str]], str]:
    settings = load_settings({}, nats={"url": nats_server.url}, http_port=0, http_host="127.0.0.1",
                             repo_password=PASSWORD, s3={"secret_key": SECRET_KEY})  # fmt: skip
    service = IntakeService(settings)
    async with service, aiohttp.ClientSession() as http:
        assert service.health is not None
        async with http.get(f"http://127.0.0.1:{service.health.port}/metrics") as response:
            assert response.status == 200
            text = await response.text()
    families = {f.name: {s.name for s in f.samples} for f in text_string_to_metric_families(text)}
    return families, text


@pytest.mark.parametrize(
    ("sample", "why"),
    [
        pytest.param("process_resident_memory_bytes", "memory", id="the process's resident memory"),
        pytest.param("process_cpu_seconds_total", "CPU", id="the process's CPU time"),
        pytest.param("process_open_fds", "file descriptors", id="the process's open file descriptors"),
        pytest.param("python_info", "the interpreter", id="the Python version (python_info)"),
        pytest.param("python_gc_collections_total", "GC", id="the garbage collector's runs"),
        pytest.param("ferry_steps_in_progress", "Ferry's own", id="Ferry's own series next to them"),
    ],
)
async def test_metrics_carry_the_standard_process_and_python_series(
    nats_server: NatsServer, sample: str, why: str
) -> None:
    families, _ = await scrape(nats_server)
    samples = set().union(*families.values())
    assert sample in samples, f"/metrics has no {sample} ({why}); it has {sorted(families)}"


async def test_metrics_show_no_credential_the_service_holds(nats_server: NatsServer) -> None:
    _, text = await scrape(nats_server)
    assert PASSWORD not in text and SECRET_KEY not in text
