"""Clusters: the kubeconfig's contexts with their reachability, probed against real sandbox API servers."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest
import yaml

from sandbox import sandbox_clusters
from shared.bus.client import BusClient
from shared.runtime import Settings
from tests.gateway.stack import ferry_stack


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def test_clusters_are_listed_with_their_reachability(
    settings: Settings, client: BusClient, tmp_path: Path
) -> None:
    async with sandbox_clusters(tmp_path / "clusters") as clusters:
        config = yaml.safe_load(clusters.kubeconfig_path.read_text())
        config["clusters"].append(
            {"name": "gone", "cluster": {"server": f"http://127.0.0.1:{closed_port()}"}}
        )
        config["users"].append({"name": "gone-admin", "user": {"token": "t0ken"}})
        config["contexts"].append({"name": "gone", "context": {"cluster": "gone", "user": "gone-admin"}})
        kubeconfig = tmp_path / "kubeconfig"
        kubeconfig.write_text(yaml.safe_dump(config))
        async with ferry_stack(settings, client, kubeconfig=str(kubeconfig), steps=False) as gateway:
            async with gateway.session.get(
                gateway.url + "/v1/clusters", headers=gateway.auth("read")
            ) as response:
                assert response.status == 200
                listed = await response.json()
    by_name = {item["name"]: item for item in listed["items"]}
    assert list(by_name) == ["east", "west", "gone"]
    assert listed["kubeconfig"] == str(kubeconfig)
    for name in ("east", "west"):
        assert by_name[name]["reachable"] is True
        assert by_name[name]["status"] == 200
        assert by_name[name]["version"].startswith("v1.")
        assert by_name[name]["server"] == clusters[name].url
    assert by_name["east"]["current"] is True
    gone = by_name["gone"]
    assert gone["reachable"] is False and gone["status"] is None
    assert "ClientConnectorError" in gone["error"] or "refused" in gone["error"].lower()


async def test_a_failovers_probe_asks_only_the_primarys_context(tmp_path: Path) -> None:
    """The policy service's probe of a primary: its context's answer, whatever the others say."""
    from services.intake.recovering import kube_probe
    from shared.contracts.errors import Invalid
    from shared.kube.probing import probe_clusters

    async with sandbox_clusters(tmp_path / "clusters") as clusters:
        config = yaml.safe_load(clusters.kubeconfig_path.read_text())
        config["clusters"].append(
            {"name": "gone", "cluster": {"server": f"http://127.0.0.1:{closed_port()}"}}
        )
        config["contexts"].append({"name": "gone", "context": {"cluster": "gone", "user": ""}})
        kubeconfig = tmp_path / "kubeconfig"
        kubeconfig.write_text(yaml.safe_dump(config))
        probe = kube_probe(str(kubeconfig))
        assert await probe("east") == (True, "east answered (HTTP 200)")
        answered, why = await probe("gone")
        only = await probe_clusters(str(kubeconfig), only="west")
        with pytest.raises(Invalid) as refused:
            await probe("nowhere")
    assert not answered and why.startswith("gone did not answer: ")
    assert [info.name for info in only.items] == ["west"] and only.items[0].reachable
    assert str(refused.value).startswith(
        "cluster nowhere is not a context of the policy service's kubeconfig"
    )
