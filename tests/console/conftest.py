"""Fixtures for the console's browser tests: headless Chromium (Debian's package) driven by
Playwright, against a running Ferry of stub steps (tests/gateway/stack.py) whose gateway serves the
console, with two sandbox clusters in its kubeconfig.

A missing Chromium FAILS the tests with the command that installs it (``make test`` installs it on
a fresh machine): a browser test that skips would let a broken console pass unseen.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from sandbox import sandbox_clusters
from services.gateway import service as gateway_service
from services.gateway.console import setup_console
from shared.bus.client import BusClient
from shared.runtime import Settings
from tests.console.stack import ConsoleStack, console_stack

ROOT = Path(__file__).parents[2]
# Screenshots go to a temporary artifacts directory; FERRY_SCREENSHOTS=docs/console refreshes the
# ones the README shows (a plain test run leaves the checkout as it was).
SCREENSHOTS = Path(os.environ.get("FERRY_SCREENSHOTS") or (ROOT / ".artifacts" / "console"))
CANDIDATES = ("chromium", "chromium-browser", "/usr/bin/chromium", "/usr/lib/chromium/chromium")
INSTALL = "apt-get update && apt-get install -y chromium   (as root; `make test` does it)"


def find_chromium() -> str:
    """The Chromium to drive: ``$FERRY_CHROMIUM``, else Debian's ``chromium`` on the PATH."""
    configured = os.environ.get("FERRY_CHROMIUM", "")
    for candidate in ([configured] if configured else []) + list(CANDIDATES):
        found = shutil.which(candidate) or (candidate if os.access(candidate, os.X_OK) else None)
        if found:
            return found
    pytest.fail(
        f"the console's browser tests need headless Chromium, and none was found. Install it: {INSTALL}"
    )


@pytest.fixture(scope="session")
def chromium() -> str:
    return find_chromium()


@pytest.fixture
def with_console(monkeypatch: pytest.MonkeyPatch) -> None:
    """The gateway of the stack serves the console (``setup_console`` is idempotent, so this holds
    before and after ``build_app`` calls it itself)."""
    build = gateway_service.build_app

    def build_with_console(*args: Any, **kwargs: Any) -> Any:
        app = build(*args, **kwargs)
        setup_console(app)
        return app

    monkeypatch.setattr(gateway_service, "build_app", build_with_console)


async def _add_namespace(session: aiohttp.ClientSession, server: str, name: str) -> None:
    body = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}}
    async with session.post(f"{server}/api/v1/namespaces", json=body) as response:
        assert response.status in (200, 201, 409), await response.text()


@pytest.fixture
async def console(
    settings: Settings, client: BusClient, tmp_path: Path, with_console: None
) -> AsyncIterator[ConsoleStack]:
    """Ferry with stub steps, the console, sandbox clusters east (with namespace shop) and west."""
    async with sandbox_clusters(tmp_path / "clusters") as clusters:
        async with aiohttp.ClientSession() as session:
            await _add_namespace(session, clusters["east"].url, "shop")
        async with console_stack(settings, client, kubeconfig=str(clusters.kubeconfig_path)) as running:
            yield running


@pytest.fixture
async def browser(chromium: str) -> AsyncIterator[Any]:
    """A headless Chromium (Debian's), launched by Playwright without a browser download of its own."""
    try:
        from playwright.async_api import async_playwright
    except ImportError:
        pytest.fail("the console's browser tests need Playwright for Python: pip install -e '.[dev]'")
    async with async_playwright() as playwright:
        launched = await playwright.chromium.launch(executable_path=chromium, headless=True)
        try:
            yield launched
        finally:
            await launched.close()


@pytest.fixture
def screenshots() -> Path:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    return SCREENSHOTS
