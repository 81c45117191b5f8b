"""Snapshots over HTTP, answered by the snapshot service's real catalog endpoints on a real repository."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path

import msgspec
import pytest

from services.snapshot.endpoints import CatalogEndpoints
from shared.bus.client import BusClient
from shared.contracts import snapshots as c
from shared.repository import Repository
from shared.repository.blobs import put_blob
from shared.runtime import Service, Settings
from shared.store import LocalStore
from tests.cli.conftest import invoke
from tests.gateway.stack import TOKENS, Gateway, ferry_stack, running

PASSWORD = "gateway tests only"


class Catalog(Service):
    """Only the snapshot service's catalog endpoints (no step consumer, no cluster access)."""

    name = "snapshot-catalog"

    async def setup(self) -> None:
        assert self.micro is not None
        self.endpoints = CatalogEndpoints(self.settings)
        await self.endpoints.register(self.micro)

    async def teardown(self) -> None:
        self.endpoints.close()


@pytest.fixture
def repository(tmp_path: Path) -> Path:
    """A repository holding one Ferry snapshot: the manifests record the snapshot step writes last."""
    path = tmp_path / "repository"
    repo = Repository.init(LocalStore(path), PASSWORD.encode(), scrypt_n=2**10, pack_size=1024 * 1024)
    tags = {
        c.APP_TAG: "shop",
        c.CLUSTER_TAG: "east",
        c.NAMESPACES_TAG: "shop",
        c.REQUEST_TAG: "replicate-1",
        c.COUNTS_TAG: json.dumps({"configmaps": 2, "deployments.apps": 1}),
        c.CONSISTENCY_TAG: "csi",
    }
    put_blob(repo, b'{"items": []}', name=c.MANIFESTS, group="snap-shop-1", tags=tags)
    repo.close()
    return path


@pytest.fixture
async def catalog_gateway(settings: Settings, client: BusClient, repository: Path) -> AsyncIterator[Gateway]:
    with_repo = msgspec.structs.replace(settings, repository=str(repository), repo_password=PASSWORD)
    async with running(Catalog(with_repo)), ferry_stack(with_repo, client, steps=False) as gateway:
        yield gateway


async def call(gateway: Gateway, method: str, path: str, who: str = "read") -> tuple[int, dict]:
    async with gateway.session.request(method, gateway.url + path, headers=gateway.auth(who)) as response:
        return response.status, await response.json()


async def test_snapshots_are_listed_filtered_described_and_deleted(catalog_gateway: Gateway) -> None:
    status, listed = await call(catalog_gateway, "GET", "/v1/snapshots")
    assert status == 200
    (summary,) = msgspec.convert(listed, c.SnapshotList).items
    assert (summary.id, summary.app, summary.cluster, summary.namespaces) == (
        "snap-shop-1",
        "shop",
        "east",
        ["shop"],
    )
    assert summary.objects == 3 and summary.request_id == "replicate-1"
    assert (await call(catalog_gateway, "GET", "/v1/snapshots?cluster=east&limit=5"))[1]["items"] != []
    assert (await call(catalog_gateway, "GET", "/v1/snapshots?cluster=west"))[1] == {"items": []}

    status, detail = await call(catalog_gateway, "GET", "/v1/snapshots/snap-shop-1")
    assert status == 200
    assert msgspec.convert(detail, c.SnapshotDetail).counts == {"configmaps": 2, "deployments.apps": 1}
    status, missing = await call(catalog_gateway, "GET", "/v1/snapshots/snap-nope")
    assert (status, missing["code"]) == (404, "not-found")

    status, refused = await call(catalog_gateway, "DELETE", "/v1/snapshots/snap-shop-1", "cli")
    assert (status, refused["code"]) == (403, "forbidden")
    status, deleted = await call(catalog_gateway, "DELETE", "/v1/snapshots/snap-shop-1", "admin")
    assert status == 200 and deleted["id"] == "snap-shop-1"
    assert (await call(catalog_gateway, "GET", "/v1/snapshots"))[1] == {"items": []}


@pytest.mark.parametrize(
    ("path", "field"),
    [
        pytest.param("/v1/snapshots?colour=red", "colour", id="an unknown filter"),
        pytest.param("/v1/snapshots?limit=-1", "limit", id="a limit that is not a positive integer"),
        pytest.param("/v1/snapshots/snap-shop-1?colour=red", "colour", id="an unknown parameter on describe"),
    ],
)
async def test_bad_snapshot_queries_name_the_parameter(
    catalog_gateway: Gateway, path: str, field: str
) -> None:
    status, error = await call(catalog_gateway, "GET", path)
    assert (status, error["field"]) == (400, field)


async def test_an_unknown_repository_is_reported_by_the_catalog(catalog_gateway: Gateway) -> None:
    status, error = await call(catalog_gateway, "GET", "/v1/snapshots?repository=mars")
    assert status == 400 and "unknown repository" in error["error"]


@pytest.fixture
def three_snapshots(repository: Path) -> Path:
    """The repository with two more snapshots of the shop, newer than the first."""
    repo = Repository.open(LocalStore(repository), PASSWORD.encode())
    for n in (2, 3):
        tags = {
            c.APP_TAG: "shop",
            c.CLUSTER_TAG: "east",
            c.NAMESPACES_TAG: "shop",
            c.REQUEST_TAG: f"replicate-{n}",
        }
        put_blob(repo, b'{"items": []}', name=c.MANIFESTS, group=f"snap-shop-{n}", tags=tags)
    repo.close()
    return repository


async def test_a_retention_policy_keeps_the_newest_and_prunes_the_rest(
    settings: Settings, client: BusClient, three_snapshots: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with_repo = msgspec.structs.replace(settings, repository=str(three_snapshots), repo_password=PASSWORD)
    async with running(Catalog(with_repo)), ferry_stack(with_repo, client, steps=False) as gateway:
        body = json.dumps({"keep_last": 1}).encode()
        async with gateway.session.post(gateway.url + "/v1/snapshots/retention", data=body,
                                        headers=gateway.auth("cli")) as response:  # fmt: skip
            assert response.status == 403  # deleting is for admins
        async with gateway.session.post(gateway.url + "/v1/snapshots/retention", data=b"{}",
                                        headers=gateway.auth("admin")) as response:  # fmt: skip
            assert response.status == 400 and (await response.json())["field"] == "keep_last"

        monkeypatch.setenv("FERRY_TOKEN", TOKENS["admin"])
        preview = await invoke("snapshots", "--keep-last", "1", "--dry-run", "--url", gateway.url)
        assert preview.code == 0, preview.err
        assert "kept 1, would remove 2 snapshot(s)" in preview.out
        assert len((await call(gateway, "GET", "/v1/snapshots"))[1]["items"]) == 3

        applied = await invoke("snapshots", "--keep-last", "1", "--url", gateway.url, "-o", "json")
        assert applied.code == 0, applied.err
        result = msgspec.convert(json.loads(applied.out), c.RetentionResult)
        assert result.kept == ["snap-shop-3"] and sorted(result.removed) == ["snap-shop-1", "snap-shop-2"]
        listed = (await call(gateway, "GET", "/v1/snapshots"))[1]["items"]
        assert [s["id"] for s in listed] == ["snap-shop-3"]
        on_the_bus = await invoke("snapshots", "--keep-within", "1h", "--dry-run", "--bus", settings.nats.url)
        assert on_the_bus.code == 0, on_the_bus.err
        assert "kept 1, would remove 0 snapshot(s)" in on_the_bus.out
