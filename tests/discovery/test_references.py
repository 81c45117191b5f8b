"""The references one object makes, read from its spec (table-driven, no cluster needed)."""

from __future__ import annotations

from typing import Any

import pytest

from services.discovery.references import Ref, claims_mounted, references


def template(spec: dict[str, Any], kind: str = "Deployment") -> dict[str, Any]:
    body: dict[str, Any] = {"template": {"spec": spec}}
    if kind == "CronJob":
        body = {"jobTemplate": {"spec": body}}
    return {"kind": kind, "metadata": {"name": "w", "namespace": "ns"}, "spec": body}


CASES = [
    pytest.param(
        template({"initContainers": [{"env": [{"name": "A", "valueFrom": {"configMapKeyRef": {"name": "init-cm", "key": "k"}}}]}]}),
        [Ref("configmaps", "ns", "init-cm", "env.configMapKeyRef")],
        id="an init container's env reads a ConfigMap key",
    ),
    pytest.param(
        template({"volumes": [{"name": "p", "projected": {"sources": [{"secret": {"name": "s", "optional": True}},
                                                                         {"configMap": {"name": "c"}}]}}]}),
        [Ref("secrets", "ns", "s", "volumes.projected", optional=True), Ref("configmaps", "ns", "c", "volumes.projected")],
        id="a projected volume names a Secret (optional) and a ConfigMap",
    ),
    pytest.param(
        template({"serviceAccountName": "robot", "imagePullSecrets": [{"name": "registry"}], "priorityClassName": "high"},
                 kind="CronJob"),
        [Ref("serviceaccounts", "ns", "robot", "serviceAccountName"),
         Ref("secrets", "ns", "registry", "imagePullSecrets", optional=True),
         Ref("priorityclasses.scheduling.k8s.io", "", "high", "priorityClassName")],
        id="a CronJob's job template names its account, pull secret and priority class",
    ),
    pytest.param(
        {"kind": "Ingress", "metadata": {"name": "i", "namespace": "ns"},
         "spec": {"defaultBackend": {"service": {"name": "fallback"}}, "tls": [{"secretName": "cert"}],
                  "rules": [{"http": {"paths": [{"backend": {"service": {"name": "web"}}}]}}]}},
        [Ref("services", "ns", "fallback", "backend.service"), Ref("services", "ns", "web", "backend.service"),
         Ref("secrets", "ns", "cert", "tls.secretName")],
        id="an Ingress names its backends and its TLS secret",
    ),
    pytest.param(
        {"kind": "ClusterRoleBinding", "metadata": {"name": "b"},
         "roleRef": {"kind": "ClusterRole", "name": "view"},
         "subjects": [{"kind": "ServiceAccount", "name": "robot", "namespace": "ns"}, {"kind": "User", "name": "ann"}]},
        [Ref("clusterroles.rbac.authorization.k8s.io", "", "view", "roleRef"),
         Ref("serviceaccounts", "ns", "robot", "subjects")],
        id="a ClusterRoleBinding names its role and its service-account subjects only",
    ),
    pytest.param(
        {"kind": "HorizontalPodAutoscaler", "metadata": {"name": "h", "namespace": "ns"},
         "spec": {"scaleTargetRef": {"apiVersion": "apps/v1", "kind": "StatefulSet", "name": "db"}}},
        [Ref("kind:StatefulSet@apps/v1", "ns", "db", "scaleTargetRef")],
        id="an HPA names its scale target by kind, resolved through discovery",
    ),
    pytest.param(
        {"kind": "StatefulSet", "metadata": {"name": "db", "namespace": "ns"},
         "spec": {"serviceName": "db", "replicas": 2, "volumeClaimTemplates": [{"metadata": {"name": "data"}}],
                  "template": {"spec": {"volumes": [{"name": "data", "persistentVolumeClaim": {"claimName": "data"}},
                                                    {"name": "cfg", "configMap": {"name": "db-config"}}]}}}},
        [Ref("configmaps", "ns", "db-config", "volumes.configMap"), Ref("services", "ns", "db", "serviceName"),
         Ref("persistentvolumeclaims", "ns", "data-db-0", "volumeClaimTemplates", optional=True),
         Ref("persistentvolumeclaims", "ns", "data-db-1", "volumeClaimTemplates", optional=True)],
        id="a StatefulSet names the claims of its templates per replica, and no claim its template's volume replaces",
    ),
    pytest.param(
        {"kind": "StatefulSet", "metadata": {"name": "kafka", "namespace": "ns"},
         "spec": {"replicas": 1, "ordinals": {"start": 3},
                  "volumeClaimTemplates": [{"metadata": {"name": "logs"}}, {"metadata": {"name": "data"}}]},
         "status": {"replicas": 2}},
        [Ref("persistentvolumeclaims", "ns", "logs-kafka-3", "volumeClaimTemplates", optional=True),
         Ref("persistentvolumeclaims", "ns", "logs-kafka-4", "volumeClaimTemplates", optional=True),
         Ref("persistentvolumeclaims", "ns", "data-kafka-3", "volumeClaimTemplates", optional=True),
         Ref("persistentvolumeclaims", "ns", "data-kafka-4", "volumeClaimTemplates", optional=True)],
        id="a StatefulSet scaling down still names its live replicas' claims, from its first ordinal",
    ),
    pytest.param(
        {"kind": "ConfigMap", "metadata": {"name": "c", "namespace": "ns"}, "data": {"secretName": "x"}},
        [],
        id="a ConfigMap's data is not a reference",
    ),
]  # fmt: skip


@pytest.mark.parametrize(("obj", "expected"), CASES)
def test_references(obj: dict[str, Any], expected: list[Ref]) -> None:
    assert references(obj) == expected


def test_a_statefulset_mounts_one_claim_per_replica_of_each_template() -> None:
    sts = {"kind": "StatefulSet", "metadata": {"name": "db", "namespace": "ns"},
           "spec": {"replicas": 2, "volumeClaimTemplates": [{"metadata": {"name": "data"}}],
                    "template": {"spec": {"volumes": [{"name": "x", "persistentVolumeClaim": {"claimName": "shared"}}]}}}}  # fmt: skip
    assert claims_mounted(sts) == ["shared", "data-db-0", "data-db-1"]


def test_a_statefulset_template_volume_named_like_a_claim_template_is_that_claim() -> None:
    sts = {"kind": "StatefulSet", "metadata": {"name": "db", "namespace": "ns"},
           "spec": {"replicas": 1, "volumeClaimTemplates": [{"metadata": {"name": "data"}}],
                    "template": {"spec": {"volumes": [{"name": "data", "persistentVolumeClaim": {"claimName": "data"}}]}}}}  # fmt: skip
    assert claims_mounted(sts) == ["data-db-0"]
