"""The transport's promises, against a scripted API server: retries honour Retry-After, a ``kind:
Status`` body never passes as an object, a broken watch resumes without losing or repeating events."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from aiohttp import web

from sandbox import SandboxClusters, write_kubeconfig
from shared.kube import Cluster, Clusters, Expired, NotFound, ServerError, TooManyRequests, watching
from shared.kube.requesting import RetryPolicy


class Scripted:
    """An HTTP server answering GET /version from a list of (status, headers, body)."""

    def __init__(self) -> None:
        self.script: list[tuple[int, dict[str, str], object]] = []
        self.calls = 0

    async def handle(self, request: web.Request) -> web.Response:
        self.calls += 1
        status, headers, body = self.script.pop(0) if self.script else (200, {}, {"gitVersion": "v1"})
        return web.Response(
            status=status, headers=headers, text=json.dumps(body), content_type="application/json"
        )


@pytest.fixture
async def scripted(tmp_path: Path) -> AsyncIterator[tuple[Scripted, str]]:
    server = Scripted()
    app = web.Application()
    app.router.add_get("/version", server.handle)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    kubeconfig = write_kubeconfig(tmp_path / "kc", [("scripted", f"http://127.0.0.1:{port}")])
    yield server, str(kubeconfig)
    await runner.cleanup()


def status(code: int, reason: str, message: str) -> dict[str, object]:
    return {
        "kind": "Status",
        "apiVersion": "v1",
        "status": "Failure",
        "code": code,
        "reason": reason,
        "message": message,
    }


async def test_throttling_and_server_errors_are_retried_honouring_retry_after(
    scripted: tuple[Scripted, str],
) -> None:
    server, kubeconfig = scripted
    server.script = [
        (429, {"Retry-After": "0.2"}, status(429, "TooManyRequests", "slow down")),
        (503, {}, status(503, "ServiceUnavailable", "etcd is busy")),
    ]
    async with Clusters(kubeconfig, retry=RetryPolicy(attempts=3, initial=0.01)) as kube:
        cluster = await kube.get("scripted")
        started = asyncio.get_running_loop().time()
        assert (await cluster.version())["gitVersion"] == "v1"
        assert asyncio.get_running_loop().time() - started >= 0.2
        assert server.calls == 3
        server.script = [(500, {}, status(500, "InternalError", "boom"))] * 3
        with pytest.raises(ServerError, match="boom"):
            await cluster.version()
        server.script = [(429, {"Retry-After": "0"}, status(429, "TooManyRequests", "slow down"))] * 3
        with pytest.raises(TooManyRequests):
            await cluster.version()


async def test_a_status_failure_inside_a_200_raises_instead_of_passing_as_an_object(
    scripted: tuple[Scripted, str],
) -> None:
    server, kubeconfig = scripted
    server.script = [(200, {}, status(404, "NotFound", 'pods "p" not found'))]
    async with Clusters(kubeconfig) as kube:
        with pytest.raises(NotFound, match='pods "p" not found'):
            await (await kube.get("scripted")).version()


async def test_a_watch_resumes_across_streams_and_an_expired_version_raises(
    east: Cluster, ns: str, clusters: SandboxClusters, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(watching, "STREAM_SECONDS", 1)  # every stream ends after a second
    r = await east.resource("configmaps")
    seen: list[str] = []

    async def follow() -> None:
        async for event in east.watch(r, ns, within=8):
            if event.type == "ADDED":
                seen.append(event.name)
            if event.name == "late":
                return

    task = asyncio.create_task(follow())
    await east.create(
        {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "early", "namespace": ns}}
    )
    await asyncio.sleep(2.5)  # two streams have ended by now
    await east.create(
        {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "late", "namespace": ns}}
    )
    await asyncio.wait_for(task, 10)
    assert seen.count("early") == 1 and seen.count("late") == 1

    old = (await east.get("configmaps", "early", ns))["metadata"]["resourceVersion"]
    await east.create(
        {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "newer", "namespace": ns}}
    )
    await clusters["east"].call(lambda server: server.store.compact())
    with pytest.raises(Expired):
        async for _ in east.watch(r, ns, resource_version=old, within=3):
            pass
