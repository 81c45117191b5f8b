"""Drills of the sample app, east's snapshot into the west cluster, every service the real one: the
isolation a person would look for while a drill stands, RTO and RPO measured, nothing left behind,
a damaged DR repository caught by verification (and still cleaned up), and the reports listed.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import msgspec
import nats
import nats.errors
import pytest

from sandbox.localstack import NatsServer
from services.intake.drills import DrillsService
from services.restore.cleaningup import CleanupService
from services.restore.isolating import ISOLATION
from shared.bus.client import BusClient
from shared.contracts.drills import (
    DRILLS_GET,
    DRILLS_LIST,
    POLICY_LABEL,
    DrillList,
    DrillReport,
    drill_namespace,
    report_decoder,
)
from shared.contracts.requests import MobilityRequest, RequestKind, Source, Target
from shared.contracts.states import Phase, Rejected
from shared.contracts.subjects import INVENTORY_STORE
from shared.kube import Cluster
from shared.repository import Repository
from shared.repository.walking import walk
from shared.runtime import Settings, load_settings
from shared.store import LocalStore, layout
from tests.drills_dr.conftest import ferry, fill_volumes
from tests.restore.capturing import snapshot
from tests.store.conftest import FAST_SCRYPT, PASSWORD

# What the drill writes in its namespace and the clean-up must remove, by type.
WRITTEN = ["deployments.apps", "statefulsets.apps", "cronjobs.batch", "services", "configmaps", "secrets",
           "persistentvolumeclaims", "networkpolicies.networking.k8s.io"]  # fmt: skip


def drill(group: str, repository: str, *, keep: bool = False, policy: str = "") -> MobilityRequest:
    return MobilityRequest(
        kind=RequestKind.DRILL,
        source=Source(cluster="east", namespaces=["shop"], repository=repository, snapshot=group),
        target=Target(cluster="west", repository="west"),
        keep=keep,
        labels={POLICY_LABEL: policy} if policy else {},
    )


async def captured(east: Cluster, repo_dir: Path) -> str:
    """The shop, with data, as a Ferry snapshot in the repository at ``repo_dir``."""
    await fill_volumes(east)
    repo = Repository.init(LocalStore(repo_dir), PASSWORD, scrypt_n=FAST_SCRYPT)
    try:
        group, _ = await snapshot(east, "shop", repo)
    finally:
        repo.close()
    return group


async def listed(client: BusClient, subject: str, body: bytes) -> DrillList | DrillReport | Rejected:
    for _ in range(20):  # a service just started: seen once in ~20 runs answering "no responders"
        try:
            reply = await client.nc.request(subject, body, timeout=30)
            break
        except nats.errors.NoRespondersError:
            await asyncio.sleep(0.1)
    else:
        raise AssertionError(f"nothing answers on {subject}")
    if b'"type":"rejected"' in reply.data:
        return msgspec.json.decode(reply.data, type=Rejected)
    return msgspec.json.decode(reply.data, type=DrillList if subject == DRILLS_LIST else DrillReport)


async def stored_report(client: BusClient, request_id: str) -> DrillReport:
    """The report the cleanup step stored (the name its output gives)."""
    state = await client.get(request_id)
    store = await client.nc.jetstream().object_store(INVENTORY_STORE)
    found = await store.get(state.outputs["drill_report"])
    return report_decoder.decode(found.data or b"")


async def test_a_kept_drill_stands_isolated_and_measured_then_one_cleaned_up_leaves_nothing_and_both_are_listed(
    settings: Settings, kube: dict[str, Cluster], tmp_path: Path
) -> None:
    group = await captured(kube["east"], tmp_path / "east")
    cleanup = CleanupService(settings)
    async with ferry(settings, cleanup) as client:
        kept_id = await client.submit(drill(group, "east", keep=True))
        kept = await client.wait(kept_id, within=240)
        cleaned_id = await client.submit(drill(group, "east", policy="shop-dr"))
        cleaned = await client.wait(cleaned_id, within=240)
        kept_report, cleaned_report = (
            await stored_report(client, kept_id),
            await stored_report(client, cleaned_id),
        )
        every = await listed(client, DRILLS_LIST, b"")
        of_policy = await listed(client, DRILLS_LIST, b'{"policy": "shop-dr"}')
        one = await listed(client, DRILLS_GET, kept_id.encode())
        unknown = await listed(client, DRILLS_GET, b"drill-nope")
    assert kept.phase is Phase.COMPLETED, kept.reason
    assert cleaned.phase is Phase.COMPLETED, cleaned.reason
    west, ns = kube["west"], drill_namespace("shop", kept_id)

    # The kept drill stands in its own namespace, isolated; the real one was never touched.
    assert await west.find("namespaces", "shop") is None
    deny = await west.get("networkpolicies.networking.k8s.io", ISOLATION, ns)
    assert deny["spec"]["podSelector"] == {} and deny["spec"]["policyTypes"] == ["Ingress", "Egress"]
    assert (await west.get("cronjobs.batch", "nightly-report", ns))["spec"]["suspend"] is True
    public = (await west.get("services", "web-public", ns))["spec"]
    assert public["type"] == "ClusterIP" and all("nodePort" not in p for p in public["ports"])
    assert await west.find("ingresses.networking.k8s.io", "web", ns) is None
    assert (await west.get("deployments.apps", "web", ns))["status"].get("availableReplicas", 0) >= 1
    assert kept.outputs["cleanup"] == "kept" and kept_report.cleanup == "kept"

    # Both measured: the snapshot was taken before the drill started, the app came up after.
    for report in (kept_report, cleaned_report):
        assert report.verified and report.problems == [], report.problems
        assert report.rto_seconds is not None and report.rto_seconds > 0
        assert report.rpo_seconds is not None and report.rpo_seconds > 0
        assert report.snapshot == group and report.namespaces == ["shop"]
    assert float(cleaned.outputs["rto_seconds"]) == cleaned_report.rto_seconds
    print(f"\nkept drill: RTO {kept_report.rto_seconds}s, RPO {kept_report.rpo_seconds}s")

    # The other one left nothing behind.
    gone = cleaned_report.drill_namespaces["shop"]
    assert gone == drill_namespace("shop", cleaned_id) and cleaned_report.cleanup == "removed"
    assert await west.find("namespaces", gone) is None
    for resource in WRITTEN:
        assert await west.list(resource, label_selector=f"ferry.dev/request={cleaned_id}") == [], resource
    assert cleaned_report.removed >= len(WRITTEN)
    registry = cleanup.metrics.registry
    assert registry.get_sample_value("ferry_drill_last_success", {"policy": "shop-dr"}) == 1.0
    assert (
        registry.get_sample_value("ferry_drill_last_rto_seconds", {"policy": "shop-dr"})
        == cleaned_report.rto_seconds
    )

    # Listed newest first, by policy, one by id.
    assert isinstance(every, DrillList) and [d.request_id for d in every.items] == [cleaned_id, kept_id]
    assert [d.phase for d in every.items] == ["Completed", "Completed"]
    assert isinstance(of_policy, DrillList) and [d.request_id for d in of_policy.items] == [cleaned_id]
    assert of_policy.items[0].policy == "shop-dr"
    assert isinstance(one, DrillReport) and one.cleanup == "kept" and one.drill_namespaces == {"shop": ns}
    assert isinstance(unknown, Rejected) and unknown.code == "not-found"


def damage_a_data_pack(repo_dir: Path, group: str, claim: str) -> str:
    """Flip bytes inside the pack that holds the first file of ``claim``'s volume; returns the pack."""
    store = LocalStore(repo_dir)
    repo = Repository.open(store, PASSWORD)
    try:
        [(record_id, record)] = repo.snapshots(name=claim, group=group)
        node = next(node for _path, node in walk(repo, record.root) if node.content)
        location = repo.index.get(node.content[0])
        assert location is not None
        pack = location[0]
    finally:
        repo.close()
    data = bytearray(store.get(layout.pack(pack)))
    for offset in range(100, len(data) - 200, 4096):
        data[offset] ^= 0xFF
    store.put(layout.pack(pack), bytes(data))
    return pack


