"""Cleaning: every server-set field Velero and Crane strip is stripped, and nothing the user wrote."""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest

from services.restore import manifests
from services.restore.cleaning import clean, whiteout
from services.restore.restoring import prepare
from services.restore.transforming import Transforms
from shared.contracts.reports import Outcome
from shared.kube.objects import Manifest

CASES: list[tuple[str, dict[str, Any], dict[str, Any]]] = [
    (
        "server-set metadata and status are removed, labels and annotations the user set are kept",
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {
                "name": "conf",
                "namespace": "shop",
                "uid": "u-1",
                "resourceVersion": "42",
                "generation": 3,
                "creationTimestamp": "2026-01-01T00:00:00Z",
                "managedFields": [{"manager": "kubectl"}],
                "selfLink": "/api/v1/namespaces/shop/configmaps/conf",
                "labels": {"app": "shop"},
                "annotations": {"team": "web", "kubectl.kubernetes.io/last-applied-configuration": "{}"},
            },
            "data": {"a": "1"},
            "status": {"x": 1},
        },
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {
                "name": "conf",
                "namespace": "shop",
                "labels": {"app": "shop"},
                "annotations": {"team": "web"},
            },
            "data": {"a": "1"},
        },
    ),
    (
        "a Service loses its cluster IPs and auto-assigned node ports",
        {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {"name": "web", "namespace": "shop"},
            "spec": {
                "type": "NodePort",
                "clusterIP": "10.0.0.7",
                "clusterIPs": ["10.0.0.7"],
                "ports": [{"port": 80, "protocol": "TCP", "nodePort": 30080}],
            },
        },
        {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {"name": "web", "namespace": "shop"},
            "spec": {"type": "NodePort", "ports": [{"port": 80, "protocol": "TCP"}]},
        },
    ),
    (
        "a headless Service keeps clusterIP None, and a node port the user applied is kept",
        {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {
                "name": "db",
                "namespace": "shop",
                "annotations": {
                    "kubectl.kubernetes.io/last-applied-configuration": json.dumps(
                        {"spec": {"ports": [{"port": 5432, "nodePort": 30432}]}}
                    )
                },
            },
            "spec": {"clusterIP": "None", "ports": [{"port": 5432, "protocol": "TCP", "nodePort": 30432}]},
        },
        {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {"name": "db", "namespace": "shop"},
            "spec": {"clusterIP": "None", "ports": [{"port": 5432, "protocol": "TCP", "nodePort": 30432}]},
        },
    ),
    (
        "a PVC loses its bound volume and binding annotations",
        {
            "apiVersion": "v1",
            "kind": "PersistentVolumeClaim",
            "metadata": {
                "name": "data",
                "namespace": "shop",
                "annotations": {
                    "pv.kubernetes.io/bind-completed": "yes",
                    "pv.kubernetes.io/bound-by-controller": "yes",
                    "volume.kubernetes.io/selected-node": "node-1",
                    "volume.kubernetes.io/storage-provisioner": "local",
                },
            },
            "spec": {"volumeName": "pvc-123", "storageClassName": "fast", "resources": {}},
            "status": {"phase": "Bound"},
        },
        {
            "apiVersion": "v1",
            "kind": "PersistentVolumeClaim",
            "metadata": {"name": "data", "namespace": "shop"},
            "spec": {"storageClassName": "fast", "resources": {}},
        },
    ),
    (
        "a PV keeps its claimRef but not the claim's uid and resourceVersion",
        {
            "apiVersion": "v1",
            "kind": "PersistentVolume",
            "metadata": {"name": "pv-1", "annotations": {"pv.kubernetes.io/bound-by-controller": "yes"}},
            "spec": {"claimRef": {"name": "data", "namespace": "shop", "uid": "u", "resourceVersion": "9"}},
        },
        {
            "apiVersion": "v1",
            "kind": "PersistentVolume",
            "metadata": {"name": "pv-1"},
            "spec": {"claimRef": {"name": "data", "namespace": "shop"}},
        },
    ),
    (
        "a pod loses its node, priority and service-account token volumes",
        {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": "p", "namespace": "shop"},
            "spec": {
                "nodeName": "node-1",
                "priority": 0,
                "serviceAccountName": "web",
                "volumes": [
                    {"name": "web-token-abcde", "secret": {"secretName": "web-token-abcde"}},
                    {"name": "kube-api-access-x1", "projected": {}},
                    {"name": "data", "persistentVolumeClaim": {"claimName": "data"}},
                ],
                "containers": [
                    {
                        "name": "c",
                        "volumeMounts": [
                            {"name": "web-token-abcde", "mountPath": "/var/run/secrets"},
                            {"name": "kube-api-access-x1", "mountPath": "/var/run/k"},
                            {"name": "data", "mountPath": "/data"},
                        ],
                    }
                ],
            },
        },
        {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": "p", "namespace": "shop"},
            "spec": {
                "serviceAccountName": "web",
                "volumes": [{"name": "data", "persistentVolumeClaim": {"claimName": "data"}}],
                "containers": [{"name": "c", "volumeMounts": [{"name": "data", "mountPath": "/data"}]}],
            },
        },
    ),
    (
        "a Job loses the controller-uid selector and labels",
        {
            "apiVersion": "batch/v1",
            "kind": "Job",
            "metadata": {
                "name": "migrate",
                "namespace": "shop",
                "labels": {
                    "controller-uid": "u1",
                    "batch.kubernetes.io/controller-uid": "u1",
                    "job-name": "migrate",
                },
            },
            "spec": {
                "selector": {"matchLabels": {"batch.kubernetes.io/controller-uid": "u1"}},
                "manualSelector": False,
                "template": {
                    "metadata": {
                        "labels": {
                            "batch.kubernetes.io/controller-uid": "u1",
                            "controller-uid": "u1",
                            "job-name": "migrate",
                        }
                    },
                    "spec": {"containers": [{"name": "c"}]},
                },
            },
        },
        {
            "apiVersion": "batch/v1",
            "kind": "Job",
            "metadata": {"name": "migrate", "namespace": "shop", "labels": {"job-name": "migrate"}},
            "spec": {
                "template": {
                    "metadata": {"labels": {"job-name": "migrate"}},
                    "spec": {"containers": [{"name": "c"}]},
                },
            },
        },
    ),
    (
        "a ServiceAccount forgets its token secrets, keeps the others",
        {
            "apiVersion": "v1",
            "kind": "ServiceAccount",
            "metadata": {"name": "web", "namespace": "shop"},
            "secrets": [{"name": "web-token-x2"}, {"name": "registry"}],
        },
        {
            "apiVersion": "v1",
            "kind": "ServiceAccount",
            "metadata": {"name": "web", "namespace": "shop"},
            "secrets": [{"name": "registry"}],
        },
    ),
]


