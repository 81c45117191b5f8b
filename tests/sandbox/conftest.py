"""Fixtures for the sandbox tests: two running clusters for the session, real clients per test.

The clusters ("east" and "west") are started once; each test works in its own namespace
(``ns``), so tests share servers without sharing state. Clients are the real kubernetes_asyncio
ones over HTTP, and are closed after every test.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

import pytest
from kubernetes_asyncio import client
from kubernetes_asyncio.dynamic import DynamicClient

from sandbox import SandboxClusters
from sandbox.testing import sandbox_pair_fixture  # noqa: F401 — provides sandbox_pair (east, west)

T = TypeVar("T")


@pytest.fixture(scope="session")
def clusters(sandbox_pair: SandboxClusters) -> SandboxClusters:
    return sandbox_pair


@pytest.fixture(scope="session")
def east_url(clusters: SandboxClusters) -> str:
    return clusters["east"].url


@pytest.fixture
async def api(east_url: str) -> AsyncIterator[client.ApiClient]:
    config = client.Configuration(host=east_url)
    api_client = client.ApiClient(config)
    yield api_client
    await api_client.close()


@pytest.fixture
async def dyn(api: client.ApiClient, tmp_path: Path) -> DynamicClient:
    return await DynamicClient(api, cache_file=str(tmp_path / "discovery.json"))


@pytest.fixture
async def ns(api: client.ApiClient, unique: str) -> AsyncIterator[str]:
    name = f"t-{unique}"
    core = client.CoreV1Api(api)
    await core.create_namespace({"metadata": {"name": name}})
    yield name


async def eventually(check: Callable[[], Awaitable[T]], within: float = 10.0, interval: float = 0.05) -> T:
    """Poll ``check`` until it returns a truthy value (bounded); raise the last error otherwise."""
    deadline = time.monotonic() + within
    last: BaseException | None = None
    while True:
        try:
            value = await check()
            if value:
                return value
        except AssertionError as e:
            last = e
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {within}s") from last
        await asyncio.sleep(interval)


KUBECTL = shutil.which("kubectl")


Kubectl = Callable[..., Awaitable[tuple[int, str, str]]]


def kubectl_runner(kubeconfig: Path, home: Path) -> Kubectl:
    """Run kubectl against the east cluster with ``home`` as its HOME (its discovery cache)."""
    if KUBECTL is None:
        pytest.skip("kubectl is not on PATH")
    env = {**os.environ, "HOME": str(home), "KUBECONFIG": str(kubeconfig)}

    async def run(*args: str, stdin: str | None = None, within: float = 30) -> tuple[int, str, str]:
        proc = await asyncio.create_subprocess_exec(
            KUBECTL,  # type: ignore[arg-type]
            "--context",
            "east",
            *args,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            env=env,
        )
        out, err = await asyncio.wait_for(proc.communicate(stdin.encode() if stdin else None), within)
        return proc.returncode or 0, out.decode(), err.decode()

    return run


@pytest.fixture
def kubectl(clusters: SandboxClusters, tmp_path: Path) -> Kubectl:
    """Run kubectl against the east cluster with its own HOME (fresh discovery cache)."""
    return kubectl_runner(clusters.kubeconfig_path, tmp_path / "home")


MISSING = "<missing>"


def shaped(actual: Any, expected: Any) -> Any:
    """``actual`` cut to the keys of ``expected``, so ``==`` compares only what a case names."""
    if isinstance(expected, dict) and isinstance(actual, dict):
        return {k: shaped(actual.get(k, MISSING), v) for k, v in expected.items()}
    if isinstance(expected, list) and isinstance(actual, list) and len(actual) == len(expected):
        return [shaped(a, e) for a, e in zip(actual, expected, strict=True)]
    return actual


def obj(kind: str, name: str, **fields: Any) -> dict[str, Any]:
    return {"kind": kind, "metadata": {"name": name}, **fields}
