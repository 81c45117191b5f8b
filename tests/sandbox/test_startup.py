"""Two sandbox clusters start quickly and are reachable through one kubeconfig with two contexts."""

from __future__ import annotations

import time
from pathlib import Path

import yaml
from kubernetes_asyncio import client, config

from sandbox import SandboxCluster, sandbox_clusters


async def test_two_clusters_start_in_under_two_seconds_with_one_kubeconfig(tmp_path: Path) -> None:
    started = time.monotonic()
    async with sandbox_clusters(tmp_path) as clusters:
        elapsed = time.monotonic() - started
        assert elapsed < 2.0, f"two clusters took {elapsed:.2f}s"
        kubeconfig = yaml.safe_load(clusters.kubeconfig_path.read_text())
        assert [c["name"] for c in kubeconfig["contexts"]] == ["east", "west"]
        for context in ("east", "west"):
            api = await config.new_client_from_config(str(clusters.kubeconfig_path), context=context)
            try:
                names = [n.metadata.name for n in (await client.CoreV1Api(api).list_namespace()).items]
                assert names == ["default", "kube-node-lease", "kube-public", "kube-system"]
            finally:
                await api.close()


async def test_one_cluster_writes_a_kubeconfig_with_its_own_context(tmp_path: Path) -> None:
    async with SandboxCluster("solo", tmp_path / "solo") as c:
        kubeconfig = yaml.safe_load(c.kubeconfig_path.read_text())
        assert kubeconfig["current-context"] == "solo"
        assert kubeconfig["clusters"][0]["cluster"]["server"] == c.url
        api = await config.new_client_from_config(str(c.kubeconfig_path), context="solo")
        try:
            version = await client.VersionApi(api).get_code()
            assert version.major == "1"
        finally:
            await api.close()
