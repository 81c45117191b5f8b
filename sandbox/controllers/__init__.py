"""Controllers: small reconcile loops that play kube-controller-manager, CSI sidecars and a kubelet.

Each controller names the resources it watches; the manager feeds it (resource, namespace, name)
keys from the store's event stream, de-duplicated, and runs ``reconcile`` for one key at a time in
its own named task. ``reconcile`` reads fresh state, acts through ``Objects`` (the same write path
as HTTP requests) and may ask to be called again after a delay. Errors are logged and retried.
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING, Any

from sandbox.server.errors import ApiError
from sandbox.server.storage import Event

if TYPE_CHECKING:
    from sandbox.server.app import ApiServer

log = logging.getLogger("sandbox.controllers")

Key = tuple[str, str, str]  # (resource, namespace, name)


class Controller:
    name = "controller"
    resources: tuple[str, ...] = ()  # store keys to watch; () means every resource

    def __init__(self, server: ApiServer) -> None:
        self.server = server
        self.objects = server.objects
        self.store = server.store
        self._pending: set[Key] = set()
        self._queue: asyncio.Queue[Key] = asyncio.Queue()
        self._task: asyncio.Task[None] | None = None
        self._timers: set[asyncio.TimerHandle] = set()
        self._failures: dict[Key, int] = {}

    # -- hooks for subclasses -------------------------------------------------------------------
    async def seed(self) -> None:
        """Create what this controller's cluster starts with (classes, default namespaces...)."""

    def keys_for(self, event: Event) -> list[Key]:
        meta = event.obj["metadata"]
        return [(event.resource, meta.get("namespace", ""), meta["name"])]

    async def reconcile(self, resource: str, namespace: str, name: str) -> float | None:
        """Bring one object closer to its desired state; return a delay to be called again."""
        return None

    # -- machinery ------------------------------------------------------------------------------
    def on_event(self, event: Event) -> None:
        if self.resources and event.resource not in self.resources:
            return
        for key in self.keys_for(event):
            self.enqueue(key)

    def enqueue(self, key: Key) -> None:
        if key not in self._pending:
            self._pending.add(key)
            self._queue.put_nowait(key)

    def enqueue_later(self, key: Key, delay: float) -> None:
        loop = asyncio.get_running_loop()
        handle: asyncio.TimerHandle

        def fire() -> None:
            self._timers.discard(handle)
            self.enqueue(key)

        handle = loop.call_later(delay, fire)
        self._timers.add(handle)

    def start(self) -> None:
        for resource in self.resources:
            for obj in self.store.items(resource):
                meta = obj["metadata"]
                self.enqueue((resource, meta.get("namespace", ""), meta["name"]))
        self._task = asyncio.create_task(self._run(), name=f"sandbox-{self.server.name}-{self.name}")

    async def stop(self) -> None:
        for handle in list(self._timers):
            handle.cancel()
        self._timers.clear()
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass
            self._task = None

    async def _run(self) -> None:
        while True:
            key = await self._queue.get()
            self._pending.discard(key)
            try:
                again = await self.reconcile(*key)
                self._failures.pop(key, None)
            except asyncio.CancelledError:
                raise
            except Exception as e:  # a controller must survive its own bugs and refusals
                failures = self._failures[key] = self._failures.get(key, 0) + 1
                again = min(5.0, 0.2 * 2 ** (failures - 1))  # back off, as workqueues do
                if isinstance(e, ApiError):
                    log.debug("%s: %s on %s, retry in %.1fs", self.name, e.message, key, again)
                else:
                    log.exception("%s: reconcile %s failed, retry in %.1fs", self.name, key, again)
            if again is not None:
                self.enqueue_later(key, again)


class ControllerManager:
    def __init__(self, server: ApiServer) -> None:
        from sandbox.controllers.crds import CrdCleanup
        from sandbox.controllers.garbage import GarbageCollector
        from sandbox.controllers.kubelet import Kubelet
        from sandbox.controllers.namespaces import NamespaceController
        from sandbox.controllers.services import EndpointsController, LoadBalancerController
        from sandbox.controllers.snapshots import SnapshotController
        from sandbox.controllers.storage import StorageController
        from sandbox.controllers.tokens import TokenController
        from sandbox.controllers.workloads import WorkloadController

        opts = server.options
        self.server = server
        self.controllers: list[Controller] = [NamespaceController(server), CrdCleanup(server)]
        wanted: list[tuple[bool, Any]] = [
            (opts.garbage_collector, GarbageCollector),
            (opts.storage, StorageController),
            (opts.snapshots, SnapshotController),
            (opts.workloads, WorkloadController),
            (opts.workloads, EndpointsController),
            (opts.workloads, LoadBalancerController),
            (opts.namespaces, TokenController),
            (opts.kubelet, Kubelet),
        ]
        self.controllers += [cls(server) for enabled, cls in wanted if enabled]
        self.namespaces_enabled = opts.namespaces

    def get(self, name: str) -> Controller | None:
        return next((c for c in self.controllers if c.name == name), None)

    async def seed(self) -> None:
        for c in self.controllers:
            await c.seed()

    def start(self) -> None:
        for c in self.controllers:
            if c.name == "namespaces" and not self.namespaces_enabled:
                continue
            self.server.store.subscribe(c.on_event)
            c.start()

    async def stop(self) -> None:
        for c in reversed(self.controllers):
            self.server.store.unsubscribe(c.on_event)
            await c.stop()
