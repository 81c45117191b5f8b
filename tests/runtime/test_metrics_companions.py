"""Services sharing a process (discovery + preflight, intake + policies, restore + rollback) are
scraped on one port: the first service's /metrics serves every one's series, as one exposition."""

from __future__ import annotations

import aiohttp
from prometheus_client import Gauge
from prometheus_client.parser import text_string_to_metric_families

from shared.runtime.health import HealthServer, Metrics


async def test_the_first_service_serves_its_companions_series_once_each() -> None:
    first, second = Metrics("discovery"), Metrics("preflight")
    first.companions.append(second)
    first.steps(step="discover", outcome="succeeded").inc()
    second.steps(step="preflight", outcome="succeeded").inc(2)
    Gauge("ferry_policy_rpo_seconds", "RPO", ["policy"], registry=second.registry).labels("shop").set(42)
    server = HealthServer("127.0.0.1", 0, first, lambda: True)
    await server.start()
    try:
        async with aiohttp.ClientSession() as session:
            async with session.get(f"http://127.0.0.1:{server.port}/metrics") as response:
                text = await response.text()
    finally:
        await server.close()
    assert text.count("# TYPE ferry_steps_total counter") == 1
    assert text.count("# TYPE process_resident_memory_bytes gauge") == 1
    families = {f.name: f for f in text_string_to_metric_families(text)}  # parses: a scraper would too
    steps = {
        s.labels["step"]: s.value for s in families["ferry_steps"].samples if s.name == "ferry_steps_total"
    }
    assert steps == {"discover": 1.0, "preflight": 2.0}
    assert [s.value for s in families["ferry_policy_rpo_seconds"].samples] == [42.0]
