"""The rollback step: what a migration plan put in the target leaves it, the source runs again.

The target is set up by hand here — objects labelled as a migrate's restore labels them, plus
objects that are not Ferry's to remove — so the test says exactly what must go and what must stay;
the source is quiesced with the shared quiesce code, as a cutover leaves it.
"""

from __future__ import annotations

import json
from typing import Any

import msgspec
import pytest

from services.intake.intake import IntakeService
from services.restore.rollingback import RollbackService
from shared.bus.client import BusClient
from shared.contracts.inventory import Item
from shared.contracts.migrations import PLAN_LABEL, plan_key, rollback_request
from shared.contracts.requests import MobilityRequest, RequestKind, Source, Target
from shared.contracts.states import Phase, RequestState
from shared.kube import Cluster
from shared.runtime import Settings
from shared.runtime.quiescing import quiesce
from tests.snapshot.helpers import workload_state

CUTOVER = MobilityRequest(
    kind=RequestKind.MIGRATE,
    cutover=True,
    source=Source(cluster="east", namespaces=["shop", "data"]),
    target=Target(cluster="west", namespace_map={"shop": "shop-rb", "data": "data-rb"}),
)
PLAN = {PLAN_LABEL: plan_key(CUTOVER)}
FERRYS = {**PLAN, "ferry.dev/request": "cutover-1"}
ORIGINAL = {"web": 2, "db": 1, "suspend": False, "annotations": {}}
SHOP_WORKLOADS = [
    ("deployments.apps", "apps/v1", "Deployment", "web"),
    ("statefulsets.apps", "apps/v1", "StatefulSet", "db"),
    ("cronjobs.batch", "batch/v1", "CronJob", "nightly-report"),
]


def doc(
    api_version: str,
    kind: str,
    name: str,
    namespace: str = "",
    labels: dict[str, str] | None = None,
    **fields: Any,
) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": name, "labels": labels or {}}
    if namespace:
        meta["namespace"] = namespace
    return {"apiVersion": api_version, "kind": kind, "metadata": meta, **fields}


def claim(name: str, namespace: str, labels: dict[str, str]) -> dict[str, Any]:
    spec = {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}}
    return doc("v1", "PersistentVolumeClaim", name, namespace, labels, spec=spec)


def web(namespace: str) -> dict[str, Any]:
    pod = {
        "metadata": {"labels": {"app": "web"}},
        "spec": {"containers": [{"name": "web", "image": "nginx"}]},
    }
    spec = {"replicas": 1, "selector": {"matchLabels": {"app": "web"}}, "template": pod}
    return doc("apps/v1", "Deployment", "web", namespace, FERRYS, spec=spec)


TARGET = [
    doc("v1", "Namespace", "shop-rb", labels=FERRYS),
    doc("v1", "ConfigMap", "shop-config", "shop-rb", FERRYS, data={"CURRENCY": "EUR"}),
    claim("web-uploads", "shop-rb", FERRYS),
    web("shop-rb"),
    doc("rbac.authorization.k8s.io/v1", "ClusterRole", "shop-rb-reader", labels=FERRYS, rules=[]),
    # A namespace of the plan that someone else has used since: it and what they put there stay.
    doc("v1", "Namespace", "data-rb", labels=FERRYS),
    claim("theirs", "data-rb", PLAN),  # the plan's label, but not Ferry's request label
    doc("v1", "ConfigMap", "notes", "data-rb", data={"owner": "another team"}),
    doc("v1", "ConfigMap", "other-app", "default", {PLAN_LABEL: "m-another-plan"}),
]
REMOVED = [
    "deployments.apps/shop-rb/web",
    "configmaps/shop-rb/shop-config",
    "clusterroles.rbac.authorization.k8s.io/shop-rb-reader",
    "persistentvolumeclaims/shop-rb/web-uploads",
    "namespaces/shop-rb",
]
KEPT = [
    "namespaces/data-rb",
    "persistentvolumeclaims/data-rb/theirs",
    "configmaps/data-rb/notes",
    "configmaps/default/other-app",
]
RESTORED = ["deployments.apps/shop/web", "statefulsets.apps/shop/db", "cronjobs.batch/shop/nightly-report"]


