"""A drill's isolation, on prepared plans and an in-memory target: names, policies, what is bent and
what is left out (with the reason a person reads in the restore report)."""

from __future__ import annotations

from typing import Any

import pytest

from services.restore.isolating import DRILL_OF, ISOLATION, MOVERS, isolate, isolated
from services.restore.restoring import Plan
from shared.contracts.drills import drill_namespace, short_id
from shared.contracts.reports import Outcome
from shared.contracts.requests import MobilityRequest, RequestKind, Source, Target
from shared.kube.objects import Manifest
from tests.restore.fakes import FakeCluster

RID = "drill-20260101-120000-a1b2c3"
LABELS = {"ferry.dev/request": RID}


def doc(api_version: str, kind: str, name: str, namespace: str = "", **fields: Any) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": name, **({"namespace": namespace} if namespace else {})}
    return {"apiVersion": api_version, "kind": kind, "metadata": meta, **fields}


def drill(
    namespace_map: dict[str, str] | None = None, kind: RequestKind = RequestKind.DRILL
) -> MobilityRequest:
    return MobilityRequest(
        kind=kind,
        source=Source(cluster="east", namespaces=["shop"], snapshot="latest"),
        target=Target(cluster="west", namespace_map=namespace_map or {}),
    )


@pytest.mark.parametrize(
    ("namespace", "request_id", "expected"),
    [
        pytest.param("shop", RID, "shop-drill-a1b2c3", id="a Ferry request id gives its random tail"),
        pytest.param(
            "shop", "my-drill-1", f"shop-drill-{short_id('my-drill-1')}", id="any other id a digest"
        ),
        pytest.param("n" * 63, RID, "n" * 50 + "-drill-a1b2c3", id="a long namespace is cut to 63 in all"),
        pytest.param("a" * 49 + "-x", RID, "a" * 49 + "-drill-a1b2c3", id="a cut never ends on a dash"),
    ],
)
def test_a_drill_namespace_is_a_dns_label_derived_from_the_request(
    namespace: str, request_id: str, expected: str
) -> None:
    name = drill_namespace(namespace, request_id)
    assert name == expected and len(name) <= 63
    assert drill_namespace(namespace, request_id) == name  # every attempt and step agrees


def test_a_drill_maps_every_namespace_it_does_not_map_itself_and_other_kinds_are_untouched() -> None:
    captured = [Manifest(doc("v1", "ConfigMap", "c", "billing"))]
    mapped = isolated(RID, drill({"shop": "shop-mine"}), captured)
    assert mapped.target.namespace_map == {"shop": "shop-mine", "billing": "billing-drill-a1b2c3"}
    assert isolated(RID, drill()).target.namespace_map == {"shop": "shop-drill-a1b2c3"}
    restore = drill(kind=RequestKind.RESTORE)
    assert isolated(RID, restore, captured) is restore


def service(kind: str, **spec: Any) -> Manifest:
    return Manifest(doc("v1", "Service", "web", "shop-drill-a1b2c3", spec={"type": kind, **spec}))


async def isolated_plan(items: list[Manifest], cluster: FakeCluster | None = None) -> tuple[Plan, list[str]]:
    plan = Plan(items=items)
    warnings = await isolate(plan, isolated(RID, drill()), LABELS, cluster or FakeCluster())
    return plan, warnings


async def test_network_policies_come_right_after_the_namespaces_and_deny_all_but_dns() -> None:
    ns = "shop-drill-a1b2c3"
    items = [
        Manifest(doc("v1", "Namespace", ns)),
        Manifest(doc("v1", "ConfigMap", "c", ns)),
        Manifest(doc("apps/v1", "Deployment", "web", ns, spec={})),
    ]
    plan, warnings = await isolated_plan(items)
    assert warnings == []
    assert [m.key for m in plan.items] == [
        f"namespaces/{ns}",
        f"networkpolicies.networking.k8s.io/{ns}/{ISOLATION}",
        f"networkpolicies.networking.k8s.io/{ns}/{MOVERS}",
        f"configmaps/{ns}/c",
        f"deployments.apps/{ns}/web",
    ]
    assert plan.items[0].metadata["annotations"] == {DRILL_OF: "shop"}
    deny = plan.items[1].obj
    assert deny["metadata"]["labels"] == LABELS
    assert deny["spec"]["podSelector"] == {} and deny["spec"]["policyTypes"] == ["Ingress", "Egress"]
    assert "ingress" not in deny["spec"]  # no rule: nothing comes in
    [dns] = deny["spec"]["egress"]
    assert dns["ports"] == [{"protocol": "UDP", "port": 53}, {"protocol": "TCP", "port": 53}]
    assert dns["to"][0]["podSelector"] == {"matchLabels": {"k8s-app": "kube-dns"}}


