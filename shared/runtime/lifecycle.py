"""One lifecycle for every Ferry service: start, serve, drain on SIGTERM within a grace period, close.

A service subclasses ``Service`` and fills ``setup`` (declare what it serves) and optionally
``teardown``. ``drain()`` is idempotent and can be called from a signal, a test or a failure.
Every background task is named and owned here; an unexpected exit is logged and stops the service
(nats.py's graceful_shutdown example and Temporal's worker are the models).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import sys
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any

import msgspec
import nats.micro
from nats.aio.client import Client
from nats.js import JetStreamContext
from nats.micro.service import Service as MicroService

from shared.bus.connecting import connect
from shared.bus.micro import Request
from shared.bus.topology import Topology, ensure_topology
from shared.contracts import subjects
from shared.contracts.errors import (
    CodedError,
    FerryError,
    Internal,
    PermanentError,
    TemporaryError,
    Unavailable,
)
from shared.contracts.states import Rejected
from shared.runtime.health import HealthServer, Metrics
from shared.runtime.settings import Settings

log = logging.getLogger("ferry.runtime")

VERSION = "0.1.0"
Handler = Callable[[Request], Awaitable[bytes]]  # a request-reply endpoint's work: the reply's bytes
_rejected = msgspec.json.Encoder()
REPLY_MARGIN = 16 * 1024  # bytes of a NATS message a list reply leaves for its envelope


class Service:
    """Base of every Ferry service process."""

    name = "service"
    description = ""

    def __init__(self, settings: Settings, *, instance: str = "") -> None:
        self.settings = settings
        self.instance = instance or f"{self.name}-{os.getpid()}-{id(self) & 0xFFFF:04x}"
        self.metrics = Metrics(self.name)
        self.nc: Client | None = None
        self._js: JetStreamContext | None = None
        self._topology: Topology | None = None
        self.micro: MicroService | None = None
        self.health: HealthServer | None = None
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self._stopped = asyncio.Event()
        self._draining = False
        self._ready = False

    # --- what subclasses fill in -------------------------------------------------------------
    async def setup(self) -> None:
        """Declare endpoints and background loops (``self.spawn``). Called once connected."""

    async def on_drain(self) -> None:
        """Stop taking work; let current work finish (within the grace period)."""

    async def teardown(self) -> None:
        """Release what ``setup`` took."""

    # --- plumbing ---------------------------------------------------------------------------
    @property
    def js(self) -> JetStreamContext:
        assert self._js is not None, "service not started"
        return self._js

    @property
    def reply_budget(self) -> int:
        """Bytes the items of one list reply may take: the server's largest message (1 MiB before
        the connection knows it) less ``REPLY_MARGIN``."""
        return (self.nc.max_payload if self.nc is not None else 1 << 20) - REPLY_MARGIN

    @property
    def topology(self) -> Topology:
        assert self._topology is not None, "service not started"
        return self._topology

    async def add_endpoints(
        self,
        handlers: dict[str, tuple[str, Handler]],
        *,
        queue_group: str,
        unavailable: type[FerryError] = TemporaryError,
    ) -> None:
        """Serve each ``name: (subject, handler)`` on the service's micro endpoints, in ``queue_group``:
        the reply is the handler's bytes, or a ``Rejected`` with the error's code (an ``unavailable``
        error's as unavailable; any other exception logged, and answered as an internal error)."""
        assert self.micro is not None
        for name, (subject, handler) in handlers.items():
            endpoint = _answering(handler, self.name, unavailable)
            await self.micro.add_endpoint(
                name=name, subject=subject, handler=endpoint, queue_group=queue_group
            )

    def spawn(self, name: str, coro: Coroutine[Any, Any, None]) -> None:
        """Run a named background task owned by the service; if it dies, the service stops."""
        task = asyncio.create_task(coro, name=f"{self.name}:{name}")
        self._tasks[name] = task
        task.add_done_callback(self._task_done)

    def _task_done(self, task: asyncio.Task[None]) -> None:
        if task.cancelled() or self._draining:
            return
        error = task.exception()
        if error is not None:
            log.error("%s stopped unexpectedly: %r", task.get_name(), error, exc_info=error)
        else:
            log.warning("%s ended", task.get_name())
        self._stopped.set()

    async def start(self) -> None:
        self.nc = await connect(self.settings.nats)
        self._js = self.nc.jetstream()
        self._topology = await ensure_topology(self._js, replicas=self.settings.nats.replicas)
        self.health = HealthServer(
            self.settings.http_host,
            self.settings.http_port,
            self.metrics,
            lambda: self._ready and not self._draining,
        )
        await self.health.start()
        self.micro = await nats.micro.add_service(
            self.nc,
            name=subjects.micro_name(self.name),
            version=VERSION,
            description=self.description or f"Ferry {self.name} service",
            metadata={"instance": self.instance},
        )
        await self.setup()
        await self.nc.flush()  # every subscription is known to the server before we say ready
        self._ready = True
        log.info("%s started (instance %s, health on :%s)", self.name, self.instance, self.health.port)

    async def wait(self) -> None:
        await self._stopped.wait()

    async def drain(self) -> None:
        """Idempotent: stop taking work, finish or hand back what is in hand, close connections."""
        if self._draining:
            return
        self._draining = True
        self._ready = False
        log.info("%s draining (grace %.0fs)", self.name, self.settings.drain_grace)
        try:
            await asyncio.wait_for(self.on_drain(), timeout=self.settings.drain_grace + 5)
        except TimeoutError:
            log.warning("%s did not drain within its grace period", self.name)
        for task in self._tasks.values():
            task.cancel()
        if self._tasks:
            # Bounded: a library call inside a task may swallow its cancellation (nats-py turns some
            # into timeouts), and an unbounded wait would then hang the shutdown.
            _done, stuck = await asyncio.wait(self._tasks.values(), timeout=5.0)
            for task in stuck:
                log.warning("%s: %s did not stop within 5s", self.name, task.get_name())
        await self.teardown()
        if self.micro is not None:
            with contextlib.suppress(Exception):
                await self.micro.stop()
        if self.health is not None:
            await self.health.close()
        if self.nc is not None and not self.nc.is_closed:
            with contextlib.suppress(Exception):
                await self.nc.drain()
        self._stopped.set()

    async def __aenter__(self) -> Service:
        await self.start()
        return self

    async def __aexit__(self, *_: object) -> None:
        await self.drain()


def _answering(
    handler: Handler, service: str, unavailable: type[FerryError]
) -> Callable[[Request], Awaitable[None]]:
    async def endpoint(req: Request) -> None:
        try:
            reply = await handler(req)
        except CodedError as e:
            reply = _rejected.encode(Rejected.of(e))
        except unavailable as e:  # temporary ones (the bucket unreachable) among them
            reply = _rejected.encode(Rejected(error=str(e), code=Unavailable.code))
        except Exception:
            log.exception("%s call on %s failed", service, req.subject)
            reply = _rejected.encode(
                Rejected.of(Internal(f"internal error: see the {service} service's log"))
            )
        await req.respond(reply)

    return endpoint


async def serve(service: Service) -> None:
    """Run until SIGTERM/SIGINT or an unexpected task exit, then drain."""
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, service._stopped.set)
    await service.start()
    try:
        await service.wait()
    finally:
        await service.drain()


