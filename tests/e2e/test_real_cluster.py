"""Opt-in end-to-end test against real clusters: ``pytest --e2e tests/e2e``.

It reads ``$KUBECONFIG`` (default ``~/.kube/config``); the source and target are the contexts
``$FERRY_E2E_SOURCE`` and ``$FERRY_E2E_TARGET`` (default: the current context for both, which then
migrates into a second namespace of the same cluster). NATS and SeaweedFS run locally, as do
Ferry's services; the test migrates a namespace of its own making (a ConfigMap, a Secret, a
Deployment of ``registry.k8s.io/pause``, a Service) with a namespace rename, checks what landed,
and deletes both namespaces. Volumes are left out: mover Jobs would need Ferry's image and an S3
endpoint the cluster can reach. The same test runs in CI against two sandbox clusters, so it is
known to work before anyone points it at a real one.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import subprocess
import sys
import time
import urllib.request
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import nats
import pytest
import yaml

from sandbox.localstack import LocalStack, free_port
from shared.bus.client import BusClient
from shared.contracts.requests import MobilityRequest, RequestKind, Source, Target
from shared.contracts.states import Phase
from shared.kube import Clusters

pytestmark = pytest.mark.timeout(900)
SERVICES = ("intake", "discovery", "snapshot", "transfer", "restore", "verify")
PAUSE = "registry.k8s.io/pause:3.9"


def contexts(kubeconfig: str) -> tuple[str, str]:
    current = (yaml.safe_load(Path(kubeconfig).read_text()) or {}).get("current-context", "")
    source = os.environ.get("FERRY_E2E_SOURCE") or current
    return source, os.environ.get("FERRY_E2E_TARGET") or source


@contextlib.contextmanager
def ferry_services(stack: LocalStack, kubeconfig: str, logs: Path) -> Iterator[None]:
    """Ferry's step services as processes, configured as a deployment would configure them."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("FERRY_")}
    env.update(
        FERRY_NATS_URL=stack.nats_url,
        FERRY_S3_ENDPOINT=stack.s3.endpoint,
        FERRY_S3_ACCESS_KEY=stack.s3.access_key,
        FERRY_S3_SECRET_KEY=stack.s3.secret_key,
        FERRY_KUBECONFIG=kubeconfig,
        FERRY_REPOSITORY=f"s3://ferry-e2e-{secrets.token_hex(4)}/repository",
        FERRY_REPO_PASSWORD=secrets.token_urlsafe(16),
        FERRY_HTTP_HOST="127.0.0.1",
    )
    logs.mkdir(parents=True, exist_ok=True)
    running: list[tuple[subprocess.Popen[bytes], int]] = []
    try:
        for name in SERVICES:
            port = free_port()
            with (logs / f"{name}.log").open("wb") as out:
                proc = subprocess.Popen(
                    [sys.executable, "-m", f"services.{name}"],
                    env={**env, "FERRY_HTTP_PORT": str(port)},
                    stdout=out,
                    stderr=subprocess.STDOUT,
                )
            running.append((proc, port))
        deadline = time.monotonic() + 60
        for proc, port in running:
            while not _ready(port):
                assert proc.poll() is None, f"a service exited; logs in {logs}"
                assert time.monotonic() < deadline, f"services not ready after 60s; logs in {logs}"
                time.sleep(0.2)
        yield
    finally:
        for proc, _ in running:
            proc.terminate()
        for proc, _ in running:
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()


def _ready(port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=1) as response:
            return int(response.status) == 200
    except OSError:
        return False


