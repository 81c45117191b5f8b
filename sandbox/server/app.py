"""The API server object: store, registry, write semantics, the aiohttp app; runs the controllers given.

One ``ApiServer`` is one cluster. It runs on one asyncio loop; every request and every controller
step runs on that loop, so writes are serialised exactly as etcd transactions would be and no locks
are needed. ``start()`` binds (port 0 picks a free port) and returns the URL.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import msgspec
from aiohttp import web

from sandbox.server import access, discovery, errors
from sandbox.server.admission import Admission
from sandbox.server.errors import ApiError
from sandbox.server.handlers import handle, read_body, resolve
from sandbox.server.immutability import UpdateValidation
from sandbox.server.objects import Objects
from sandbox.server.registry import CrdRegistrar, Registry
from sandbox.server.serving import PodExec, SandboxOptions
from sandbox.server.storage import Event, ObjectStore
from sandbox.types.snapshot_crds import snapshot_crds

log = logging.getLogger("sandbox.server")


@dataclass
class Request:
    """One request as the server saw it (``ApiServer.requests``), e.g. to assert on patch types."""

    method: str
    path: str  # with the query string
    content_type: str
    user_agent: str
    status: int = 0


class Controllers(Protocol):
    """The loops that play kube-controller-manager and a kubelet (``sandbox.controllers``).

    The server only starts and stops them: it is handed a factory rather than importing the
    controllers, which are built on the server's objects (so the dependency points one way).
    """

    async def seed(self) -> None: ...
    def start(self) -> None: ...
    async def stop(self) -> None: ...


class _NoControllers:
    """A bare API server: objects are stored and served, nothing reconciles them."""

    async def seed(self) -> None:
        pass

    def start(self) -> None:
        pass

    async def stop(self) -> None:
        pass


class ApiServer:
    def __init__(
        self,
        name: str,
        data_dir: Path,
        options: SandboxOptions | None = None,
        controllers: Callable[[ApiServer], Controllers] | None = None,
    ) -> None:
        self.name = name
        self.data_dir = Path(data_dir)
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.options = options or SandboxOptions()
        self.store = ObjectStore(window=self.options.watch_window)
        self.registry = Registry()
        self.objects = Objects(self.store, self.registry)
        self.admission = Admission(self.objects)
        self.update_validation = UpdateValidation(self.objects)
        self.crds = CrdRegistrar(self.store, self.registry)
        self.access = access.AccessRules(self.options.denied)  # what access reviews deny
        self.applied: dict[tuple[str, str, str], dict[str, Any]] = {}  # server-side apply: last config
        self.watch_queues: set[asyncio.Queue[Event | None]] = set()
        self.logs: dict[tuple[str, str], Path] = {}  # (namespace, pod) -> log file (kubelet)
        self.pod_exec: PodExec | None = None  # set by the kubelet controller: runs pods/exec
        self.requests: deque[Request] = deque(maxlen=self.options.request_log)  # for test assertions
        self.url = ""
        self._encoder = msgspec.json.Encoder()
        self._runner: web.AppRunner | None = None
        self.controllers = controllers(self) if controllers is not None else _NoControllers()

    # -- lifecycle ------------------------------------------------------------------------------
    async def start(self, host: str = "127.0.0.1", port: int = 0) -> str:
        crd_rt = self.objects.rt("customresourcedefinitions.apiextensions.k8s.io")
        for crd in snapshot_crds():
            self.objects.create(crd_rt, "", crd)
        await self.controllers.seed()
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_route("*", "/{tail:.*}", self._dispatch)
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=1.0)
        await self._runner.setup()
        site = web.TCPSite(self._runner, host, port)
        await site.start()
        bound = self._runner.addresses[0]
        self.url = f"http://{host}:{bound[1]}"
        self.controllers.start()
        return self.url

    async def stop(self) -> None:
        await self.controllers.stop()
        for queue in list(self.watch_queues):
            queue.put_nowait(None)
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    # -- rendering ------------------------------------------------------------------------------
    def encode(self, obj: Any) -> bytes:
        return self._encoder.encode(obj)

    def json(self, obj: Any, status: int = 200) -> web.Response:
        return web.Response(body=self.encode(obj), status=status, content_type="application/json")

    def pod_log(self, namespace: str, pod: str, container: str | None) -> str:
        path = self.logs.get((namespace, pod))
        if path is None or not path.exists():
            return ""
        return path.read_text(errors="replace")

    # -- routing --------------------------------------------------------------------------------
    async def _dispatch(self, request: web.Request) -> web.StreamResponse:
        record = Request(
            request.method, request.path_qs, request.content_type, request.headers.get("User-Agent", "")
        )
        self.requests.append(record)
        try:
            response = await self._route(request)
            record.status = response.status
            return response
        except ApiError as e:
            record.status = e.code
            return self.json(e.status(), e.code)
        except (ConnectionResetError, asyncio.CancelledError):
            raise
        except Exception as e:  # noqa: BLE001 — a bug in the sandbox must still answer like a server
            log.exception("internal error on %s %s", request.method, request.path_qs)
            return self.json(
                errors.ApiError(500, "InternalError", f"Internal error occurred: {e}").status(), 500
            )

    async def _route(self, request: web.Request) -> web.StreamResponse:
        path = request.path.rstrip("/") or "/"
        parts = [p for p in path.split("/") if p]
        get = request.method == "GET"
        if path == "/version" and get:
            return self.json(discovery.VERSION)
        if path in ("/healthz", "/livez", "/readyz"):
            return web.Response(text="ok")
        if path == "/openapi/v2" and get:
            return web.Response(body=b"", content_type="application/octet-stream")
        if path == "/api" and get:
            return self.json(discovery.api_versions())
        if path == "/apis" and get:
            return self.json(discovery.api_group_list(self.registry))
        if parts[:3] == ["apis", access.GROUP, access.VERSION]:
            return await self._authorization(request, parts[3:])
        if parts[:1] == ["api"] and len(parts) >= 2:
            group, version, rest = "", parts[1], parts[2:]
        elif parts[:1] == ["apis"] and len(parts) == 2:
            doc = (
                access.group_entry()
                if parts[1] == access.GROUP
                else discovery.api_group(self.registry, parts[1])
            )
            if doc is None or not get:
                raise errors.path_not_found()
            return self.json(doc)
        elif parts[:1] == ["apis"] and len(parts) >= 3:
            group, version, rest = parts[1], parts[2], parts[3:]
        else:
            raise errors.path_not_found()
        if not rest:
            doc = discovery.resource_list(self.registry, group, version)
            if doc is None or not get:
                raise errors.path_not_found()
            return self.json(doc)
        return await handle(request, self, resolve(self, group, version, rest))

    async def _authorization(self, request: web.Request, rest: list[str]) -> web.StreamResponse:
        """``authorization.k8s.io/v1``: its resource list, and self access reviews (``access.py``)."""
        if not rest:
            if request.method != "GET":
                raise errors.method_not_allowed()
            return self.json(access.resource_list())
        if rest != [access.SELF_REVIEWS]:
            raise errors.path_not_found()
        if request.method != "POST":
            raise errors.method_not_allowed()
        return self.json(access.review(self.access, await read_body(request)), 201)
