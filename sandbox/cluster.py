"""Starting sandbox clusters in-process: one thread and one event loop per cluster, plus kubeconfigs.

Each cluster runs its ``ApiServer`` on its own thread's loop, so a test's loop only ever talks to it
over HTTP, exactly as it would to a real cluster, and the server's connection handlers and
controllers never show up as the test's asyncio tasks. Use::

    async with SandboxCluster("east", tmp_path / "east") as east:
        east.url, east.kubeconfig_path, east.context          # context == "east"

    async with sandbox_clusters(tmp_path) as clusters:       # "east" and "west"
        clusters.kubeconfig_path                              # ONE file, contexts east and west
        clusters["west"].url
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import threading
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from pathlib import Path
from typing import Any, TypeVar

import yaml

from sandbox.controllers import ControllerManager
from sandbox.server.app import ApiServer
from sandbox.server.serving import SandboxOptions

T = TypeVar("T")


def kubeconfig(clusters: Iterable[tuple[str, str]], current: str | None = None) -> dict[str, Any]:
    """A kubeconfig for (context name, server URL) pairs; cluster, user and context share the name."""
    pairs = list(clusters)
    return {
        "apiVersion": "v1",
        "kind": "Config",
        "preferences": {},
        "clusters": [{"name": n, "cluster": {"server": url}} for n, url in pairs],
        "users": [{"name": f"{n}-admin", "user": {}} for n, _ in pairs],
        "contexts": [
            {"name": n, "context": {"cluster": n, "user": f"{n}-admin", "namespace": "default"}}
            for n, _ in pairs
        ],
        "current-context": current or (pairs[0][0] if pairs else ""),
    }


def write_kubeconfig(path: Path, clusters: Iterable[tuple[str, str]], current: str | None = None) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(kubeconfig(clusters, current), sort_keys=False))
    return path


class SandboxCluster:
    """One sandbox cluster on its own thread; an async and a sync context manager."""

    def __init__(
        self,
        name: str,
        data_dir: Path | str,
        *,
        port: int = 0,
        options: SandboxOptions | None = None,
        kubeconfig_path: Path | None = None,
    ) -> None:
        self.name = name
        self.context = name
        self.data_dir = Path(data_dir)
        self.port = port
        self.options = options or SandboxOptions()
        self.kubeconfig_path = kubeconfig_path or self.data_dir / "kubeconfig"
        self.server = ApiServer(name, self.data_dir, self.options, ControllerManager)
        self.url = ""
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None

    # -- lifecycle ------------------------------------------------------------------------------
    def start(self) -> SandboxCluster:
        started: concurrent.futures.Future[str] = concurrent.futures.Future()
        self._thread = threading.Thread(
            target=self._main, args=(started,), name=f"sandbox-{self.name}", daemon=True
        )
        self._thread.start()
        self.url = started.result(timeout=30)
        write_kubeconfig(self.kubeconfig_path, [(self.name, self.url)])
        return self

    def _main(self, started: concurrent.futures.Future[str]) -> None:
        loop = asyncio.new_event_loop()
        asyncio.set_event_loop(loop)
        self._loop = loop
        try:
            url = loop.run_until_complete(self.server.start(port=self.port))
        except BaseException as e:  # noqa: BLE001 — hand the failure to the starting thread
            started.set_exception(e)
            loop.close()
            return
        started.set_result(url)
        try:
            loop.run_forever()
        finally:
            pending = [t for t in asyncio.all_tasks(loop) if not t.done()]
            for task in pending:
                task.cancel()
            loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
            loop.run_until_complete(loop.shutdown_asyncgens())
            loop.run_until_complete(loop.shutdown_default_executor())
            loop.close()

    def stop(self) -> None:
        if self._loop is None or self._thread is None:
            return
        with contextlib.suppress(Exception):
            asyncio.run_coroutine_threadsafe(self.server.stop(), self._loop).result(timeout=30)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=30)
        self._loop = None
        self._thread = None

    async def __aenter__(self) -> SandboxCluster:
        await asyncio.wrap_future(_in_thread(self.start))
        return self

    async def __aexit__(self, *exc: object) -> None:
        await asyncio.wrap_future(_in_thread(self.stop))

    def __enter__(self) -> SandboxCluster:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- reaching into the server (tests) -------------------------------------------------------
    def submit(self, fn: Callable[[ApiServer], Awaitable[T]]) -> concurrent.futures.Future[T]:
        assert self._loop is not None, "cluster is not running"

        async def run() -> T:
            return await fn(self.server)

        return asyncio.run_coroutine_threadsafe(run(), self._loop)

    async def call(self, fn: Callable[[ApiServer], T]) -> T:
        """Run ``fn(server)`` on the server's loop (e.g. ``lambda s: s.store.compact()``)."""

        async def run(server: ApiServer) -> T:
            return fn(server)

        return await asyncio.wrap_future(self.submit(run))

    def volume_path(self, pv_name: str) -> Path:
        """The directory that backs a PersistentVolume of this cluster."""
        return self.data_dir / "volumes" / pv_name


def _in_thread(fn: Callable[[], Any]) -> concurrent.futures.Future[Any]:
    future: concurrent.futures.Future[Any] = concurrent.futures.Future()

    def run() -> None:
        try:
            future.set_result(fn())
        except BaseException as e:  # noqa: BLE001
            future.set_exception(e)

    threading.Thread(target=run, daemon=True).start()
    return future


class SandboxClusters:
    """Several clusters sharing ONE kubeconfig file (one context per cluster)."""

    def __init__(self, clusters: list[SandboxCluster], kubeconfig_path: Path) -> None:
        self.clusters = {c.name: c for c in clusters}
        self.kubeconfig_path = kubeconfig_path

    def __getitem__(self, name: str) -> SandboxCluster:
        return self.clusters[name]

    def __iter__(self) -> Any:
        return iter(self.clusters.values())


@contextlib.asynccontextmanager
async def sandbox_clusters(
    data_dir: Path | str,
    names: tuple[str, ...] = ("east", "west"),
    options: SandboxOptions | None = None,
) -> AsyncIterator[SandboxClusters]:
    """Start clusters in parallel (each with data under ``data_dir/<name>``) and one shared kubeconfig."""
    base = Path(data_dir)
    clusters = [SandboxCluster(n, base / n, options=options) for n in names]
    started: list[SandboxCluster] = []
    try:
        futures = [_in_thread(c.start) for c in clusters]
        for c, f in zip(clusters, futures, strict=True):
            await asyncio.wrap_future(f)
            started.append(c)
        path = write_kubeconfig(base / "kubeconfig", [(c.name, c.url) for c in clusters])
        yield SandboxClusters(clusters, path)
    finally:
        await asyncio.gather(*(asyncio.wrap_future(_in_thread(c.stop)) for c in started))