async def set_up(kube: dict[str, Cluster]) -> None:
    """West holds what the plan restored (and more); east's shop is quiesced as a cutover left it."""
    for obj in TARGET:
        await kube["west"].create(obj)
    items = [
        Item(key=f"{r}/shop/{name}", resource=r, api_version=v, kind=k, namespace="shop", name=name)
        for r, v, k, name in SHOP_WORKLOADS
    ]
    await quiesce(kube["east"], items)
    quiesced = await workload_state(kube["east"])
    assert (quiesced["web"], quiesced["db"], quiesced["suspend"]) == (0, 0, True)


async def stored(service: RollbackService, request: MobilityRequest, rid: str) -> RequestState:
    """A finished (failed) request in the store, as the step runner leaves a failed cutover."""
    state = RequestState(
        id=rid, request=request, phase=Phase.FAILED, reason="restore failed after 2 attempt(s): boom"
    )
    await service.store.create(state)
    return state


async def present(west: Cluster, key: str) -> bool:
    resource, *rest = key.split("/")
    name, namespace = rest[-1], (rest[0] if len(rest) == 2 else None)
    return await west.find(resource, name, namespace) is not None


async def test_a_rollback_removes_the_plans_objects_and_brings_the_source_back_and_again_changes_nothing(
    settings: Settings, client: BusClient, kube: dict[str, Cluster]
) -> None:
    await set_up(kube)
    rollback = RollbackService(settings)
    async with IntakeService(settings), rollback:
        original = await stored(rollback, CUTOVER, "cutover-1")
        first = await client.wait(await client.submit(rollback_request(original)), within=90)
        after_first = await client.get(original.id)
        again = msgspec.structs.replace(rollback_request(original), idempotency_key="rollback-again")
        second = await client.wait(await client.submit(again), within=60)
        after_second = await client.get(original.id)
    assert first.phase is Phase.COMPLETED, first.reason
    assert json.loads(first.outputs["removed"]) == REMOVED
    assert json.loads(first.outputs["restored"]) == RESTORED
    result = first.steps[0].result
    assert result is not None and result.warnings == [
        "persistentvolumeclaims/data-rb/theirs: carries the plan's label but not Ferry's request label, "
        "left in place",
        "namespace data-rb kept: it still holds 2 object(s) (configmaps/data-rb/notes, "
        "persistentvolumeclaims/data-rb/theirs)",
    ]
    for key in REMOVED:
        assert not await present(kube["west"], key), key
    for key in KEPT:
        assert await present(kube["west"], key), key
    assert await workload_state(kube["east"]) == ORIGINAL
    assert after_first.rolled_back and after_first.reason == (
        "restore failed after 2 attempt(s): boom; rolled back: 5 object(s) removed from west, "
        "source restored (3 workload(s) brought back)"
    )
    # Twice is harmless: nothing is left to remove or bring back, and the original says it once.
    assert second.phase is Phase.COMPLETED, second.reason
    assert (second.outputs["removed"], second.outputs["restored"]) == ("[]", "[]")
    assert after_second.reason == after_first.reason and after_second.rolled_back
    assert await workload_state(kube["east"]) == ORIGINAL


@pytest.mark.parametrize(
    ("stored_as", "words"),
    [
        pytest.param(
            None, "request ghost is unknown: there is nothing to roll back", id="an unknown request"
        ),
        pytest.param(
            msgspec.structs.replace(CUTOVER, kind=RequestKind.REPLICATE, cutover=False),
            "request ghost is a replicate: only a migrate can be rolled back",
            id="a request that is not a migrate",
        ),
    ],
)
async def test_a_rollback_is_refused_for(
    settings: Settings, client: BusClient, stored_as: MobilityRequest | None, words: str
) -> None:
    rollback = RollbackService(settings)
    async with IntakeService(settings), rollback:
        if stored_as is not None:
            await stored(rollback, stored_as, "ghost")
        request = MobilityRequest(kind=RequestKind.ROLLBACK, source=CUTOVER.source, rollback_of="ghost")
        state = await client.wait(await client.submit(request), within=30)
    assert state.phase is Phase.FAILED
    assert state.reason == f"rollback failed after 1 attempt(s): {words}"
