"""A Secret's value never reaches the bus or the gateway; it reaches the target cluster.

An application in east holds a Secret (applied with ``kubectl apply``, so its
``last-applied-configuration`` annotation repeats the value) and a ConfigMap its owner marked
``ferry.dev/sensitive: "true"`` (a value in ``data``, another in ``binaryData``). Every real service
runs — intake, preflight, discovery, snapshot, transfer, restore, verify and the gateway — for three
requests: a migration to west (its ``expectation``, which verify checks); after someone changed the
values in west, a dry-run restore of that snapshot over them (its ``rendered`` objects, and a
``restore_report`` that shows how the target differs); and a dry-run migration (discovery's
``Report``). Then each value, the changed ones too, is looked for, as it is and base64-encoded:

- in every file of the nats-server's JetStream store (streams, KV buckets, object stores), raw bytes;
- in every document the gateway serves a ``read`` token for these requests, their events (as a
  server-sent event stream) and the snapshot catalog;
- in every event of the requests, read from the bus;
- in the repositories' files (encrypted: nothing readable).

It must be found nowhere — and it must be in west after the real restore, and in the snapshot once
the repository is opened with its key: the values travel only inside the encrypted repository.
"""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import msgspec
import nats
import pytest

from sandbox import SandboxClusters
from sandbox.localstack import NatsServer
from services.discovery.discovering import DiscoveryService
from services.discovery.preflight import PreflightService
from services.gateway.service import GatewayService
from services.intake.intake import IntakeService
from services.restore import manifests
from services.restore.service import RestoreOptions, RestoreService
from services.snapshot.snapshotting import SnapshotService
from services.transfer.transferring import TransferOptions, TransferService
from services.verify.service import VerifyService
from shared.bus.client import DOCUMENTS, BusClient
from shared.contracts.requests import MobilityRequest, RequestKind, Source, Target
from shared.contracts.states import Phase
from shared.repository import Repository
from shared.runtime import Settings, load_settings
from shared.store import LocalStore
from tests.gateway.stack import TOKENS, gateway_config
from tests.restore.conftest import kube_cluster
from tests.store.conftest import FAST_SCRYPT, PASSWORD

SENSITIVE = "ferry.dev/sensitive"
LAST_APPLIED = "kubectl.kubernetes.io/last-applied-configuration"


@dataclass(frozen=True)
class Values:
    """The values the application holds: each must stay out of everything Ferry stores or serves."""

    secret: str  # Secret db/PASSWORD
    config: str  # ConfigMap keys (marked sensitive), data/API_KEY
    binary: bytes  # ConfigMap keys, binaryData/key.bin
    changed: str  # what someone wrote over the Secret's and the ConfigMap's value in west

    def needles(self) -> dict[str, bytes]:
        """Each value as it could appear: as it is, and base64-encoded (Secret data, binaryData)."""
        found = {}
        for name, value in (("secret", self.secret.encode()), ("config", self.config.encode()),
                            ("binary", self.binary), ("changed", self.changed.encode())):  # fmt: skip
            found[f"the {name} value"] = value
            found[f"the {name} value in base64"] = base64.b64encode(value)
        return found


def b64(value: bytes | str) -> str:
    return base64.b64encode(value.encode() if isinstance(value, str) else value).decode()


def application(namespace: str, values: Values) -> list[dict[str, Any]]:
    secret: dict[str, Any] = {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": "db", "namespace": namespace},
        "type": "Opaque",
        "data": {"PASSWORD": b64(values.secret), "USER": b64("app")},
    }
    applied = json.dumps(secret, sort_keys=True)  # what `kubectl apply` leaves on the object
    secret["metadata"]["annotations"] = {LAST_APPLIED: applied}
    keys = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": "keys", "namespace": namespace, "annotations": {SENSITIVE: "true"}},
        "data": {"API_KEY": values.config, "REGION": "eu"},
        "binaryData": {"key.bin": b64(values.binary)},
    }
    plain = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": "settings", "namespace": namespace},
        "data": {"LOG_LEVEL": "debug"},
    }
    return [secret, keys, plain]


@pytest.fixture
def values(unique: str) -> Values:
    return Values(secret=f"pw-{unique}-4d0c9e1f77a2", config=f"key-{unique}-b83e02c6d51f",
                  binary=f"bin-{unique}-\x00\x01-9af31c".encode(), changed=f"new-{unique}-e5a0c4b19d37")  # fmt: skip