def application(ns: str) -> list[dict[str, Any]]:
    meta = {"namespace": ns, "labels": {"app": "e2e"}}
    pod = {"labels": {"app": "e2e"}}
    return [
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}},
        {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "settings", **meta},
         "data": {"greeting": "hello from the source"}},
        {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "credentials", **meta},
         "stringData": {"password": "e2e-password"}},
        {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "app", **meta},
         "spec": {"replicas": 1, "selector": {"matchLabels": {"app": "e2e"}},
                  "template": {"metadata": pod, "spec": {"containers": [
                      {"name": "app", "image": PAUSE,
                       "envFrom": [{"configMapRef": {"name": "settings"}}, {"secretRef": {"name": "credentials"}}]}]}}}},
        {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "app", **meta},
         "spec": {"selector": {"app": "e2e"}, "ports": [{"port": 80, "targetPort": 8080}]}},
    ]  # fmt: skip


@contextlib.asynccontextmanager
async def namespaces_cleaned(clusters: Clusters, *where: tuple[str, str]) -> AsyncIterator[None]:
    try:
        yield
    finally:
        for context, ns in where:
            with contextlib.suppress(Exception):
                await (await clusters.get(context)).delete("namespaces", ns)


async def migrate_and_check(stack: LocalStack, kubeconfig: str, tmp_path: Path) -> None:
    source, target = contexts(kubeconfig)
    ns = f"ferry-e2e-{secrets.token_hex(3)}"
    renamed = f"{ns}-copy"
    async with (
        Clusters(kubeconfig) as clusters,
        namespaces_cleaned(clusters, (source, ns), (target, renamed)),
    ):
        east, west = await clusters.get(source), await clusters.get(target)
        for obj in application(ns):
            await east.create(obj)
        with ferry_services(stack, kubeconfig, tmp_path / "logs"):
            nc = await nats.connect(stack.nats_url)
            try:
                client = BusClient(nc, timeout=10)
                request = MobilityRequest(
                    kind=RequestKind.MIGRATE,
                    source=Source(cluster=source, namespaces=[ns]),
                    target=Target(cluster=target, namespace_map={ns: renamed}),
                )
                request_id = await client.submit(request)
                state = await client.wait(request_id, within=300)
            finally:
                await nc.close()
        assert state.phase is Phase.COMPLETED, (
            f"{state.phase.value}: {state.reason} (logs in {tmp_path / 'logs'})"
        )
        config = await west.get("configmaps", "settings", renamed)
        assert config["data"] == {"greeting": "hello from the source"}
        secret = await west.get("secrets", "credentials", renamed)
        assert secret["data"]["password"] == "ZTJlLXBhc3N3b3Jk"  # base64 of e2e-password
        deployment = await west.get("deployments.apps", "app", renamed)
        assert deployment["spec"]["template"]["spec"]["containers"][0]["image"] == PAUSE
        service = await west.get("services", "app", renamed)
        assert service["spec"]["ports"][0]["port"] == 80
        original = await east.get("services", "app", ns)
        if source != target:
            return
        # In one cluster the copy must have its own cluster IP, not the source's.
        assert service["spec"].get("clusterIP") != original["spec"].get("clusterIP")


@pytest.fixture
def real_kubeconfig() -> str:
    path = os.environ.get("KUBECONFIG", "").split(os.pathsep)[0] or str(Path.home() / ".kube" / "config")
    if not os.path.isfile(path):
        pytest.fail(f"--e2e needs a kubeconfig: {path} does not exist (set KUBECONFIG)")
    return path


@pytest.mark.e2e
async def test_a_namespace_migrates_between_real_clusters(
    stack: LocalStack, real_kubeconfig: str, tmp_path: Path
) -> None:
    await migrate_and_check(stack, real_kubeconfig, tmp_path)


@pytest.mark.parametrize("target", ["west", "east"], ids=["to another cluster", "within one cluster"])
async def test_the_e2e_test_itself_on_sandbox_clusters(
    stack: LocalStack, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, target: str
) -> None:
    from sandbox.cluster import sandbox_clusters

    async with sandbox_clusters(tmp_path / "clusters") as clusters:
        monkeypatch.setenv("FERRY_E2E_SOURCE", "east")
        monkeypatch.setenv("FERRY_E2E_TARGET", target)
        await migrate_and_check(stack, str(clusters.kubeconfig_path), tmp_path)
