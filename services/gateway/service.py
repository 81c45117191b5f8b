"""The gateway process: a Ferry ``Service`` that serves the REST API on its own port.

The API gets a port of its own (``FERRY_GATEWAY_PORT``, default 8081) instead of sharing the
health server's: probes and metrics stay reachable without a token on ``FERRY_HTTP_PORT``, and the
API port is the only one a load balancer or an ingress needs to expose. The gateway keeps no state:
its one resource is the bus connection the ``Service`` base opens (and drains on SIGTERM).
"""

from __future__ import annotations

import asyncio
import logging
import sys

from aiohttp import web

from services.gateway.app import build_app
from services.gateway.config import GatewayConfig
from shared.bus.client import BusClient
from shared.contracts.errors import PermanentError
from shared.runtime import Service, Settings, load_settings, serve, setup_logging

log = logging.getLogger("ferry.gateway")


class GatewayService(Service):
    name = "gateway"
    description = "Ferry's REST API: submit, follow and cancel requests; snapshots; clusters"

    def __init__(
        self, settings: Settings, *, config: GatewayConfig | None = None, instance: str = ""
    ) -> None:
        super().__init__(settings, instance=instance)
        self.config = config or GatewayConfig.load(settings)  # refuses to start without tokens
        self._runner: web.AppRunner | None = None
        self.port = self.config.port
        self.client: BusClient | None = None

    @property
    def url(self) -> str:
        host = "127.0.0.1" if self.config.host in ("0.0.0.0", "") else self.config.host
        return f"http://{host}:{self.port}"

    async def setup(self) -> None:
        assert self.nc is not None
        self.client = BusClient(self.nc)
        app = build_app(self.client, self.config, self.metrics.registry)
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=2.0)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.config.host, self.config.port)
        await site.start()
        sockets = getattr(site._server, "sockets", None) or []
        if sockets:
            self.port = int(sockets[0].getsockname()[1])
        if self.config.insecure:
            log.warning("FERRY_GATEWAY_INSECURE is set: the API accepts calls WITHOUT a token")
        log.info("gateway API on %s (%d token(s) configured)", self.url, len(self.config.tokens.entries))

    async def teardown(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None


def main() -> None:
    """``python -m services.gateway``: a missing or bad token configuration stops it with exit 2."""
    try:
        settings = load_settings()
        setup_logging("gateway", settings.log_level, settings.log_format, settings.secrets())
        config = GatewayConfig.load(settings)
    except PermanentError as e:
        print(f"ferry gateway: {e}", file=sys.stderr)
        sys.exit(2)
    asyncio.run(serve(GatewayService(settings, config=config)))