@pytest.fixture
def settings(nats_server: NatsServer, tmp_path: Path, sandbox_pair: SandboxClusters) -> Settings:
    for region in ("east", "west"):
        Repository.init(LocalStore(tmp_path / region), PASSWORD, scrypt_n=FAST_SCRYPT).close()
    return load_settings({}, nats={"url": nats_server.url}, http_port=0, http_host="127.0.0.1", ack_wait=30.0,
                         lease=30.0, max_attempts=2, drain_grace=2.0, concurrency=1,
                         kubeconfig=str(sandbox_pair.kubeconfig_path), repo_password=PASSWORD.decode(),
                         repositories={"east": str(tmp_path / "east"), "west": str(tmp_path / "west")})  # fmt: skip


@dataclass
class Ferry:
    client: BusClient
    gateway: GatewayService


@pytest.fixture
async def ferry(settings: Settings) -> AsyncIterator[Ferry]:
    """Every service of a deployment, in this process, and the gateway with the test tokens."""
    nc = await nats.connect(settings.nats.url)
    gateway = GatewayService(settings, config=gateway_config(settings.kubeconfig))
    async with (
        IntakeService(settings),
        PreflightService(settings),
        DiscoveryService(settings),
        SnapshotService(settings),
        TransferService(settings, options=TransferOptions(threads=2)),
        RestoreService(settings, options=RestoreOptions(timeout=30, mover_timeout=60)),
        VerifyService(settings),
        gateway,
    ):
        yield Ferry(BusClient(nc, timeout=5), gateway)
    await nc.close()


