"""Transforms: a namespace rename reaches every place a namespace appears; classes and registries map."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest

from services.restore.transforming import Transforms, map_image, transform, with_snapshot
from shared.kube.objects import Manifest

T = Transforms(
    namespace_map={"shop": "shop-west", "monitoring": "mon-west"},
    storage_class_map={"gp2": "standard"},
    registry_map={
        "registry.east.example.com": "registry.west.example.com",
        "docker.io": "mirror.west.example.com",
    },
)


def pod_spec(image: str, init_image: str) -> dict[str, Any]:
    return {
        "initContainers": [{"name": "init", "image": init_image}],
        "containers": [{"name": "app", "image": image}],
    }


CASES: list[tuple[str, dict[str, Any], list[tuple[tuple[str | int, ...], Any]]]] = [
    ("a namespaced object moves to the mapped namespace",
     {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c", "namespace": "shop"}},
     [(("metadata", "namespace"), "shop-west")]),
    ("an unmapped namespace stays",
     {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c", "namespace": "other"}},
     [(("metadata", "namespace"), "other")]),
    ("a Namespace is renamed with its metadata.name label",
     {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "shop", "labels": {"kubernetes.io/metadata.name": "shop"}}},
     [(("metadata", "name"), "shop-west"), (("metadata", "labels", "kubernetes.io/metadata.name"), "shop-west")]),
    ("RoleBinding subjects follow the rename",
     {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding", "metadata": {"name": "rb", "namespace": "shop"},
      "roleRef": {"kind": "Role", "name": "r"},
      "subjects": [{"kind": "ServiceAccount", "name": "web", "namespace": "shop"},
                   {"kind": "ServiceAccount", "name": "prom", "namespace": "monitoring"},
                   {"kind": "User", "name": "alice"}]},
     [(("subjects", 0, "namespace"), "shop-west"), (("subjects", 1, "namespace"), "mon-west"),
      (("subjects", 2), {"kind": "User", "name": "alice"})]),
    ("ClusterRoleBinding subjects follow the rename",
     {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding", "metadata": {"name": "crb"},
      "roleRef": {"kind": "ClusterRole", "name": "view"},
      "subjects": [{"kind": "ServiceAccount", "name": "web", "namespace": "shop"}]},
     [(("subjects", 0, "namespace"), "shop-west")]),
    ("NetworkPolicy namespace selectors on metadata.name follow the rename",
     {"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy", "metadata": {"name": "np", "namespace": "shop"},
      "spec": {"ingress": [{"from": [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "monitoring"}}}]}],
               "egress": [{"to": [{"namespaceSelector": {"matchExpressions": [
                   {"key": "kubernetes.io/metadata.name", "operator": "In", "values": ["shop", "kube-system"]}]}}]}]}},
     [(("spec", "ingress", 0, "from", 0, "namespaceSelector", "matchLabels", "kubernetes.io/metadata.name"), "mon-west"),
      (("spec", "egress", 0, "to", 0, "namespaceSelector", "matchExpressions", 0, "values"), ["shop-west", "kube-system"])]),
    ("a PV claimRef follows the rename and its storage class maps",
     {"apiVersion": "v1", "kind": "PersistentVolume", "metadata": {"name": "pv"},
      "spec": {"storageClassName": "gp2", "claimRef": {"name": "data", "namespace": "shop"}}},
     [(("spec", "claimRef", "namespace"), "shop-west"), (("spec", "storageClassName"), "standard")]),
    ("a PVC storage class maps",
     {"apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": {"name": "d", "namespace": "shop"},
      "spec": {"storageClassName": "gp2"}},
     [(("spec", "storageClassName"), "standard")]),
    ("a StatefulSet's claim templates map their storage class",
     {"apiVersion": "apps/v1", "kind": "StatefulSet", "metadata": {"name": "db", "namespace": "shop"},
      "spec": {"volumeClaimTemplates": [{"metadata": {"name": "data"}, "spec": {"storageClassName": "gp2"}}],
               "template": {"spec": pod_spec("postgres:16", "busybox")}}},
     [(("spec", "volumeClaimTemplates", 0, "spec", "storageClassName"), "standard"),
      (("spec", "template", "spec", "containers", 0, "image"), "mirror.west.example.com/library/postgres:16"),
      (("spec", "template", "spec", "initContainers", 0, "image"), "mirror.west.example.com/library/busybox")]),
    ("a CronJob's job template images map",
     {"apiVersion": "batch/v1", "kind": "CronJob", "metadata": {"name": "cj", "namespace": "shop"},
      "spec": {"jobTemplate": {"spec": {"template": {"spec": pod_spec(
          "registry.east.example.com/shop/report:1", "registry.east.example.com/tools/wait:2")}}}}},
     [(("spec", "jobTemplate", "spec", "template", "spec", "containers", 0, "image"), "registry.west.example.com/shop/report:1"),
      (("spec", "jobTemplate", "spec", "template", "spec", "initContainers", 0, "image"), "registry.west.example.com/tools/wait:2")]),
    ("a Pod's images map, an unmapped registry stays",
     {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p", "namespace": "shop"},
      "spec": pod_spec("quay.io/org/app:1", "registry.east.example.com/x")},
     [(("spec", "containers", 0, "image"), "quay.io/org/app:1"),
      (("spec", "initContainers", 0, "image"), "registry.west.example.com/x")]),
    ("a webhook's service namespace follows the rename",
     {"apiVersion": "admissionregistration.k8s.io/v1", "kind": "ValidatingWebhookConfiguration", "metadata": {"name": "v"},
      "webhooks": [{"name": "w", "clientConfig": {"service": {"name": "hook", "namespace": "shop"}}}]},
     [(("webhooks", 0, "clientConfig", "service", "namespace"), "shop-west")]),
]  # fmt: skip


def at(obj: Any, path: tuple[str | int, ...]) -> Any:
    for step in path:
        obj = obj[step]
    return obj


@pytest.mark.parametrize(("case", "obj", "expect"), CASES, ids=[c[0] for c in CASES])
def test_transform(case: str, obj: dict[str, Any], expect: list[tuple[tuple[str | int, ...], Any]]) -> None:
    out = transform(Manifest(obj), T).obj
    for path, value in expect:
        assert at(out, path) == value, path


def test_labels_name_the_request_and_the_snapshot() -> None:
    t = Transforms(labels={"ferry.dev/request": "migrate-1", "ferry.dev/snapshot": "abc"})
    out = transform(
        Manifest({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s", "namespace": "x"}}), t
    )
    assert out.obj["metadata"]["labels"] == {"ferry.dev/request": "migrate-1", "ferry.dev/snapshot": "abc"}


IMAGES = [
    ("nginx", {"docker.io": "mirror.io"}, "mirror.io/library/nginx"),
    ("library/nginx:1", {"docker.io/library": "mirror.io/lib"}, "mirror.io/lib/nginx:1"),
    ("localhost:5000/app", {"localhost:5000": "reg.io"}, "reg.io/app"),
    ("reg.io/team/app@sha256:ab", {"reg.io/team": "other.io/t2"}, "other.io/t2/app@sha256:ab"),
    ("reg.io/teamx/app", {"reg.io/team": "other.io"}, "reg.io/teamx/app"),
    ("reg.io/team/app", {"reg.io": "a.io", "reg.io/team": "b.io"}, "b.io/app"),
]


@pytest.mark.parametrize(("image", "mapping", "expected"), IMAGES, ids=[f"{i[0]} -> {i[2]}" for i in IMAGES])
def test_map_image(image: str, mapping: dict[str, str], expected: str) -> None:
    assert map_image(image, mapping) == expected


# References inside values: the snapshot holds shop/redis, shop/db and monitoring/prometheus, and
# other-ns/api (a namespace the request does not map).
R = Transforms(
    namespace_map={"shop": "shop-west", "monitoring": "mon-west"},
    services=frozenset(
        {("shop", "redis"), ("shop", "db"), ("monitoring", "prometheus"), ("other-ns", "api")}
    ),
)
WORKLOAD = ("spec", "template", "spec", "containers", 0)
JOB_POD = ("spec", "jobTemplate", "spec", "template", "spec")


def deployment(container: dict[str, Any], **meta: Any) -> dict[str, Any]:
    return {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web", "namespace": "shop", **meta},
            "spec": {"template": {"spec": {"containers": [{"name": "app", "image": "app:1", **container}]}}}}  # fmt: skip


REFERENCES: list[tuple[str, dict[str, Any], list[tuple[tuple[str | int, ...], Any]], list[str]]] = [
    ("an env value naming a service of the snapshot follows the rename",
     deployment({"env": [{"name": "DB_HOST", "value": "redis.shop.svc.cluster.local:6379"}]}),
     [((*WORKLOAD, "env", 0, "value"), "redis.shop-west.svc.cluster.local:6379")],
     ["rewrote: spec.template.spec.containers[0].env[0].value: "
      "redis.shop.svc.cluster.local -> redis.shop-west.svc.cluster.local"]),
    ("a CronJob's init container command and args follow the rename",
     {"apiVersion": "batch/v1", "kind": "CronJob", "metadata": {"name": "report", "namespace": "shop"},
      "spec": {"jobTemplate": {"spec": {"template": {"spec": {
          "initContainers": [{"name": "wait", "command": ["sh", "-c", "until nc -z db.shop.svc 5432; do sleep 1; done"]}],
          "containers": [{"name": "report", "args": ["--metrics=http://prometheus.monitoring.svc:9090/api"]}]}}}}}},
     [((*JOB_POD, "initContainers", 0, "command"), ["sh", "-c", "until nc -z db.shop-west.svc 5432; do sleep 1; done"]),
      ((*JOB_POD, "containers", 0, "args"), ["--metrics=http://prometheus.mon-west.svc:9090/api"])],
     ["rewrote: spec.jobTemplate.spec.template.spec.initContainers[0].command[2]: db.shop.svc -> db.shop-west.svc",
      "rewrote: spec.jobTemplate.spec.template.spec.containers[0].args[0]: "
      "prometheus.monitoring.svc -> prometheus.mon-west.svc"]),
    ("a StatefulSet pod's own DNS name under its service follows the rename",
     deployment({"env": [{"name": "PRIMARY", "value": "db-0.db.shop.svc.cluster.local."}]}),
     [((*WORKLOAD, "env", 0, "value"), "db-0.db.shop-west.svc.cluster.local.")],
     ["rewrote: spec.template.spec.containers[0].env[0].value: "
      "db-0.db.shop.svc.cluster.local -> db-0.db.shop-west.svc.cluster.local"]),
    ("a ConfigMap's data follows the rename, every name in a file",
     {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "nginx", "namespace": "shop"},
      "data": {"nginx.conf": "upstream { server redis.shop.svc.cluster.local:6379; }\n"
                             "location /m { proxy_pass http://prometheus.monitoring.svc:9090; }\n"}},
     [(("data", "nginx.conf"), "upstream { server redis.shop-west.svc.cluster.local:6379; }\n"
                               "location /m { proxy_pass http://prometheus.mon-west.svc:9090; }\n")],
     ['rewrote: data["nginx.conf"]: redis.shop.svc.cluster.local -> redis.shop-west.svc.cluster.local',
      'rewrote: data["nginx.conf"]: prometheus.monitoring.svc -> prometheus.mon-west.svc']),
    ("an ExternalName Service follows the rename",
     {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "cache", "namespace": "shop"},
      "spec": {"type": "ExternalName", "externalName": "redis.shop.svc.cluster.local"}},
     [(("spec", "externalName"), "redis.shop-west.svc.cluster.local")],
     ["rewrote: spec.externalName: redis.shop.svc.cluster.local -> redis.shop-west.svc.cluster.local"]),
    ("an Ingress annotation follows the rename",
     {"apiVersion": "networking.k8s.io/v1", "kind": "Ingress", "metadata": {"name": "web", "namespace": "shop",
      "annotations": {"nginx.ingress.kubernetes.io/auth-url": "http://db.shop.svc.cluster.local/auth"}}, "spec": {}},
     [(("metadata", "annotations", "nginx.ingress.kubernetes.io/auth-url"), "http://db.shop-west.svc.cluster.local/auth")],
     ['rewrote: metadata.annotations["nginx.ingress.kubernetes.io/auth-url"]: '
      "db.shop.svc.cluster.local -> db.shop-west.svc.cluster.local"]),
    ("a custom resource's namespaceSelector.matchNames and namespaces lists follow the rename",
     {"apiVersion": "monitoring.coreos.com/v1", "kind": "ServiceMonitor", "metadata": {"name": "m", "namespace": "monitoring"},
      "spec": {"namespaceSelector": {"matchNames": ["shop", "kube-system"]},
               "endpoints": [{"relabel": {"namespaces": ["monitoring"]}}]}},
     [(("spec", "namespaceSelector", "matchNames"), ["shop-west", "kube-system"]),
      (("spec", "endpoints", 0, "relabel", "namespaces"), ["mon-west"])],
     ["rewrote: spec.namespaceSelector.matchNames[0]: shop -> shop-west",
      "rewrote: spec.endpoints[0].relabel.namespaces[0]: monitoring -> mon-west"]),
    ("Helm's release namespace follows the rename",
     deployment({}, annotations={"meta.helm.sh/release-name": "web", "meta.helm.sh/release-namespace": "shop"}),
     [(("metadata", "annotations"), {"meta.helm.sh/release-name": "web", "meta.helm.sh/release-namespace": "shop-west"})],
     ['rewrote: metadata.annotations["meta.helm.sh/release-namespace"]: shop -> shop-west']),
    ("a service outside the snapshot is left as it is, with a warning",
     deployment({"env": [{"name": "DB_HOST", "value": "redis.other.svc.cluster.local"},
                         {"name": "CACHE", "value": "memcached.shop.svc:11211"}]}),
     [((*WORKLOAD, "env", 0, "value"), "redis.other.svc.cluster.local"),
      ((*WORKLOAD, "env", 1, "value"), "memcached.shop.svc:11211")],
     ["env DB_HOST: redis.other.svc.cluster.local points outside the snapshot: left as it is",
      "env CACHE: memcached.shop.svc points outside the snapshot: left as it is"]),
    ("a service of a namespace the request does not map is left alone",
     deployment({"env": [{"name": "API", "value": "http://api.other-ns.svc.cluster.local"}]}),
     [((*WORKLOAD, "env", 0, "value"), "http://api.other-ns.svc.cluster.local")],
     []),
    ("a longer name that contains a service's name is never rewritten",
     deployment({"args": ["redis.shop.svc.cluster.local.example.org", "a.b.redis.shop.svc", "redis.shop.svcs",
                          "redis.shopping.io", "https://redis.shop.svc.cluster.localhost/"]}),
     [((*WORKLOAD, "args"), ["redis.shop.svc.cluster.local.example.org", "a.b.redis.shop.svc", "redis.shop.svcs",
                             "redis.shopping.io", "https://redis.shop.svc.cluster.localhost/"])],
     []),
    ("a name under another service or namespace is not this service's",
     deployment({"args": ["myredis.shop.svc", "redis.shopping.svc"]}),
     [((*WORKLOAD, "args"), ["myredis.shop.svc", "redis.shopping.svc"])],
     ["container app args: myredis.shop.svc points outside the snapshot: left as it is",
      "container app args: redis.shopping.svc points outside the snapshot: left as it is"]),
]  # fmt: skip


@pytest.mark.parametrize(("case", "obj", "expect", "notes"), REFERENCES, ids=[c[0] for c in REFERENCES])
def test_references_inside_values(
    case: str, obj: dict[str, Any], expect: list[tuple[tuple[str | int, ...], Any]], notes: list[str]
) -> None:
    item = transform(Manifest(obj), R)
    for path, value in expect:
        assert at(item.obj, path) == value, path
    assert item.notes == notes


def test_no_reference_is_rewritten_when_the_request_says_so() -> None:
    obj = deployment({"env": [{"name": "DB_HOST", "value": "redis.shop.svc.cluster.local"},
                              {"name": "OUT", "value": "redis.other.svc"}]},
                     annotations={"meta.helm.sh/release-namespace": "shop"})  # fmt: skip
    item = transform(Manifest(obj), dataclasses.replace(R, rewrite_references=False))
    assert item.namespace == "shop-west"  # the object itself still moves
    assert [e["value"] for e in at(item.obj, (*WORKLOAD, "env"))] == [
        "redis.shop.svc.cluster.local",
        "redis.other.svc",
    ]
    assert item.metadata["annotations"] == {"meta.helm.sh/release-namespace": "shop"}
    assert item.notes == []


def test_without_a_namespace_mapping_values_are_not_looked_at() -> None:
    obj = deployment({"env": [{"name": "OUT", "value": "redis.other.svc"}]})
    item = transform(Manifest(obj), Transforms(services=R.services))
    assert at(item.obj, (*WORKLOAD, "env", 0, "value")) == "redis.other.svc" and item.notes == []


def test_a_cluster_domain_of_its_own() -> None:
    obj = deployment({"args": ["redis.shop.svc.corp.internal", "redis.shop.svc.cluster.local"]})
    item = transform(Manifest(obj), dataclasses.replace(R, cluster_domain="corp.internal"))
    assert at(item.obj, (*WORKLOAD, "args")) == [
        "redis.shop-west.svc.corp.internal",
        "redis.shop.svc.cluster.local",
    ]
    assert item.notes == ["rewrote: spec.template.spec.containers[0].args[0]: "
                          "redis.shop.svc.corp.internal -> redis.shop-west.svc.corp.internal"]  # fmt: skip


def test_the_snapshot_s_services_are_known_before_any_mapping() -> None:
    captured = [
        Manifest({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "redis", "namespace": "shop"}}),
        Manifest({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "redis", "namespace": "cfg"}}),
        Manifest({"apiVersion": "serving.knative.dev/v1", "kind": "Service",
                  "metadata": {"name": "fn", "namespace": "shop"}}),
    ]  # fmt: skip
    known = with_snapshot(Transforms(namespace_map={"shop": "shop-west"}), captured)
    assert known.services == frozenset({("shop", "redis")})
    item = transform(Manifest(deployment({"env": [{"name": "R", "value": "redis.shop.svc"}]})), known)
    assert at(item.obj, (*WORKLOAD, "env", 0, "value")) == "redis.shop-west.svc"
