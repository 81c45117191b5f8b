"""The snapshot step end to end: discovery then snapshot of the shop app in a sandbox cluster, mover
Jobs run by the sandbox kubelet, the result read back from the repository as restore would."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import msgspec

from sandbox import SandboxClusters
from sandbox.localstack import LocalStack
from services.snapshot import catalog
from shared.bus.client import BusClient
from shared.contracts import subjects
from shared.contracts.events import Progress, Report, Warning
from shared.contracts.inventory import decode_inventory
from shared.contracts.snapshots import SnapshotDetail, SnapshotList
from shared.contracts.states import Phase
from shared.kube import Clusters
from shared.repository import Repository, read_blob, restore
from shared.runtime import Settings
from shared.runtime.repositories import open_repository
from shared.store import LocalStore
from tests.snapshot.conftest import PASSWORD, pipeline
from tests.snapshot.helpers import leftovers, snapshot_request, tree


def open_repo(settings: Settings) -> Repository:
    return Repository.open(LocalStore(Path(settings.repository)), PASSWORD.encode())


async def test_a_snapshot_holds_every_manifest_and_the_exact_bytes_of_every_volume(
    settings: Settings, client: BusClient, clusters: SandboxClusters, tmp_path: Path
) -> None:
    async with pipeline(settings):
        rid = await client.submit(snapshot_request())
        state = await client.wait(rid, within=90)
        events = [e async for _, e in client.events(rid, follow=False, idle=0.3)]
        listed = msgspec.json.decode(
            (await client.nc.request(subjects.SNAPSHOTS_LIST, b'{"cluster": "east"}', timeout=10)).data,
            type=SnapshotList,
        )
    assert state.phase is Phase.COMPLETED, state.reason
    outputs = state.outputs
    assert outputs["snapshot"] == catalog.snapshot_id_for(rid) and outputs["repository"] == "default"

    repo = open_repo(settings)
    records = repo.snapshots(group=outputs["snapshot"])
    manifests = [i for i, r in records if r.kind == "blob" and r.name == "manifests"]
    assert len(manifests) == 1
    document = json.loads(read_blob(repo, manifests[0]))
    async with Clusters(settings.kubeconfig) as kube:
        east = await kube.get("east")
        assert await leftovers(east) == []
        claims = {
            c["metadata"]["name"]: c["spec"]["volumeName"]
            for c in await east.list("persistentvolumeclaims", "shop")
        }
    js = client.nc.jetstream()
    inventory = decode_inventory(
        (await (await js.object_store("ferry-inventories")).get(outputs["inventory"])).data
    )
    captured = {f"{i['resource']}/{i['object']['metadata'].get('namespace', '')}/{i['object']['metadata']['name']}".replace("//", "/")
                for i in document["items"]}  # fmt: skip
    assert captured == {i.key for i in inventory.items if not i.owned}  # owners' controllers make the rest
    assert {i.resource for i in inventory.items if i.owned} == {"pods", "replicasets.apps"}
    assert any(
        i["object"]["kind"] == "Secret" for i in document["items"]
    )  # Secrets only ever stored encrypted

    volumes = {r.tags["ferry.dev/pvc"]: (i, r) for i, r in records if r.kind == "tree"}
    assert set(volumes) == set(claims)
    for claim, (record_id, record) in volumes.items():
        assert record.tags["ferry.dev/consistency"] == "csi"
        target = tmp_path / "restored" / claim
        restore(repo, record_id, target)
        original = tree(clusters["east"].volume_path(claims[claim]))
        assert len(original) > 10
        assert tree(target) == original, f"the bytes of {claim} differ from its volume"

    totals = [
        e
        for e in events
        if isinstance(e, Progress) and e.step and e.step.value == "snapshot" and not e.volume
    ]
    per_volume = {e.volume for e in events if isinstance(e, Progress) and e.volume}
    assert per_volume == {"shop/pgdata-db-0", "shop/web-uploads"}
    assert totals and totals[-1].items_done == totals[-1].items_total == 2
    assert totals[-1].bytes_done == totals[-1].bytes_total == sum(r.stats.bytes for _, r in volumes.values())
    assert not [e for e in events if isinstance(e, Warning)]
    reports = [e for e in events if isinstance(e, Report) and e.step and e.step.value == "snapshot"]
    assert len(reports) == 1 and reports[0].body["summary"]["volumes"] == 2
    assert {v["claim"] for v in reports[0].body["volume_records"]} == set(claims)

    assert [s.id for s in listed.items] == [outputs["snapshot"]]
    summary = listed.items[0]
    assert (summary.cluster, summary.namespaces, summary.volumes, summary.consistency) == (
        "east",
        ["shop"],
        2,
        "csi",
    )
    assert summary.objects == len(document["items"]) and summary.new_bytes > 0


async def test_a_second_snapshot_stores_only_what_changed_and_retention_keeps_the_newest(
    settings: Settings, client: BusClient, clusters: SandboxClusters
) -> None:
    async with Clusters(settings.kubeconfig) as kube:
        east = await kube.get("east")
        uploads = (await east.get("persistentvolumeclaims", "web-uploads", "shop"))["spec"]["volumeName"]
    async with pipeline(settings):
        first = await client.submit(snapshot_request(app="shop"))
        assert (await client.wait(first, within=90)).phase is Phase.COMPLETED
        (clusters["east"].volume_path(uploads) / "new-upload.bin").write_bytes(b"fresh " * 20_000)
        second = await client.submit(snapshot_request(app="shop"))
        state = await client.wait(second, within=90)
        assert state.phase is Phase.COMPLETED, state.reason

        async def ask(subject: str, body: bytes) -> bytes:
            return (await client.nc.request(subject, body, timeout=10)).data

        one = msgspec.json.decode(
            await ask(subjects.SNAPSHOTS_DESCRIBE, catalog.snapshot_id_for(first).encode()),
            type=SnapshotDetail,
        )
        two = msgspec.json.decode(
            await ask(subjects.SNAPSHOTS_DESCRIBE, catalog.snapshot_id_for(second).encode()),
            type=SnapshotDetail,
        )
        assert one.summary.new_bytes > 0.9 * one.summary.bytes, "the first snapshot stores everything"
        assert two.summary.bytes > one.summary.bytes
        assert two.summary.new_bytes < 0.1 * two.summary.bytes, (
            "the second snapshot stored unchanged data again"
        )
        changed = {v.claim: v.new_bytes for v in two.volume_records}
        assert changed["web-uploads"] >= 120_000 // 10 and changed["pgdata-db-0"] < 20_000
        assert two.counts["deployments.apps"] == 1 and two.summary.app == "shop"

        kept = json.loads(await ask(subjects.SNAPSHOTS_RETAIN, b'{"app": "shop", "keep_last": 1}'))
        assert kept["kept"] == [two.summary.id] and kept["removed"] == [one.summary.id]
        listed = json.loads(await ask(subjects.SNAPSHOTS_LIST, b"{}"))
        assert [s["id"] for s in listed["items"]] == [two.summary.id]
        missing = json.loads(await ask(subjects.SNAPSHOTS_DESCRIBE, one.summary.id.encode()))
        assert missing["type"] == "rejected" and missing["code"] == "not-found"
        deleted = json.loads(await ask(subjects.SNAPSHOTS_DELETE, two.summary.id.encode()))
        assert deleted["records_removed"] == 3
        assert json.loads(await ask(subjects.SNAPSHOTS_LIST, b"{}"))["items"] == []
    repo = open_repo(settings)
    restored_ok = repo.snapshots()
    assert restored_ok == []


async def test_a_snapshot_into_an_s3_repository_restores_to_the_same_bytes(
    settings: Settings,
    client: BusClient,
    clusters: SandboxClusters,
    s3_repository: str,
    stack: LocalStack,
    tmp_path: Path,
) -> None:
    s3 = {"endpoint": stack.s3.endpoint, "region": stack.s3.region, "access_key": stack.s3.access_key,
          "secret_key": stack.s3.secret_key}  # fmt: skip
    settings = msgspec.structs.replace(
        settings, repository=s3_repository, s3=msgspec.convert(s3, type(settings.s3))
    )
    async with pipeline(settings):
        rid = await client.submit(snapshot_request())
        state = await client.wait(rid, within=90)
    assert state.phase is Phase.COMPLETED, state.reason
    repo = await asyncio.to_thread(open_repository, settings, "", create=False)
    records = repo.snapshots(group=state.outputs["snapshot"])
    async with Clusters(settings.kubeconfig) as kube:
        east = await kube.get("east")
        volume = (await east.get("persistentvolumeclaims", "pgdata-db-0", "shop"))["spec"]["volumeName"]
        secrets_left = [s["metadata"]["name"] for s in await east.list("secrets", "shop")]
    record_id = next(i for i, r in records if r.tags.get("ferry.dev/pvc") == "pgdata-db-0")
    restore(repo, record_id, tmp_path / "restored")
    assert tree(tmp_path / "restored") == tree(clusters["east"].volume_path(volume))
    assert secrets_left == ["db-credentials"], "the mover's credentials Secret was left behind"