@pytest.fixture
async def app(sandbox_pair: SandboxClusters, unique: str, values: Values) -> AsyncIterator[str]:
    """The application in east, in a namespace of its own (the clusters live for the whole session)."""
    namespace = f"vault-{unique}"
    east = kube_cluster(sandbox_pair, "east")
    try:
        await east.create({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": namespace}})
        for obj in application(namespace, values):
            await east.create(obj)
        yield namespace
    finally:
        await east.close()


def migrate(namespace: str, target: str, *, dry_run: bool = False) -> MobilityRequest:
    return MobilityRequest(kind=RequestKind.MIGRATE, dry_run=dry_run,
                           source=Source(cluster="east", namespaces=[namespace], repository="east"),
                           target=Target(cluster="west", repository="west", namespace_map={namespace: target}))  # fmt: skip


def dry_restore(namespace: str, target: str, snapshot: str) -> MobilityRequest:
    return MobilityRequest(kind=RequestKind.RESTORE, dry_run=True,
                           source=Source(cluster="east", namespaces=[namespace], repository="east", snapshot=snapshot),
                           target=Target(cluster="west", repository="west", namespace_map={namespace: target}))  # fmt: skip


def where(haystacks: dict[str, bytes], needles: dict[str, bytes]) -> list[str]:
    """``"<needle> in <haystack>"`` for every needle found in a haystack."""
    return [f"{n} in {h}" for h, data in haystacks.items() for n, needle in needles.items() if needle in data]


def files(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


async def served(ferry: Ferry, request_ids: list[str], snapshot: str) -> dict[str, bytes]:
    """Everything the gateway answers a ``read`` token about these requests and their snapshot."""
    headers = {"Authorization": f"Bearer {TOKENS['read']}"}
    paths = ["/v1/requests", "/v1/snapshots?repository=east", f"/v1/snapshots/{snapshot}?repository=east"]
    for rid in request_ids:
        paths += [f"/v1/requests/{rid}", f"/v1/requests/{rid}/events"]
        paths += [f"/v1/requests/{rid}/documents/{document}" for document in DOCUMENTS]
    out: dict[str, bytes] = {}
    async with aiohttp.ClientSession(headers=headers) as http:
        for path in paths:
            async with http.get(ferry.gateway.url + path) as response:
                if response.status == 404 and "/documents/" in path:
                    continue  # a document this request does not have
                assert response.status == 200, (path, response.status, await response.text())
                out[f"GET {path}"] = await response.read()
    return out


async def events(client: BusClient, request_ids: list[str]) -> dict[str, bytes]:
    out: dict[str, bytes] = {}
    for rid in request_ids:
        async for seq, event in client.events(rid, follow=False):
            out[f"event {seq} of {rid} ({type(event).__name__})"] = msgspec.json.encode(event)
    return out


async def test_no_secret_value_is_stored_on_the_bus_or_served_and_the_target_gets_them_all(
    ferry: Ferry,
    app: str,
    values: Values,
    sandbox_pair: SandboxClusters,
    nats_server: NatsServer,
    tmp_path: Path,
) -> None:
    client = ferry.client
    moved = await client.wait(await client.submit(migrate(app, f"{app}-west")), within=120)
    assert moved.phase is Phase.COMPLETED, moved.reason
    assert {"inventory", "restore_report", "expectation", "verification"} <= set(moved.outputs)
    snapshot = moved.outputs["snapshot"]

    # Every value is where it belongs: in west, and in the snapshot, opened with its key.
    west = kube_cluster(sandbox_pair, "west")
    try:
        secret = await west.get("secrets", "db", f"{app}-west")
        keys = await west.get("configmaps", "keys", f"{app}-west")
        assert secret["data"]["PASSWORD"] == b64(values.secret), "the restored Secret lost its value"
        assert keys["data"]["API_KEY"] == values.config and keys["binaryData"]["key.bin"] == b64(
            values.binary
        )
        assert keys["metadata"]["annotations"][SENSITIVE] == "true"
        captured = manifests.load(Repository.open(LocalStore(tmp_path / "west"), PASSWORD), snapshot)
        kept = {(m.obj["kind"], m.obj["metadata"]["name"]): m.obj for m in captured.items}
        assert kept[("Secret", "db")]["data"]["PASSWORD"] == b64(values.secret)
        assert kept[("ConfigMap", "keys")]["data"]["API_KEY"] == values.config
        # Someone changes both values in west; a dry-run restore of the snapshot shows the differences.
        await west.patch(
            "secrets", "db", {"data": {"PASSWORD": b64(values.changed)}}, namespace=f"{app}-west"
        )
        await west.patch("configmaps", "keys", {"data": {"API_KEY": values.changed}}, namespace=f"{app}-west")
    finally:
        await west.close()
    rendered = await client.wait(await client.submit(dry_restore(app, f"{app}-west", snapshot)), within=60)
    assert rendered.phase is Phase.COMPLETED, rendered.reason
    assert {"rendered", "restore_report"} <= set(rendered.outputs)
    reported = await client.wait(await client.submit(migrate(app, f"{app}-x", dry_run=True)), within=60)
    assert reported.phase is Phase.COMPLETED, reported.reason
    request_ids = [moved.id, rendered.id, reported.id]

    # The documents still describe the sensitive objects, by digest.
    headers = {"Authorization": f"Bearer {TOKENS['read']}"}
    async with aiohttp.ClientSession(headers=headers) as http:
        url = f"{ferry.gateway.url}/v1/requests/{moved.id}/documents/inventory"
        async with http.get(url) as response:
            inventory = await response.json()
        url = f"{ferry.gateway.url}/v1/requests/{rendered.id}/documents/restore_report"
        async with http.get(url) as response:
            report = {o["target"]: o for o in (await response.json())["objects"]}
    shown = {i["key"]: i["object"] for i in inventory["items"]}
    assert shown[f"secrets/{app}/db"]["data"]["PASSWORD"].startswith("sha256:")
    assert shown[f"configmaps/{app}/keys"]["data"]["API_KEY"].startswith("sha256:")
    assert shown[f"configmaps/{app}/settings"]["data"] == {"LOG_LEVEL": "debug"}  # not marked: as read
    assert report[f"secrets/{app}-west/db"]["diff"], "the dry run did not see the changed Secret"

    needles = values.needles()
    jetstream = nats_server.store_dir / "jetstream"
    found = where(files(jetstream), needles)
    found += where(await served(ferry, request_ids, snapshot), needles)
    found += where(await events(client, request_ids), needles)
    found += where({f"repository {k}": v for k, v in files(tmp_path / "east").items()}, needles)
    found += where({f"repository {k}": v for k, v in files(tmp_path / "west").items()}, needles)
    assert not found, "a sensitive value leaked:\n" + "\n".join(found)
    # The search can see what the store holds (no compression, no encryption hides a value from it):
    # the Secret's digest, which the inventory carries, is found in the raw files.
    digest = ("sha256:" + hashlib.sha256(b64(values.secret).encode()).hexdigest()).encode()
    assert where(files(jetstream), {"the digest": digest}), "the raw store does not show the inventory"
