"""Session-wide fixtures: one real nats-server and one real SeaweedFS for the whole run.

Every test gets unique names (subjects, buckets, namespaces) from ``unique``, so tests share the
servers without sharing state. Warnings are errors (pyproject) and leaked asyncio tasks fail the test.
"""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import nats
import pytest

from sandbox.localstack import LocalStack, NatsServer, local_stack
from shared.bus.client import BusClient

# Shared fixtures: ``settings`` (carrying the test tokens) and ``gateway`` for the packages that run
# the stack of stub steps and the gateway (gateway, cli, console), and ``kube``, ``cluster_options``,
# ``snapshot_process`` for those on sandbox clusters; a package's own fixture of a name overrides them.
pytest_plugins = ("tests.gateway.stack", "tests.fixtures")


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--e2e", action="store_true", help="run tests against a real cluster (kubeconfig)")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if config.getoption("--e2e"):
        return
    skip = pytest.mark.skip(reason="e2e: needs a real cluster; run with --e2e")
    for item in items:
        if item.get_closest_marker("e2e") is not None:
            item.add_marker(skip)


@pytest.fixture(scope="session", autouse=True)
def _mover_cache(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """Movers started by tests keep their cache (key hints) in the run's temp dir, not in ~/.cache."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("FERRY_CACHE_DIR", str(tmp_path_factory.mktemp("mover-cache")))
        yield


@pytest.fixture(scope="session")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalStack]:
    """The real nats-server (JetStream) and SeaweedFS (S3 gateway), started once per run."""
    with local_stack(tmp_path_factory.mktemp("stack")) as running:
        yield running


@pytest.fixture
def nats_server(tmp_path: Path) -> Iterator[NatsServer]:
    """A fresh nats-server for one test: stream, consumer and bucket names are global, so tests that
    run Ferry's services get their own server (it starts in milliseconds)."""
    server = NatsServer(tmp_path / "nats").start()
    yield server
    server.stop()


@pytest.fixture
async def client(nats_server: NatsServer) -> AsyncIterator[BusClient]:
    """A BusClient on the test's nats-server (a package with other needs overrides it)."""
    nc = await nats.connect(nats_server.url)
    yield BusClient(nc, timeout=5)
    await nc.close()


@pytest.fixture
def unique() -> str:
    """A short name no other test uses: suffix it to subjects, buckets, namespaces, stream names."""
    return secrets.token_hex(4)


@pytest.fixture
def work_dir(tmp_path: Path) -> Path:
    return tmp_path


@pytest.fixture(autouse=True)
async def _no_leaked_tasks() -> object:
    """Fail a test that leaves asyncio tasks running behind it."""
    before = set(asyncio.all_tasks())
    yield
    await asyncio.sleep(0)
    leaked = [t for t in asyncio.all_tasks() - before if not t.done() and t is not asyncio.current_task()]
    if leaked:
        for task in leaked:
            task.cancel()
        await asyncio.gather(*leaked, return_exceptions=True)
        pytest.fail(f"test leaked asyncio tasks: {[t.get_name() for t in leaked]}")