async def test_a_drill_from_a_damaged_dr_repository_fails_verification_and_is_still_cleaned_up(
    settings: Settings, kube: dict[str, Cluster], tmp_path: Path
) -> None:
    group = await captured(kube["east"], tmp_path / "west")  # the replica is in the DR repository
    damage_a_data_pack(tmp_path / "west", group, "shop/pgdata-db-0")
    async with ferry(settings) as client:
        request_id = await client.submit(drill(group, "west"))
        state = await client.wait(request_id, within=240)
        report = await stored_report(client, request_id)
        listing = await listed(client, DRILLS_LIST, b'{"limit": 5}')
    assert state.phase is Phase.PARTIALLY_FAILED, state.reason
    steps = {s.step.value: s.status.value for s in state.steps}
    assert steps["verify"] == "PartiallyFailed" and steps["cleanup"] == "Succeeded"
    assert not report.verified and report.problems
    assert any("pgdata-db-0" in p for p in report.problems), report.problems
    print("\nproblems:", *report.problems[:5], sep="\n  ")
    assert report.cleanup == "removed" and report.phase == "PartiallyFailed"
    assert await kube["west"].find("namespaces", drill_namespace("shop", request_id)) is None
    assert isinstance(listing, DrillList) and listing.items[0].request_id == request_id
    assert not listing.items[0].verified


@pytest.mark.parametrize(
    "body",
    [
        pytest.param(b'{"limit": 0}', id="a limit below one"),
        pytest.param(b'{"colour": "red"}', id="an unknown field"),
        pytest.param(b"not json", id="a body that is not JSON"),
    ],
)
async def test_a_bad_drill_query_is_refused_naming_what_is_wrong(
    nats_server: NatsServer, body: bytes
) -> None:
    settings = load_settings({}, nats={"url": nats_server.url}, http_port=0, http_host="127.0.0.1")
    nc = await nats.connect(nats_server.url)
    try:
        async with DrillsService(settings):
            reply = await listed(BusClient(nc), DRILLS_LIST, body)
    finally:
        await nc.close()
    assert (
        isinstance(reply, Rejected) and reply.code == "invalid" and reply.error.startswith("bad drill query")
    )
