"""Preflight before any copy: real nats-server, sandbox clusters, local repositories, Ferry's intake,
preflight, discovery and snapshot services. A request that cannot run fails in preflight — before
discovery, before any snapshot exists — with every problem listed; a good one goes on to its snapshot."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import msgspec
import pytest

from sandbox import SandboxClusters
from services.discovery.preflight import PreflightService
from shared.bus.client import BusClient
from shared.contracts.events import Report
from shared.contracts.reports import DocumentKind
from shared.contracts.requests import (
    ConflictPolicy,
    MobilityRequest,
    RequestKind,
    SnapshotMethod,
    Source,
    Target,
)
from shared.contracts.states import Phase, RequestState, StepStatus
from shared.contracts.steps import StepName
from shared.repository import Repository, RepositoryNotFound
from shared.runtime import Settings
from shared.store import LocalStore
from tests.preflight.conftest import ferry
from tests.restore.capturing import snapshot as capture
from tests.restore.conftest import kube_cluster
from tests.store.conftest import FAST_SCRYPT, PASSWORD
from tests.waiting import eventually


def migrate(**changes: Any) -> MobilityRequest:
    request = MobilityRequest(
        kind=RequestKind.MIGRATE,
        source=Source(cluster="east", namespaces=["shop"], repository="east"),
        target=Target(
            cluster="west",
            repository="west",
            namespace_map={"shop": "shop-west"},
            storage_class_map={"standard": "fast"},
        ),
    )
    for path, value in changes.items():
        part, _, name = path.partition("__")
        request = msgspec.structs.replace(
            request, **{part: msgspec.structs.replace(getattr(request, part), **{name: value})}
        ) if name else msgspec.structs.replace(request, **{part: value})  # fmt: skip
    return request


async def report_of(client: BusClient, request_id: str) -> dict[str, Any]:
    async for _, event in client.events(request_id, follow=False):
        if isinstance(event, Report) and event.document == DocumentKind.PREFLIGHT:
            return event.body
    raise AssertionError("no preflight report")


def failed_rows(body: dict[str, Any]) -> list[str]:
    return [f"{c['what']} {c['subject']}: {c['detail']}" for c in body["checks"] if not c["ok"]]


def snapshots_in(path: Path) -> list[Any]:
    try:
        return Repository.open(LocalStore(path), PASSWORD).snapshots()
    except RepositoryNotFound:
        return []


def stopped_in_preflight(state: RequestState) -> None:
    assert state.phase is Phase.FAILED, state.phase
    assert state.reason.startswith("preflight failed"), state.reason
    assert state.step_state(StepName.PREFLIGHT).status is StepStatus.FAILED
    assert state.step_state(StepName.DISCOVER).status is StepStatus.PENDING  # never started
    assert state.step_state(StepName.SNAPSHOT).status is StepStatus.PENDING


WRONG_KEY = b"not the configured password"

CASES = [
    pytest.param({"target__cluster": "nowhere"}, "cluster target nowhere: no cluster named 'nowhere'",
                 id="a wrong target cluster"),
    pytest.param({"target__storage_class_map": {"standard": "gold"}},
                 "storage class target west: gold (mapped from standard): does not exist on the target",
                 id="a missing mapped storage class"),
    pytest.param({"wrong_key": True}, "repository target west", id="a target repository with a wrong key"),
]  # fmt: skip


@pytest.mark.parametrize(("change", "words"), CASES)
async def test_a_request_that_cannot_run_fails_in_preflight_before_any_snapshot(
    settings: Settings, repositories: dict[str, Path], change: dict[str, Any], words: str
) -> None:
    if change.pop("wrong_key", False):
        Repository.init(LocalStore(repositories["west"]), WRONG_KEY, scrypt_n=FAST_SCRYPT).close()
    async with ferry(settings) as client:
        request_id = await client.submit(migrate(**change))
        state = await client.wait(request_id, within=60)
        body = await report_of(client, request_id)
    stopped_in_preflight(state)
    problems = failed_rows(body)
    assert len(problems) == 1 and body["problems"] == 1, problems
    assert words in problems[0]
    assert words in state.reason
    if "repository" in words:
        assert "wrong key" in state.reason
    assert snapshots_in(repositories["east"]) == []


async def test_a_wrong_cluster_a_missing_class_and_a_wrong_key_are_listed_at_once(
    settings: Settings, clusters: SandboxClusters, repositories: dict[str, Path]
) -> None:
    """The three problems in one request: the target is the wrong cluster (prod, where Ferry's identity
    may write nothing), the mapped storage class does not exist there, the target repository has
    another key."""
    await clusters["prod"].call(lambda s: s.access.deny("* *"))
    Repository.init(LocalStore(repositories["west"]), WRONG_KEY, scrypt_n=FAST_SCRYPT).close()
    request = migrate(target__cluster="prod", target__storage_class_map={"standard": "gold"})
    async with ferry(settings) as client:
        request_id = await client.submit(request)
        state = await client.wait(request_id, within=60)
        body = await report_of(client, request_id)
    stopped_in_preflight(state)
    problems = failed_rows(body)
    assert (
        "access target prod: create, patch, delete cluster-wide: denied: create namespaces, "
        "patch namespaces, delete namespaces"
    ) in problems
    assert any(
        p.startswith("access target prod: create, patch, delete in shop-west: denied: create configmaps")
        for p in problems
    )
    assert any(
        p.startswith("storage class target prod: gold (mapped from standard): does not exist")
        for p in problems
    )
    assert any(p.startswith("repository target west") and "wrong key" in p for p in problems)
    assert len(problems) == 4, problems
    assert f"{len(problems)} problem(s) found before any copy" in state.reason
    for problem in problems:
        assert problem in state.reason
    assert snapshots_in(repositories["east"]) == []


async def test_a_dead_target_cluster_costs_seconds_and_the_other_problems_are_still_listed(
    settings: Settings, repositories: dict[str, Path]
) -> None:
    Repository.init(LocalStore(repositories["west"]), WRONG_KEY, scrypt_n=FAST_SCRYPT).close()
    async with ferry(settings) as client:
        started = time.monotonic()
        request_id = await client.submit(migrate(target__cluster="dead"))
        state = await client.wait(request_id, within=60)
        took = time.monotonic() - started
        body = await report_of(client, request_id)
    stopped_in_preflight(state)
    problems = failed_rows(body)
    assert any(p.startswith("cluster target dead: cluster dead is unreachable") for p in problems), problems
    assert any(p.startswith("repository target west") and "wrong key" in p for p in problems), problems
    assert len(problems) == 2, problems
    assert took < 15, f"a dead cluster cost {took:.1f}s"


async def test_a_denied_access_review_names_the_verb_and_the_resource(
    settings: Settings, clusters: SandboxClusters, repositories: dict[str, Path]
) -> None:
    await clusters["west"].call(lambda s: s.access.deny("create deployments.apps shop-west"))
    await clusters["west"].call(lambda s: s.access.deny("delete secrets"))
    await clusters["east"].call(lambda s: s.access.deny("list configmaps shop"))
    async with ferry(settings) as client:
        request_id = await client.submit(migrate())
        state = await client.wait(request_id, within=60)
        body = await report_of(client, request_id)
    stopped_in_preflight(state)
    problems = failed_rows(body)
    assert (
        "access target west: create, patch, delete in shop-west: denied: create deployments.apps, delete secrets"
        in problems
    )
    assert "access source east: list, get in shop: denied: list configmaps" in problems
    assert len(problems) == 2, problems
    assert "create deployments.apps" in state.reason and "list configmaps" in state.reason


async def test_a_good_request_passes_preflight_and_goes_on_to_its_snapshot(
    settings: Settings, repositories: dict[str, Path]
) -> None:
    Repository.init(LocalStore(repositories["east"]), PASSWORD, scrypt_n=FAST_SCRYPT).close()
    async with ferry(settings) as client:
        request_id = await client.submit(migrate(volumes__method=SnapshotMethod.CSI))

        async def snapshot_done() -> bool:
            state = await client.get(request_id)
            assert state.phase is not Phase.FAILED, state.reason
            return state.step_state(StepName.SNAPSHOT).status is StepStatus.SUCCEEDED

        await eventually(snapshot_done, within=90, what="the snapshot step succeeded")
        state = await client.get(request_id)
        body = await report_of(client, request_id)
    preflight = state.step_state(StepName.PREFLIGHT)
    assert preflight.status is StepStatus.SUCCEEDED
    assert preflight.result is not None and preflight.result.counts["problems"] == 0
    assert body["problems"] == 0 and body["passed"] == len(body["checks"])
    rows = {(c["what"], c["subject"]) for c in body["checks"]}
    assert ("storage class", "target west: fast (mapped from standard)") in rows
    assert ("snapshot class", "source east: storage class standard") in rows
    assert ("namespace", "target west/shop-west") in rows
    assert ("repository", f"target west ({repositories['west']})") in rows
    assert snapshots_in(repositories["east"]) != []


async def test_the_conflict_policy_fail_refuses_a_namespace_holding_the_app(
    settings: Settings, clusters: SandboxClusters
) -> None:
    from sandbox.apps import install_shop

    await install_shop(clusters["west"].url)  # west already holds the shop, in namespace shop
    request = migrate(target__namespace_map={}, conflict_policy=ConflictPolicy.FAIL, preflight_only=True)
    async with ferry(settings) as client:
        failing = await client.submit(request)
        passing = await client.submit(msgspec.structs.replace(request, conflict_policy=ConflictPolicy.SKIP))
        failed, passed = await client.wait(failing, within=60), await client.wait(passing, within=60)
        body = await report_of(client, passing)
    assert failed.phase is Phase.FAILED
    assert "namespace target west/shop: exists and holds" in failed.reason
    assert "the conflict policy is fail" in failed.reason
    assert passed.phase is Phase.COMPLETED, passed.reason
    assert [s.step for s in passed.steps] == [StepName.PREFLIGHT]
    (row,) = [c for c in body["checks"] if c["subject"] == "target west/shop"]
    assert row["ok"] and "will be kept as they are" in row["detail"]


async def test_a_restore_is_checked_for_exactly_the_kinds_in_its_snapshot(
    settings: Settings, clusters: SandboxClusters, repositories: dict[str, Path]
) -> None:
    east = kube_cluster(clusters, "east")
    try:
        for claim in ("web-uploads", "pgdata-db-0"):
            await east.wait_for("persistentvolumeclaims", claim, lambda o: (o or {}).get("status", {}).get("phase") == "Bound",
                                namespace="shop", within=30)  # fmt: skip
        repo = Repository.init(LocalStore(repositories["east"]), PASSWORD, scrypt_n=FAST_SCRYPT)
        group, _ = await capture(east, "shop", repo)
        repo.close()
    finally:
        await east.close()
    await clusters["west"].call(lambda s: s.access.deny("create promotions.shop.ferry.dev shop-drill"))
    await clusters["west"].call(
        lambda s: s.access.deny("patch customresourcedefinitions.apiextensions.k8s.io")
    )
    request = MobilityRequest(
        kind=RequestKind.DRILL,
        source=Source(cluster="east", repository="east", snapshot="latest"),
        target=Target(cluster="west", repository="west", namespace_map={"shop": "shop-drill"},
                      storage_class_map={"standard": "gold"}),
        preflight_only=True,
    )  # fmt: skip
    missing = msgspec.structs.replace(request, source=msgspec.structs.replace(request.source, snapshot="f00"))
    async with ferry(settings) as client:
        request_id = await client.submit(request)
        other_id = await client.submit(missing)
        state, other = await client.wait(request_id, within=60), await client.wait(other_id, within=60)
        body = await report_of(client, request_id)
    assert state.phase is Phase.FAILED
    rows = {(c["what"], c["subject"]): c for c in body["checks"]}
    assert (
        rows[("snapshot", "latest in east")]["ok"] and group in rows[("snapshot", "latest in east")]["detail"]
    )
    assert failed_rows(body) == [
        "access target west: create, patch, delete cluster-wide: denied: patch customresourcedefinitions.apiextensions.k8s.io",
        "access target west: create, patch, delete in shop-drill: denied: create promotions.shop.ferry.dev",
        "storage class target west: gold (mapped from standard): does not exist on the target "
        "(it has fast, local-wffc, standard); used by shop/web-uploads",
    ]
    # The snapshot's kinds, not a fixed list: its CronJob, NetworkPolicy, Ingress are checked too.
    namespaced = rows[("access", "target west: create, patch, delete in shop-drill")]["detail"]
    assert "create promotions.shop.ferry.dev" in namespaced
    assert "no snapshot f00 in it" in other.reason


def test_the_preflight_step_is_first_in_every_default_itinerary() -> None:
    from shared.contracts.steps import itinerary_for

    for kind in RequestKind:
        request = MobilityRequest(kind=kind, source=Source(cluster="east", snapshot="latest"),
                                  target=Target(cluster="west"))  # fmt: skip
        if kind is RequestKind.ROLLBACK:  # it only undoes what a migrate did: nothing to check first
            assert itinerary_for(request) == (StepName.ROLLBACK,)
            continue
        assert itinerary_for(request)[0] is StepName.PREFLIGHT, kind
        only = msgspec.structs.replace(request, preflight_only=True)
        assert itinerary_for(only) == (StepName.PREFLIGHT,)
    dry = migrate(dry_run=True)
    assert itinerary_for(dry) == (StepName.PREFLIGHT, StepName.DISCOVER)
    explicit = msgspec.structs.replace(migrate(), itinerary=["discover", "snapshot"])
    assert itinerary_for(explicit) == (StepName.DISCOVER, StepName.SNAPSHOT)


def test_the_service_is_named_for_its_step() -> None:
    assert PreflightService.step is StepName.PREFLIGHT