@pytest.mark.parametrize(
    ("item", "expected_spec", "note"),
    [
        pytest.param(
            service(
                "LoadBalancer",
                ports=[{"port": 80, "nodePort": 30080}],
                loadBalancerIP="1.2.3.4",
                externalTrafficPolicy="Local",
                healthCheckNodePort=31000,
            ),  # fmt: skip
            {"type": "ClusterIP", "ports": [{"port": 80}]},
            "type LoadBalancer made ClusterIP",
            id="a LoadBalancer Service becomes ClusterIP without node ports or balancer fields",
        ),
        pytest.param(
            service("NodePort", ports=[{"port": 80, "nodePort": 30081}]),
            {"type": "ClusterIP", "ports": [{"port": 80}]},
            "type NodePort made ClusterIP",
            id="a NodePort Service becomes ClusterIP",
        ),
        pytest.param(
            Manifest(doc("batch/v1", "CronJob", "nightly", "shop-drill-a1b2c3", spec={"schedule": "@daily"})),
            {"schedule": "@daily", "suspend": True},
            "suspended by the drill",
            id="a CronJob is suspended",
        ),
        pytest.param(
            service("ClusterIP"), {"type": "ClusterIP"}, "", id="a ClusterIP Service stays as it is"
        ),
    ],
)
async def test_what_would_act_on_the_world_is_quieted(
    item: Manifest, expected_spec: dict[str, Any], note: str
) -> None:
    plan, _ = await isolated_plan([item])
    [kept] = [m for m in plan.items if m.kind != "NetworkPolicy"]
    assert kept.obj["spec"] == expected_spec
    assert any(note in n for n in kept.notes) if note else kept.notes == []


@pytest.mark.parametrize(
    ("item", "present", "reason", "warned"),
    [
        pytest.param(
            Manifest(doc("networking.k8s.io/v1", "Ingress", "web", "shop-drill-a1b2c3")), False,
            "an Ingress would route real traffic", True, id="an Ingress is left out",
        ),
        pytest.param(
            Manifest(doc("admissionregistration.k8s.io/v1", "ValidatingWebhookConfiguration", "shop")), False,
            "a webhook would intercept", True, id="a validating webhook is left out",
        ),
        pytest.param(
            Manifest(doc("admissionregistration.k8s.io/v1", "MutatingWebhookConfiguration", "shop")), False,
            "a webhook would intercept", True, id="a mutating webhook is left out",
        ),
        pytest.param(
            Manifest(doc("rbac.authorization.k8s.io/v1", "ClusterRole", "shop-reader")), False,
            "not in the DR cluster: a drill creates no cluster-wide ClusterRole", True,
            id="a cluster-scoped object the DR cluster lacks is left out with a warning",
        ),
        pytest.param(
            Manifest(doc("scheduling.k8s.io/v1", "PriorityClass", "shop-high")), True,
            "exists in the DR cluster: a drill uses it as it is", False,
            id="a cluster-scoped object the DR cluster has is used as it is, quietly",
        ),
    ],
)  # fmt: skip
async def test_what_a_drill_never_writes_is_accounted_for_with_its_reason(
    item: Manifest, present: bool, reason: str, warned: bool
) -> None:
    cluster = FakeCluster()
    if present:
        cluster.put(item.obj)
    plan, warnings = await isolated_plan([item], cluster)
    assert all(m.kind == "NetworkPolicy" for m in plan.items)
    [result] = plan.results
    assert result.outcome is Outcome.SKIPPED and reason in result.reason
    assert bool(warnings) is warned and (not warned or reason in warnings[0])


async def test_custom_resources_go_with_a_crd_the_dr_cluster_lacks() -> None:
    crd = Manifest(doc("apiextensions.k8s.io/v1", "CustomResourceDefinition", "promotions.shop.ferry.dev"))
    promo = Manifest(
        doc("shop.ferry.dev/v1", "Promotion", "sale", "shop-drill-a1b2c3"), resource="promotions"
    )
    plan, warnings = await isolated_plan([crd, promo])
    reasons = {r.target: r.reason for r in plan.results}
    assert reasons["promotions.shop.ferry.dev/shop-drill-a1b2c3/sale"] == (
        "its CustomResourceDefinition promotions.shop.ferry.dev is not in the DR cluster"
    )
    assert len(warnings) == 2


async def test_a_restore_that_is_not_a_drill_is_left_as_it_is() -> None:
    plan = Plan(items=[service("LoadBalancer")])
    assert await isolate(plan, drill(kind=RequestKind.RESTORE), LABELS, FakeCluster()) == []
    assert [m.kind for m in plan.items] == ["Service"] and plan.items[0].obj["spec"]["type"] == "LoadBalancer"
