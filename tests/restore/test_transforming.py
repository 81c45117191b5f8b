"""Transforms: a namespace rename reaches every place a namespace appears; classes and registries map."""

from __future__ import annotations

from typing import Any

import pytest

from services.restore.transforming import Transforms, map_image, transform
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
