"""``python -m sandbox serve`` / ``seed`` and ``python -m sandbox.apps fill`` from the command line."""

from __future__ import annotations

import asyncio
import contextlib
import re
import signal
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import yaml
from kubernetes_asyncio import client

from sandbox.apps import SHOP_DIR


async def _run(*args: str) -> str:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, *args, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    async with asyncio.timeout(30):
        out, err = await proc.communicate()
    assert proc.returncode == 0, err.decode()
    return out.decode()


@contextlib.asynccontextmanager
async def _serving(data: Path, *flags: str) -> AsyncIterator[str]:
    """``python -m sandbox serve`` on a free port until SIGTERM; the URL it prints."""
    server = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "sandbox",
        "serve",
        "--name",
        "east",
        "--port",
        "0",
        "--data",
        str(data),
        *flags,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    assert server.stdout is not None
    try:
        async with asyncio.timeout(20):
            line = (await server.stdout.readline()).decode()
        url = re.search(r"http://127\.0\.0\.1:\d+", line)
        assert url, line
        yield url.group(0)
    finally:
        server.send_signal(signal.SIGTERM)
        async with asyncio.timeout(20):
            await server.wait()
    assert server.returncode == 0


async def test_serve_prints_its_url_writes_a_kubeconfig_and_can_be_seeded_and_filled(tmp_path: Path) -> None:
    async with _serving(tmp_path) as url:
        kubeconfig = yaml.safe_load((tmp_path / "kubeconfig").read_text())
        assert kubeconfig["contexts"][0]["name"] == "east"
        assert kubeconfig["clusters"][0]["cluster"]["server"] == url
        seeded = await _run("-m", "sandbox", "seed", "--server", url, str(SHOP_DIR))
        assert "Deployment/web" in seeded
        filled = await _run("-m", "sandbox.apps", "fill", "--server", url, "--size", "1MB")
        assert "web-uploads:" in filled and "pgdata-db-0:" in filled
        api = client.ApiClient(client.Configuration(host=url))
        try:
            promos = await client.CustomObjectsApi(api).list_namespaced_custom_object(
                "shop.ferry.dev", "v1", "shop", "promotions"
            )
            assert [p["metadata"]["name"] for p in promos["items"]] == ["winter-sale"]
        finally:
            await api.close()


async def test_serve_switches_controllers_off_so_nothing_they_seed_exists(tmp_path: Path) -> None:
    flags = ("--no-storage", "--no-snapshots", "--no-workloads", "--no-kubelet")
    async with _serving(tmp_path, *flags) as url:
        api = client.ApiClient(client.Configuration(host=url))
        try:
            classes = await client.StorageV1Api(api).list_storage_class()
            snapshot_classes = await client.CustomObjectsApi(api).list_cluster_custom_object(
                "snapshot.storage.k8s.io", "v1", "volumesnapshotclasses"
            )
            nodes = await client.CoreV1Api(api).list_node()  # both workloads and the kubelet add it
            namespaces = await client.CoreV1Api(api).list_namespace()
        finally:
            await api.close()
    assert classes.items == [] and snapshot_classes["items"] == [] and nodes.items == []
    assert "default" in [n.metadata.name for n in namespaces.items]  # the rest of the cluster is there
