"""A restore does exactly what was asked: the request's scope, named objects, single volume paths, cancel.

Real nats-server, a real repository and real ``ferry-mover`` processes; the cluster is the in-memory
one of tests/restore/fakes.py (its volumes are directories; deleting a mover Job kills its process).
"""

from __future__ import annotations

import json
import secrets
import time
from pathlib import Path
from typing import Any

import pytest

from shared.bus.client import BusClient
from shared.contracts.requests import RestoreScope, Source
from shared.contracts.states import Phase
from shared.repository import Repository, backup, put_blob
from shared.runtime import Settings
from shared.store import LocalStore
from tests.repository.trees import file_hashes, random_files
from tests.restore.fakes import FakeCluster
from tests.restore.test_engine import APP
from tests.store.conftest import FAST_SCRYPT, PASSWORD
from tests.verify.stack import document, request, steps
from tests.waiting import eventually

WEB_CONF = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "web-conf", "namespace": "shop",
            "labels": {"app": "web"}}, "data": {"port": "8080"}}  # fmt: skip
DB_CONF = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "db-conf", "namespace": "shop",
           "labels": {"app": "db"}}, "data": {"port": "5432"}}  # fmt: skip


def snapshot_of(root: Path, data: Path) -> str:
    repo = Repository.init(LocalStore(root / "west"), PASSWORD, scrypt_n=FAST_SCRYPT, pack_size=4 << 20)
    group = secrets.token_hex(8)
    backup(repo, data, name="shop/data", group=group)
    items = [dict(o) for o in APP] + [WEB_CONF, DB_CONF]
    put_blob(repo, json.dumps({"kind": "List", "items": items}).encode(), name="manifests", group=group)
    return group


def scoped(group: str, **source: Any) -> Source:
    return Source(cluster="east", repository="west", snapshot=group, **source)


async def test_include_resources_and_a_selector_restore_exactly_those_objects(
    settings: Settings, tmp_path: Path
) -> None:
    random_files(tmp_path / "src", 2, 10_000)
    group = snapshot_of(tmp_path, tmp_path / "src")
    cluster = FakeCluster(volumes=tmp_path / "volumes")
    async with steps(settings, cluster) as client:
        req = request(group, source=scoped(group, include_resources=["configmaps"], selector="app=web"))
        state = await client.wait(await client.submit(req), within=120)
    assert state.phase is Phase.COMPLETED, state.reason
    assert sorted(k for k in cluster.objects if not k.startswith("secrets/")) == [
        "configmaps/shop-west/web-conf",
        "namespaces/shop-west",  # taken with what it holds
    ]
    restored, verified = (s.result for s in state.steps)
    assert restored is not None and restored.counts["not_selected"] == 7
    assert (
        verified is not None and verified.counts["objects_expected"] == 2 and verified.counts["volumes"] == 0
    )


async def test_a_named_object_and_a_single_volume_path_are_all_that_lands(
    settings: Settings, tmp_path: Path
) -> None:
    random_files(tmp_path / "src" / "base" / "16", 3, 50_000, seed=2)
    random_files(tmp_path / "src" / "base" / "17", 3, 50_000, seed=3)
    group = snapshot_of(tmp_path, tmp_path / "src")
    cluster = FakeCluster(volumes=tmp_path / "volumes")
    scope = RestoreScope(resources=["configmap/db-conf"], volume_paths=["shop/data:/base/16"])
    async with steps(settings, cluster) as client:
        state = await client.wait(await client.submit(request(group, restore=scope)), within=120)
    assert state.phase is Phase.COMPLETED, state.reason
    assert sorted(k for k in cluster.objects if not k.startswith(("secrets/", "jobs"))) == [
        "configmaps/shop-west/db-conf",
        "namespaces/shop-west",
        "persistentvolumeclaims/shop-west/data",
    ]
    landed = tmp_path / "volumes" / "shop-west" / "data"
    assert file_hashes(landed) == {
        f"base/16/{k}": v for k, v in file_hashes(tmp_path / "src" / "base" / "16").items()
    }
    verified = state.steps[-1].result
    assert verified is not None and verified.counts["files_verified"] == 3  # only the path is proven


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        pytest.param({"source": {"selector": "app=nothing"}}, "nothing to restore: no object of the snapshot matches selector app=nothing",
                     id="a selector that matches nothing is an error, not a silent no-op"),
        pytest.param({"restore": RestoreScope(resources=["deployment/api"])}, "the snapshot has no 'deployment/api'",
                     id="a named object the snapshot lacks is an error naming it"),
        pytest.param({"restore": RestoreScope(volume_paths=["shop/logs:/x"])}, "the snapshot has no claim shop/logs",
                     id="a volume path of a claim the snapshot lacks is an error naming it"),
    ],
)  # fmt: skip
async def test_an_empty_or_wrong_selection_fails_naming_what_was_asked(
    settings: Settings, tmp_path: Path, changes: dict[str, Any], message: str
) -> None:
    random_files(tmp_path / "src", 1, 1000)
    group = snapshot_of(tmp_path, tmp_path / "src")
    if "source" in changes:
        changes = {"source": scoped(group, **changes["source"])}
    cluster = FakeCluster(volumes=tmp_path / "volumes")
    async with steps(settings, cluster) as client:
        state = await client.wait(await client.submit(request(group, **changes)), within=60)
    assert state.phase is Phase.FAILED and message in state.reason
    assert cluster.writes == []


async def test_cancel_stops_a_running_restore_removes_its_movers_and_says_what_it_wrote(
    settings: Settings, tmp_path: Path
) -> None:
    random_files(tmp_path / "src", 30, 10_000_000, seed=5)  # 300 MB
    group = snapshot_of(tmp_path, tmp_path / "src")
    cluster = FakeCluster(volumes=tmp_path / "volumes")
    async with steps(settings, cluster) as client:
        request_id = await client.submit(request(group))
        await eventually(lambda: bool(cluster.processes), within=60, what="the mover writing the volume")
        cancelled_at = time.monotonic()
        await client.cancel(request_id)
        state = await client.wait(request_id, within=30)
        took = time.monotonic() - cancelled_at
        events = [e async for _, e in client.events(request_id, follow=False, idle=0.3)]
        report = json.loads(await document_or_empty(client, f"{request_id}/restore-report.json"))
    assert state.phase is Phase.CANCELLED
    assert took < 10, f"Cancelled {took:.1f}s after the cancel"
    assert not [k for k in cluster.objects if k.startswith(("jobs.batch/", "secrets/shop-west/ferry-mover"))]
    assert all(p.returncode is not None for p in cluster.processes.values()), "a mover still runs"
    written = {r["target"] for r in report["objects"] if r["outcome"] == "created"}
    assert {"namespaces/shop-west", "persistentvolumeclaims/shop-west/data"} <= written
    assert "deployments.apps/shop-west/web" not in written  # its volume was never filled
    warning = next(e for e in events if getattr(e, "message", "").startswith("cancelled:"))
    assert "persistentvolumeclaims/shop-west/data" in warning.message


async def document_or_empty(client: BusClient, name: str) -> bytes:
    try:
        return await document(client, name)
    except Exception:  # noqa: BLE001 - the assertion after it says what is missing
        return b'{"objects": []}'
