"""Restore order: Velero's priorities, then the references the objects make."""

from __future__ import annotations

from typing import Any

from services.restore.ordering import claims_mounted, order
from shared.kube.objects import Manifest


def obj(api: str, kind: str, name: str, ns: str = "shop", **rest: Any) -> Manifest:
    meta = {"name": name, "namespace": ns} if ns else {"name": name}
    return Manifest({"apiVersion": api, "kind": kind, "metadata": meta, **rest})


def keys(items: list[Manifest]) -> list[str]:
    return [i.key for i in items]


def before(ordered: list[str], first: str, second: str) -> bool:
    return ordered.index(first) < ordered.index(second)


WEB = obj(
    "apps/v1",
    "Deployment",
    "web",
    spec={
        "template": {
            "spec": {
                "serviceAccountName": "web",
                "volumes": [{"name": "d", "persistentVolumeClaim": {"claimName": "data"}}],
                "containers": [{"name": "c", "envFrom": [{"configMapRef": {"name": "conf"}}]}],
            }
        }
    },
)


def sample() -> list[Manifest]:
    return [
        obj(
            "networking.k8s.io/v1",
            "Ingress",
            "web",
            spec={"rules": [{"http": {"paths": [{"backend": {"service": {"name": "web"}}}]}}]},
        ),  # fmt: skip
        obj("v1", "Service", "web"),
        WEB,
        obj("v1", "ConfigMap", "conf"),
        obj("v1", "Secret", "creds"),
        obj("v1", "PersistentVolumeClaim", "data", spec={"storageClassName": "fast"}),
        obj("storage.k8s.io/v1", "StorageClass", "fast", ns=""),
        obj(
            "rbac.authorization.k8s.io/v1",
            "RoleBinding",
            "rb",
            roleRef={"kind": "Role", "name": "r"},
            subjects=[{"kind": "ServiceAccount", "name": "web"}],
        ),  # fmt: skip
        obj("rbac.authorization.k8s.io/v1", "Role", "r"),
        obj("v1", "ServiceAccount", "web"),
        obj("v1", "Namespace", "shop", ns=""),
        obj("example.com/v1", "Widget", "w1"),
        obj(
            "apiextensions.k8s.io/v1",
            "CustomResourceDefinition",
            "widgets.example.com",
            ns="",
            spec={"group": "example.com", "names": {"plural": "widgets"}},
        ),  # fmt: skip
        obj(
            "admissionregistration.k8s.io/v1",
            "ValidatingWebhookConfiguration",
            "hooks",
            ns="",
            webhooks=[{"clientConfig": {"service": {"name": "web", "namespace": "shop"}}}],
        ),  # fmt: skip
    ]


def test_priorities_put_the_foundations_first_and_webhooks_last() -> None:
    ordered, warnings = order(sample())
    assert not warnings
    got = keys(ordered)
    assert got[0] == "customresourcedefinitions.apiextensions.k8s.io/widgets.example.com"
    assert got[1] == "namespaces/shop"
    chain = [
        "storageclasses.storage.k8s.io/fast",
        "persistentvolumeclaims/shop/data",
        "roles.rbac.authorization.k8s.io/shop/r",
        "serviceaccounts/shop/web",
        "rolebindings.rbac.authorization.k8s.io/shop/rb",
        "secrets/shop/creds",
        "configmaps/shop/conf",
        "deployments.apps/shop/web",
        "services/shop/web",
        "ingresses.networking.k8s.io/shop/web",
        "widgets.example.com/shop/w1",
        "validatingwebhookconfigurations.admissionregistration.k8s.io/hooks",
    ]
    assert [k for k in got if k in chain] == chain


def test_references_override_priorities() -> None:
    # A ConfigMap produced by a custom resource's operator comes after that CR when the inventory
    # says so; a Service that a CR needs is created before it anyway (priority).
    items = sample()
    extra = [("configmaps/shop/conf", "widgets.example.com/shop/w1")]
    got = keys(order(items, extra)[0])
    assert before(got, "widgets.example.com/shop/w1", "configmaps/shop/conf")
    assert before(got, "configmaps/shop/conf", "deployments.apps/shop/web")
    assert before(
        got,
        "customresourcedefinitions.apiextensions.k8s.io/widgets.example.com",
        "widgets.example.com/shop/w1",
    )


def test_a_cycle_is_broken_and_reported() -> None:
    a, b = obj("example.com/v1", "A", "a"), obj("example.com/v1", "B", "b")
    ordered, warnings = order([a, b], [(a.key, b.key), (b.key, a.key)])
    assert len(ordered) == 2
    assert warnings and "reference cycle" in warnings[0]


def test_every_object_comes_out_once() -> None:
    items = sample()
    ordered, _ = order(items)
    assert sorted(keys(ordered)) == sorted(keys(items))


def test_claims_mounted_by_a_workload() -> None:
    assert claims_mounted(WEB) == {"persistentvolumeclaims/shop/data"}


def test_a_stateful_set_waits_for_the_claims_of_its_templates() -> None:
    db = obj(
        "apps/v1",
        "StatefulSet",
        "db",
        spec={"replicas": 2, "volumeClaimTemplates": [{"metadata": {"name": "pgdata"}}]},
    )
    assert claims_mounted(db) == {
        "persistentvolumeclaims/shop/pgdata-db-0",
        "persistentvolumeclaims/shop/pgdata-db-1",
    }


def test_the_workload_an_autoscaler_scales_is_known() -> None:
    from services.restore.expecting import autoscaled_targets

    hpa = obj("autoscaling/v2", "HorizontalPodAutoscaler", "web",
              spec={"scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "web"}})  # fmt: skip
    assert autoscaled_targets([hpa, WEB]) == {"deployments.apps/shop/web"}