async def serve_all(services: list[Service]) -> None:
    """``serve`` for several services in one process: the first to stop (or a signal) stops them all."""
    if len(services) == 1:
        await serve(services[0])
        return
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    try:
        for service in services:
            await service.start()
        waits: list[asyncio.Task[Any]] = [
            asyncio.create_task(s.wait(), name=f"wait:{s.name}") for s in services
        ]
        waits.append(asyncio.create_task(stop.wait(), name="wait:signal"))
        _done, pending = await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
        for task in pending:
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)
    finally:
        for service in services:
            await service.drain()


EXIT_CONFIG = 2  # the service cannot run as configured: fix the settings, restarting will not help


def run(service_cls: type[Service], *others: type[Service]) -> None:
    """Entry point of ``python -m services.<name>``: settings, logs, serve until SIGTERM.

    With ``others``, those services run in the same process with one lifecycle (``serve_all``); the
    first keeps the configured health port, the others take a free one each, and the first's /metrics
    serves every one's series.
    """
    from shared.runtime.logs import setup_logging
    from shared.runtime.settings import load_settings

    try:
        settings = load_settings()
        setup_logging(service_cls.name, settings.log_level, settings.log_format, settings.secrets())
        services = [service_cls(settings)]
        if others:
            side = msgspec.structs.replace(settings, http_port=0)
            services += [cls(side) for cls in others]
            services[0].metrics.companions += [s.metrics for s in services[1:]]
        asyncio.run(serve_all(services))
    except PermanentError as e:  # bad settings, refused credentials: one line, and a code that says so
        print(f"ferry {service_cls.name}: {e}", file=sys.stderr)
        sys.exit(EXIT_CONFIG)
    except TemporaryError as e:  # NATS unreachable at start: exit, and let the supervisor restart us
        print(f"ferry {service_cls.name}: {e}", file=sys.stderr)
        sys.exit(1)
