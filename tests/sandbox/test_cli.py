"""``python -m sandbox serve`` / ``seed`` and ``python -m sandbox.apps fill`` from the command line."""

from __future__ import annotations

import asyncio
import re
import signal
import sys
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


async def test_serve_prints_its_url_writes_a_kubeconfig_and_can_be_seeded_and_filled(tmp_path: Path) -> None:
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
        str(tmp_path),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    assert server.stdout is not None
    try:
        async with asyncio.timeout(20):
            line = (await server.stdout.readline()).decode()
        url = re.search(r"http://127\.0\.0\.1:\d+", line)
        assert url, line
        kubeconfig = yaml.safe_load((tmp_path / "kubeconfig").read_text())
        assert kubeconfig["contexts"][0]["name"] == "east"
        assert kubeconfig["clusters"][0]["cluster"]["server"] == url.group(0)
        seeded = await _run("-m", "sandbox", "seed", "--server", url.group(0), str(SHOP_DIR))
        assert "Deployment/web" in seeded
        filled = await _run("-m", "sandbox.apps", "fill", "--server", url.group(0), "--size", "1MB")
        assert "web-uploads:" in filled and "pgdata-db-0:" in filled
        api = client.ApiClient(client.Configuration(host=url.group(0)))
        try:
            promos = await client.CustomObjectsApi(api).list_namespaced_custom_object(
                "shop.ferry.dev", "v1", "shop", "promotions"
            )
            assert [p["metadata"]["name"] for p in promos["items"]] == ["winter-sale"]
        finally:
            await api.close()
    finally:
        server.send_signal(signal.SIGTERM)
        async with asyncio.timeout(20):
            await server.wait()
    assert server.returncode == 0
