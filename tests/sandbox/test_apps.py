"""The shop sample application installs on a sandbox and its volumes fill with varied data."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from kubernetes_asyncio import client

from sandbox import SandboxCluster
from sandbox.apps import SHOP_DIR, fill, fill_directory, install_shop, parse_size
from sandbox.seeding import load_documents


async def test_the_shop_installs_and_its_volumes_fill_to_the_requested_size(tmp_path: Path) -> None:
    async with SandboxCluster("shop", tmp_path / "cluster") as cluster:
        applied = await install_shop(cluster.url)
        assert "Promotion/winter-sale" in applied and "StatefulSet/db" in applied
        filled = await fill(cluster.url, "shop", "4MB")
        assert sorted(f.claim for f in filled) == ["pgdata-db-0", "web-uploads"]
        assert sum(f.bytes for f in filled) == 4_000_000
        api = client.ApiClient(client.Configuration(host=cluster.url))
        try:
            core = client.CoreV1Api(api)
            for f in filled:
                pvc = await core.read_namespaced_persistent_volume_claim(f.claim, "shop")
                assert f.path == cluster.volume_path(pvc.spec.volume_name)
            pg = await core.read_namespaced_persistent_volume_claim("pgdata-db-0", "shop")
            assert pg.spec.storage_class_name == "fast"
            kinds = {
                "ingresses": await client.NetworkingV1Api(api).list_namespaced_ingress("shop"),
                "networkpolicies": await client.NetworkingV1Api(api).list_namespaced_network_policy("shop"),
                "cronjobs": await client.BatchV1Api(api).list_namespaced_cron_job("shop"),
                "rolebindings": await client.RbacAuthorizationV1Api(api).list_namespaced_role_binding("shop"),
            }
            assert all(len(found.items) == 1 for found in kinds.values())
        finally:
            await api.close()


def test_the_fill_layout_has_every_kind_of_file(tmp_path: Path) -> None:
    files, written = fill_directory(tmp_path, 600_000, seed=1)
    assert written == 600_000 and files > 5
    assert (tmp_path / "empty.txt").stat().st_size == 0
    assert (tmp_path / "empty-dir").is_dir()
    assert os.readlink(tmp_path / "links" / "to-blob") == "../large/blob.bin"
    assert (tmp_path / "links" / "dangling").is_symlink() and not (tmp_path / "links" / "dangling").exists()
    suffixes = {p.suffix for p in tmp_path.rglob("*") if p.is_file() and not p.is_symlink()}
    assert {".txt", ".bin", ".dat", ".json"} <= suffixes


def test_the_same_seed_gives_the_same_bytes(tmp_path: Path) -> None:
    fill_directory(tmp_path / "a", 200_000, seed=7)
    fill_directory(tmp_path / "b", 200_000, seed=7)
    a = sorted(
        (p.relative_to(tmp_path / "a"), p.read_bytes()) for p in (tmp_path / "a").rglob("*") if p.is_file()
    )
    b = sorted(
        (p.relative_to(tmp_path / "b"), p.read_bytes()) for p in (tmp_path / "b").rglob("*") if p.is_file()
    )
    assert a == b


SIZES = [
    pytest.param("200MB", 200_000_000, id="decimal megabytes"),
    pytest.param("1.5GiB", int(1.5 * 2**30), id="binary gibibytes"),
    pytest.param("512k", 512_000, id="a bare unit letter"),
    pytest.param("1000", 1000, id="plain bytes"),
]


@pytest.mark.parametrize(("text", "size"), SIZES)
def test_sizes_are_parsed(text: str, size: int) -> None:
    assert parse_size(text) == size


def test_the_sample_app_has_every_kind_a_migration_must_handle() -> None:
    kinds = {d["kind"] for d in load_documents([SHOP_DIR])}
    assert {
        "Namespace",
        "CustomResourceDefinition",
        "Promotion",
        "StatefulSet",
        "Deployment",
        "PersistentVolumeClaim",
        "Service",
        "Ingress",
        "ConfigMap",
        "Secret",
        "ServiceAccount",
        "Role",
        "RoleBinding",
        "NetworkPolicy",
        "CronJob",
        "HorizontalPodAutoscaler",
    } <= kinds