@pytest.mark.parametrize(("case", "captured", "expected"), CASES, ids=[c[0] for c in CASES])
def test_clean(case: str, captured: dict[str, Any], expected: dict[str, Any]) -> None:
    assert clean(Manifest(captured)).obj == expected


WHITEOUTS = [
    ("an owned ReplicaSet is left to its Deployment", {"apiVersion": "apps/v1", "kind": "ReplicaSet",
     "metadata": {"name": "web-1", "namespace": "s", "ownerReferences": [{"kind": "Deployment", "name": "web"}]}},
     "owned by Deployment/web"),
    ("events are never restored", {"apiVersion": "v1", "kind": "Event", "metadata": {"name": "e", "namespace": "s"}},
     "never restored"),
    ("endpoints are generated", {"apiVersion": "v1", "kind": "Endpoints", "metadata": {"name": "web", "namespace": "s"}},
     "generated"),
    ("a token secret is issued by the target", {"apiVersion": "v1", "kind": "Secret", "type": "kubernetes.io/service-account-token",
     "metadata": {"name": "t", "namespace": "s"}}, "issued by the target"),
    ("the default service account comes with the namespace", {"apiVersion": "v1", "kind": "ServiceAccount",
     "metadata": {"name": "default", "namespace": "s"}}, "default ServiceAccount"),
    ("kube-root-ca.crt comes with the namespace", {"apiVersion": "v1", "kind": "ConfigMap",
     "metadata": {"name": "kube-root-ca.crt", "namespace": "s"}}, "kube-root-ca.crt"),
    ("a plain Deployment is restored", {"apiVersion": "apps/v1", "kind": "Deployment",
     "metadata": {"name": "web", "namespace": "s"}}, ""),
]  # fmt: skip


@pytest.mark.parametrize(("case", "obj", "reason"), WHITEOUTS, ids=[c[0] for c in WHITEOUTS])
def test_whiteout(case: str, obj: dict[str, Any], reason: str) -> None:
    found = whiteout(Manifest(obj))
    assert (reason in found) if reason else found == ""


def test_owned_objects_are_kept_when_asked() -> None:
    owned = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p", "namespace": "s",
             "ownerReferences": [{"kind": "Job", "name": "j"}]}}  # fmt: skip
    assert whiteout(Manifest(owned), keep_owned=True) == ""
    assert "ownerReferences" not in clean(Manifest(owned)).obj["metadata"]


