"""Each service's small HTTP side door: ``/healthz`` (alive), ``/readyz`` (connected, serving) and
Prometheus ``/metrics``. Kubernetes probes and scrapers use it; it is not the gateway API.

``/metrics`` carries Ferry's own series and the standard ones every Python exporter has: the
process (``process_resident_memory_bytes``, CPU seconds, open fds), the platform (``python_info``)
and the garbage collector (``python_gc_*``), so the usual dashboards and alerts work unchanged.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

from aiohttp import web
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    GCCollector,
    Histogram,
    PlatformCollector,
    ProcessCollector,
    generate_latest,
)
from prometheus_client.metrics_core import Metric


class Metrics:
    """One registry per service instance (several services may share a process in tests)."""

    def __init__(self, service: str) -> None:
        self.registry = CollectorRegistry()
        # Services run beside this one in the same process (``lifecycle.run(First, *others)``): their
        # series are served on this service's /metrics, the only port a scraper knows.
        self.companions: list[Metrics] = []
        # The standard collectors, on this registry rather than the global one (which tests share).
        ProcessCollector(registry=self.registry)
        PlatformCollector(registry=self.registry)
        GCCollector(registry=self.registry)
        labels = {"service": service}
        self.steps = Counter(
            "ferry_steps_total", "Steps finished, by outcome", ["step", "outcome"], registry=self.registry
        ).labels
        self.step_seconds = Histogram(
            "ferry_step_duration_seconds",
            "Time a step took",
            ["step"],
            registry=self.registry,
            buckets=(0.1, 0.5, 1, 5, 15, 60, 300, 900, 3600),
        ).labels
        self.in_progress = Gauge(
            "ferry_steps_in_progress", "Steps running now", ["service"], registry=self.registry
        ).labels(**labels)
        self.requests = Counter(
            "ferry_requests_total",
            "Requests accepted or rejected at intake",
            ["outcome"],
            registry=self.registry,
        ).labels
        self.bytes = Counter(
            "ferry_bytes_total", "Volume bytes moved", ["step"], registry=self.registry
        ).labels


class HealthServer:
    def __init__(self, host: str, port: int, metrics: Metrics, ready: Callable[[], bool]) -> None:
        self._host, self._port = host, port
        self._metrics, self._ready = metrics, ready
        self._runner: web.AppRunner | None = None
        self.port = port

    async def start(self) -> None:
        app = web.Application()
        app.router.add_get("/healthz", self._healthz)
        app.router.add_get("/readyz", self._readyz)
        app.router.add_get("/metrics", self._metrics_view)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self._host, self._port)
        await site.start()
        server = site._server
        sockets = getattr(server, "sockets", None) or []
        if sockets:
            self.port = int(sockets[0].getsockname()[1])

    async def close(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def _healthz(self, _: web.Request) -> web.Response:
        return web.json_response({"status": "ok"})

    async def _readyz(self, _: web.Request) -> web.Response:
        ready = self._ready()
        return web.json_response({"ready": ready}, status=200 if ready else 503)

    async def _metrics_view(self, _: web.Request) -> web.Response:
        body = generate_latest(_Merged(self._metrics))  # type: ignore[arg-type]
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})


STANDARD_PREFIXES = ("process_", "python_")  # the standard collectors: one process, served once


class _Merged:
    """A service's registry and its companions' as one exposition: a family two services both have
    (``ferry_steps_total``) is one family with both's samples (a second TYPE line would break a
    scrape), and the process's standard series come once."""

    def __init__(self, metrics: Metrics) -> None:
        self._metrics = metrics

    def collect(self) -> Iterator[Metric]:
        families: dict[str, Metric] = {}
        for family in self._metrics.registry.collect():
            families[family.name] = family
        for companion in self._metrics.companions:
            for family in companion.registry.collect():
                if family.name.startswith(STANDARD_PREFIXES):
                    continue
                if family.name in families:
                    families[family.name].samples.extend(family.samples)
                else:
                    families[family.name] = family
        yield from families.values()