def test_an_object_whose_owner_was_not_captured_is_restored_without_its_owner_reference() -> None:
    """Discovery marks an object owned only when its owner is in the snapshot; a pod captured alone
    (``--include-resources pods``) has nobody to make it again, so it is restored."""
    pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p", "namespace": "s",
           "ownerReferences": [{"kind": "ReplicaSet", "name": "web-1", "uid": "u1"}]}}  # fmt: skip
    assert whiteout(Manifest(copy.deepcopy(pod), owned=False)) == ""
    assert "ownerReferences" not in clean(Manifest(copy.deepcopy(pod), owned=False)).obj["metadata"]
    assert "owned by ReplicaSet/web-1" in whiteout(Manifest(copy.deepcopy(pod), owned=True))
    assert "owned by ReplicaSet/web-1" in whiteout(Manifest(copy.deepcopy(pod)))  # a Velero backup: unknown


def test_the_inventory_s_owned_mark_reaches_the_restore() -> None:
    items = [
        {"key": "pods/s/a", "resource": "pods", "api_version": "v1", "kind": "Pod", "name": "a", "owned": True,
         "object": {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "a", "namespace": "s"}}},
        {"key": "pods/s/b", "resource": "pods", "api_version": "v1", "kind": "Pod", "name": "b", "owned": False,
         "object": {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "b", "namespace": "s"}}},
    ]  # fmt: skip
    loaded = manifests.parse(json.dumps({"items": items}).encode())
    assert [m.owned for m in loaded] == [True, False]


def job(status: dict[str, Any] | None = None, owner: str = "", **spec: Any) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": "migrate", "namespace": "shop", "uid": "j1"}
    if owner:
        meta["ownerReferences"] = [{"apiVersion": "batch/v1", "kind": "CronJob", "name": owner, "uid": "c1"}]
    return {"apiVersion": "batch/v1", "kind": "Job", "metadata": meta,
            "spec": {"template": {"spec": {"containers": [{"name": "c"}]}}, **spec}, "status": status or {}}  # fmt: skip


COMPLETE = {"type": "Complete", "status": "True"}
COMPLETED = "completed in the source: it would run again"
JOBS = [
    ("a Job with a Complete condition is not restored",
     job({"succeeded": 1, "conditions": [COMPLETE]}), None, COMPLETED),
    ("a Job that succeeded as often as its completions is not restored",
     job({"succeeded": 3}, completions=3), None, COMPLETED),
    ("a Job without completions is done after one success once no pod runs",
     job({"succeeded": 1}), None, COMPLETED),
    ("a Job still short of its completions is restored",
     job({"succeeded": 1, "active": 1}, completions=3), None, ""),
    ("a running Job is restored",
     job({"active": 1}), None, ""),
    ("a Job whose CronJob was not captured is left to that CronJob",
     job({"active": 1}, owner="nightly"), False, "owned by CronJob nightly, which creates its Jobs"),
    ("a finished Job of a captured CronJob is left to that CronJob",
     job({"succeeded": 1, "conditions": [COMPLETE]}, owner="nightly"), True,
     "owned by CronJob nightly, which creates its Jobs"),
]  # fmt: skip


@pytest.mark.parametrize(("case", "obj", "owned", "reason"), JOBS, ids=[c[0] for c in JOBS])
def test_jobs_that_would_run_again_are_not_restored(
    case: str, obj: dict[str, Any], owned: bool | None, reason: str
) -> None:
    assert whiteout(Manifest(copy.deepcopy(obj), owned=owned)) == reason
    restored = Manifest(copy.deepcopy(obj), owned=owned)
    assert whiteout(restored, completed_jobs=True) == ""
    assert "ownerReferences" not in clean(restored).obj["metadata"]


def test_a_job_another_controller_owns_is_still_left_to_it_with_completed_jobs() -> None:
    obj = job({"active": 1})
    obj["metadata"]["ownerReferences"] = [{"kind": "Workflow", "name": "wf"}]
    assert "owned by Workflow/wf" in whiteout(Manifest(obj), completed_jobs=True)


def test_a_restore_reports_the_jobs_it_leaves_out_and_why() -> None:
    nightly, load = job({"active": 1}, owner="nightly"), job({"active": 1})
    nightly["metadata"]["name"], load["metadata"]["name"] = "nightly-1", "load"
    captured = [Manifest(job({"succeeded": 1, "conditions": [COMPLETE]})), Manifest(nightly, owned=True),
                Manifest(load)]  # fmt: skip
    plan = prepare(captured, Transforms(), [])
    assert {(r.key, r.outcome, r.reason) for r in plan.results} == {
        ("jobs.batch/shop/migrate", Outcome.SKIPPED, COMPLETED),
        ("jobs.batch/shop/nightly-1", Outcome.SKIPPED, "owned by CronJob nightly, which creates its Jobs"),
    }
    assert [m.key for m in plan.items] == ["jobs.batch/shop/load"]
    assert "status" not in plan.items[0].obj
