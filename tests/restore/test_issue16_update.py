"""Two-way diff and a true update: what only the target holds is listed, and ``update`` removes it.

The unit table pins which target-only fields are someone's content (listed) and which are the
server's (never listed), with managedFields shaped as a real API server writes them; each case is
also patched with the update's merge patch to prove the result equals the snapshot. The sandbox
tests then show a user what a dry run lists and what an update leaves in the target.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Any

import pytest

from services.restore.conflicts import update_patch, write
from services.restore.merging import merge_patch
from shared.contracts.reports import Outcome
from shared.contracts.requests import ConflictPolicy
from shared.kube.comparing import differences, target_only, without_ferry_labels
from shared.kube.objects import Manifest, Obj
from shared.runtime.clusters import KubeCluster

# -- documents ---------------------------------------------------------------------------------


def patched(doc: Obj, patch: Obj) -> Obj:
    out: Obj = merge_patch(doc, patch)
    return out


def configmap(**extra: Any) -> Obj:
    doc: Obj = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "conf", "namespace": "shop"},
                "data": {"key": "value"}}  # fmt: skip
    return patched(doc, extra)


def deployment(**extra: Any) -> Obj:
    doc: Obj = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "web", "namespace": "shop", "labels": {"app": "web"}},
        "spec": {
            "replicas": 2,
            "selector": {"matchLabels": {"app": "web"}},
            "template": {
                "metadata": {"labels": {"app": "web"}},
                "spec": {"containers": [{"name": "web", "image": "nginx:1.27"}]},
            },
        },
    }
    return patched(doc, extra)


def defaulted(doc: Obj) -> Obj:
    """``doc`` as a real API server stores it: the defaults filled in."""
    spec = doc["spec"]
    pod = spec["template"]["spec"]
    return patched(doc, {"spec": {
        "revisionHistoryLimit": 10, "progressDeadlineSeconds": 600,
        "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": "25%", "maxUnavailable": "25%"}},
        "template": {"spec": {
            "dnsPolicy": "ClusterFirst", "restartPolicy": "Always", "schedulerName": "default-scheduler",
            "securityContext": {}, "terminationGracePeriodSeconds": 30,
            "containers": [{**c, "imagePullPolicy": "IfNotPresent", "resources": {},
                            "terminationMessagePath": "/dev/termination-log",
                            "terminationMessagePolicy": "File"} for c in pod["containers"]],
        }},
    }})  # fmt: skip


def managed(manager: str, fields: Obj, operation: str = "Update", **extra: str) -> Obj:
    return {"manager": manager, "operation": operation, "apiVersion": "apps/v1", "time": "2026-01-01T00:00:00Z",
            "fieldsType": "FieldsV1", "fieldsV1": fields, **extra}  # fmt: skip


def with_managed(doc: Obj, *entries: Obj) -> Obj:
    out = copy.deepcopy(doc)
    out["metadata"]["managedFields"] = list(entries)
    return out


# What kubectl-create owns after creating the Deployment above on a real server (defaults included).
CREATED_BY_KUBECTL = {
    "f:metadata": {"f:labels": {".": {}, "f:app": {}}},
    "f:spec": {
        "f:progressDeadlineSeconds": {}, "f:replicas": {}, "f:revisionHistoryLimit": {}, "f:selector": {},
        "f:strategy": {"f:rollingUpdate": {".": {}, "f:maxSurge": {}, "f:maxUnavailable": {}}, "f:type": {}},
        "f:template": {
            "f:metadata": {"f:labels": {".": {}, "f:app": {}}},
            "f:spec": {
                "f:containers": {'k:{"name":"web"}': {
                    ".": {}, "f:image": {}, "f:imagePullPolicy": {}, "f:name": {}, "f:resources": {},
                    "f:terminationMessagePath": {}, "f:terminationMessagePolicy": {}}},
                "f:dnsPolicy": {}, "f:restartPolicy": {}, "f:schedulerName": {}, "f:securityContext": {},
                "f:terminationGracePeriodSeconds": {},
            },
        },
    },
}  # fmt: skip


def nested(path: str, leaf: Obj | None = None) -> Obj:
    """``"f:spec.f:template"`` → ``{"f:spec": {"f:template": {}}}``."""
    out: Obj = leaf if leaf is not None else {}
    for part in reversed(path.split(".")):
        out = {part: out}
    return out


# -- which target-only fields are differences -----------------------------------------------------


@dataclass
class Case:
    snapshot: Obj
    target: Obj
    listed: list[str] = field(default_factory=list)


CASES = {
    "a ConfigMap key added on the target is listed": Case(
        configmap(),
        configmap(data={"extra": "x"}, binaryData={"blob": "AA=="}),
        ["binaryData.blob: only in the target", "data.extra: only in the target"],
    ),
    "a ConfigMap equal to the snapshot has no difference": Case(configmap(), configmap()),
    "a service account token's data is the token controller's": Case(
        {
            "apiVersion": "v1",
            "kind": "Secret",
            "type": "kubernetes.io/service-account-token",
            "metadata": {"name": "t"},
        },
        {
            "apiVersion": "v1",
            "kind": "Secret",
            "type": "kubernetes.io/service-account-token",
            "metadata": {"name": "t"},
            "data": {"token": "eHl6"},
        },
    ),  # fmt: skip
    "labels added on the target are listed, Ferry's and Kubernetes' are not": Case(
        configmap(metadata={"labels": {"app": "shop"}}),
        configmap(
            metadata={
                "labels": {
                    "app": "shop",
                    "team": "ops",
                    "app.kubernetes.io/part-of": "shop",
                    "ferry.dev/request": "r-1",
                    "ferry.dev/snapshot": "s-1",
                    "kubernetes.io/metadata.name": "shop",
                }
            }
        ),
        [
            "metadata.labels.app.kubernetes.io/part-of: only in the target",
            "metadata.labels.team: only in the target",
        ],
    ),  # fmt: skip
    "annotations kubectl and controllers set are not differences, a person's are": Case(
        configmap(),
        configmap(
            metadata={
                "annotations": {
                    "example.com/owner": "ops",
                    "kubectl.kubernetes.io/last-applied-configuration": "{}",
                    "deployment.kubernetes.io/revision": "3",
                    "pv.kubernetes.io/bind-completed": "yes",
                    "volume.kubernetes.io/selected-node": "n1",
                    "control-plane.alpha.kubernetes.io/leader": "x",
                }
            }
        ),
        ["metadata.annotations.example.com/owner: only in the target"],
    ),  # fmt: skip
    "a Deployment's defaults are not differences without managedFields": Case(
        deployment(), defaulted(deployment())
    ),
    "a Deployment's defaults are not differences when Ferry created it": Case(
        deployment(), with_managed(defaulted(deployment()), managed("ferry", CREATED_BY_KUBECTL))
    ),
    "defaults the creating kubectl owns are not differences": Case(
        deployment(), with_managed(defaulted(deployment()), managed("kubectl-create", CREATED_BY_KUBECTL))
    ),
    "a field kubectl edit added is listed": Case(
        deployment(),
        with_managed(
            defaulted(deployment(spec={"template": {"spec": {"nodeSelector": {"disk": "ssd"}}}})),
            managed("ferry", CREATED_BY_KUBECTL),
            managed(
                "kubectl-edit", nested("f:spec.f:template.f:spec.f:nodeSelector", {".": {}, "f:disk": {}})
            ),
        ),
        ["spec.template.spec.nodeSelector.disk: only in the target"],
    ),
    "a field a server-side apply added is listed, the applied ones it shares are not": Case(
        deployment(),
        with_managed(
            defaulted(deployment(spec={"minReadySeconds": 5})),
            managed("ferry", CREATED_BY_KUBECTL),
            managed("argocd", {"f:spec": {"f:replicas": {}, "f:minReadySeconds": {}}}, operation="Apply"),
        ),
        ["spec.minReadySeconds: only in the target"],
    ),
    "a list the snapshot lacks is one difference": Case(
        deployment(),
        with_managed(
            defaulted(
                deployment(
                    spec={"template": {"spec": {"initContainers": [{"name": "init", "image": "busybox"}]}}}
                )
            ),
            managed(
                "kubectl-edit",
                nested(
                    "f:spec.f:template.f:spec.f:initContainers",
                    {'k:{"name":"init"}': {".": {}, "f:image": {}, "f:name": {}}},
                ),
            ),
        ),
        ["spec.template.spec.initContainers: only in the target"],
    ),  # fmt: skip
    "a field added inside a container of the snapshot is listed": Case(
        deployment(),
        with_managed(
            defaulted(deployment())
            | {
                "spec": {
                    **defaulted(deployment())["spec"],
                    "template": {
                        "metadata": {"labels": {"app": "web"}},
                        "spec": {
                            **defaulted(deployment())["spec"]["template"]["spec"],
                            "containers": [
                                {
                                    **defaulted(deployment())["spec"]["template"]["spec"]["containers"][0],
                                    "resources": {"limits": {"cpu": "1"}},
                                }
                            ],
                        },
                    },
                }
            },
            managed(
                "kubectl-edit",
                nested(
                    "f:spec.f:template.f:spec.f:containers",
                    {'k:{"name":"web"}': {"f:resources": {"f:limits": {".": {}, "f:cpu": {}}}}},
                ),
            ),
        ),
        ["spec.template.spec.containers[0].resources.limits.cpu: only in the target"],
    ),  # fmt: skip
    "what the control plane, a rollout restart and a status writer own is not a difference": Case(
        deployment(),
        with_managed(
            defaulted(
                deployment(
                    spec={
                        "template": {
                            "metadata": {
                                "annotations": {"kubectl.kubernetes.io/restartedAt": "2026-01-01T00:00:00Z"}
                            }
                        }
                    },
                    status={"replicas": 2},
                )
            ),
            managed("kube-controller-manager", {"f:spec": {"f:paused": {}}}),
            managed(
                "kubectl-rollout",
                nested(
                    "f:spec.f:template.f:metadata.f:annotations",
                    {".": {}, "f:kubectl.kubernetes.io/restartedAt": {}},
                ),
            ),
            managed("autoscaler", {"f:status": {"f:replicas": {}}}, subresource="status"),
        ),
    ),  # fmt: skip
    "a selector's and a pod template's own labels added on the target are listed, the server's are not": Case(
        deployment(),
        defaulted(
            deployment(
                spec={
                    "selector": {"matchLabels": {"tier": "front"}},
                    "template": {
                        "metadata": {
                            "labels": {"tier": "front", "pod-template-hash": "5d4f", "job-name": "x"},
                            "annotations": {"example.com/owner": "ops"},
                        }
                    },
                }
            )
        ),
        [
            "spec.selector.matchLabels.tier: only in the target",
            "spec.template.metadata.annotations.example.com/owner: only in the target",
            "spec.template.metadata.labels.tier: only in the target",
        ],
    ),
    "a Job's selector and labels the server made are not differences": Case(
        {
            "apiVersion": "batch/v1",
            "kind": "Job",
            "metadata": {"name": "j", "labels": {"app": "j"}},  # as captured: defaulted from the template
            "spec": {"template": {"metadata": {"labels": {"app": "j"}}, "spec": {"containers": []}}},
        },
        {
            "apiVersion": "batch/v1",
            "kind": "Job",
            "metadata": {
                "name": "j",
                "labels": {
                    "app": "j",
                    "controller-uid": "u",
                    "job-name": "j",
                    "batch.kubernetes.io/job-name": "j",
                },
            },
            "spec": {
                "selector": {"matchLabels": {"batch.kubernetes.io/controller-uid": "u"}},
                "template": {
                    "metadata": {
                        "labels": {
                            "app": "j",
                            "controller-uid": "u",
                            "job-name": "j",
                            "batch.kubernetes.io/controller-uid": "u",
                        }
                    },
                    "spec": {"containers": []},
                },
            },
        },
    ),  # fmt: skip
    "a Service's selector key added on the target is listed": Case(
        {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {"name": "web"},
            "spec": {"selector": {"app": "web"}},
        },
        {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {"name": "web"},
            "spec": {"selector": {"app": "web", "track": "canary"}, "clusterIP": "10.0.0.9"},
        },
        ["spec.selector.track: only in the target"],
    ),  # fmt: skip
}


@pytest.mark.parametrize("case", CASES.values(), ids=CASES.keys())
def test_target_only_fields_that_are_someones_content_are_differences(case: Case) -> None:
    found = differences(case.snapshot, case.target)
    assert [d for d in found if d.endswith("only in the target")] == case.listed
    assert found == case.listed, "nothing else differs"


@pytest.mark.parametrize("case", CASES.values(), ids=CASES.keys())
def test_the_update_patch_leaves_the_target_equal_to_the_snapshot(case: Case) -> None:
    patch = update_patch(case.snapshot, target_only(case.snapshot, case.target))
    updated = patched(case.target, patch)
    assert differences(case.snapshot, updated) == []
    for line in case.listed:  # and a field the diff named is really gone
        assert line.split(":")[0] not in differences(case.snapshot, updated)


def test_the_update_patch_nulls_each_target_only_key_and_nothing_the_server_keeps() -> None:
    target = configmap(data={"extra": "x"}, metadata={"labels": {"team": "ops", "ferry.dev/request": "r"},
                       "annotations": {"deployment.kubernetes.io/revision": "2"}})  # fmt: skip
    assert update_patch(configmap(), target_only(configmap(), target)) == {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "data": {"key": "value", "extra": None},
        "metadata": {"labels": {"team": None}},
    }


def test_verify_reads_the_same_diff_through_digests_and_without_ferry_labels() -> None:
    """The verify step's call: the expected document is digested, the live one too."""
    from shared.kube.comparing import digested

    snapshot = {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s"}, "data": {"a": "MQ=="}}
    live = {**snapshot, "data": {"a": "MQ==", "b": "Mg=="},
            "metadata": {"name": "s", "labels": {"ferry.dev/request": "r"}}}  # fmt: skip
    assert differences(digested(snapshot), digested(without_ferry_labels(live))) == [
        "data.b: only in the target"
    ]


# -- against a sandbox API server ---------------------------------------------------------------


def in_namespace(doc: Obj, ns: str) -> Obj:
    out = copy.deepcopy(doc)
    out["metadata"]["namespace"] = ns
    return out


@dataclass
class Drift:
    snapshot: Obj
    added: Obj  # what someone merge-patched into the target object (as kubectl edit would)
    listed: list[str]
    kept: dict[str, Any] = field(default_factory=dict)  # dotted path -> value that must survive the update


DRIFTS = {
    "a ConfigMap key added on the target is listed and removed": Drift(
        configmap(),
        {"data": {"extra": "x"}, "binaryData": {"blob": "AA=="}},
        ["binaryData.blob: only in the target", "data.extra: only in the target"],
    ),
    "a Secret key added on the target is listed and removed": Drift(
        {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "creds"}, "data": {"user": "YQ=="}},
        {"stringData": {"password": "p"}},
        ["data.password: only in the target"],
    ),
    "labels and annotations added on the target are listed and removed, Ferry's and the server's kept": Drift(
        configmap(metadata={"labels": {"app": "shop"}, "annotations": {"example.com/from": "snapshot"}}),
        {
            "metadata": {
                "labels": {"team": "ops", "ferry.dev/request": "earlier", "kubernetes.io/metadata.name": "x"},
                "annotations": {
                    "example.com/owner": "ops",
                    "deployment.kubernetes.io/revision": "3",
                    "kubectl.kubernetes.io/last-applied-configuration": "{}",
                },
            }
        },
        [
            "metadata.annotations.example.com/owner: only in the target",
            "metadata.labels.team: only in the target",
        ],
        {
            "metadata.labels.kubernetes.io/metadata.name": "x",
            "metadata.annotations.deployment.kubernetes.io/revision": "3",
            "metadata.annotations.kubectl.kubernetes.io/last-applied-configuration": "{}",
            "metadata.annotations.example.com/from": "snapshot",
            "metadata.labels.app": "shop",
        },
    ),  # fmt: skip
}


def value_at(obj: Obj, dotted: str) -> Any:
    """``data.extra`` or ``metadata.labels.kubernetes.io/metadata.name``: maps, then the key."""
    if dotted.startswith("metadata."):
        _, name, key = dotted.split(".", 2)
        return ((obj.get("metadata") or {}).get(name) or {}).get(key)
    name, key = dotted.split(".", 1)
    return (obj.get(name) or {}).get(key)


async def namespace_and(west: KubeCluster, ns: str, *docs: Obj) -> None:
    await west.create(Manifest({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}}))
    for doc in docs:
        await west.create(Manifest(copy.deepcopy(doc)))


@pytest.mark.parametrize("drift", DRIFTS.values(), ids=DRIFTS.keys())
async def test_a_dry_run_lists_what_only_the_target_has_and_update_removes_it(
    west: KubeCluster, namespace: str, drift: Drift
) -> None:
    snapshot = in_namespace(drift.snapshot, namespace)
    item = Manifest(copy.deepcopy(snapshot))
    await namespace_and(west, namespace, snapshot)
    resource = "configmaps" if snapshot["kind"] == "ConfigMap" else "secrets"
    await west.cluster.patch(
        resource, item.name, drift.added, namespace=namespace, field_manager="kubectl-edit"
    )

    planned = await write(west, Manifest(copy.deepcopy(snapshot)), ConflictPolicy.UPDATE, dry_run=True)
    assert planned.outcome is Outcome.PLANNED and planned.diff == drift.listed
    skipped = await write(west, Manifest(copy.deepcopy(snapshot)), ConflictPolicy.SKIP)
    assert skipped.outcome is Outcome.SKIPPED and skipped.diff == drift.listed

    updated = await write(west, Manifest(copy.deepcopy(snapshot)), ConflictPolicy.UPDATE)
    assert updated.outcome is Outcome.UPDATED and updated.diff == drift.listed, updated.reason
    live = await west.get(item)
    assert live is not None
    assert differences(without_ferry_labels(snapshot), live) == []
    for line in drift.listed:
        assert value_at(live, line.split(": ")[0]) is None, f"{line} survived the update"
    for dotted, value in drift.kept.items():
        assert value_at(live, dotted) == value, f"{dotted} must survive the update"
    again = await write(west, Manifest(copy.deepcopy(snapshot)), ConflictPolicy.UPDATE)
    assert again.outcome is Outcome.UNCHANGED, again.diff


async def test_a_restored_deployment_compared_with_its_snapshot_shows_no_difference(
    west: KubeCluster, namespace: str
) -> None:
    snapshot = in_namespace(deployment(), namespace)
    await namespace_and(west, namespace)
    created = await write(west, Manifest(copy.deepcopy(snapshot)), ConflictPolicy.UPDATE)
    assert created.outcome is Outcome.CREATED, created.reason
    live = await west.get(Manifest(snapshot))
    assert live is not None and live["spec"].get("strategy"), "the server defaulted the strategy"
    assert differences(snapshot, without_ferry_labels(live)) == []
    for policy in ConflictPolicy:
        again = await write(west, Manifest(copy.deepcopy(snapshot)), policy)
        assert again.outcome is Outcome.UNCHANGED, again.diff


async def test_an_updated_service_keeps_its_cluster_ip_and_loses_what_only_the_target_had(
    west: KubeCluster, namespace: str
) -> None:
    snapshot = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "web", "namespace": namespace},
                "spec": {"selector": {"app": "web"}, "ports": [{"port": 80, "protocol": "TCP"}]}}  # fmt: skip
    await namespace_and(west, namespace, snapshot)
    await west.cluster.patch("services", "web", {"metadata": {"labels": {"team": "ops"}}, "spec": {"ports": [
        {"port": 8080, "protocol": "TCP"}]}}, namespace=namespace, field_manager="kubectl-edit")  # fmt: skip
    before = await west.get(Manifest(snapshot))
    assert before is not None and before["spec"].get("clusterIP")

    result = await write(west, Manifest(copy.deepcopy(snapshot)), ConflictPolicy.UPDATE)
    assert result.outcome is Outcome.UPDATED, result.reason
    assert "metadata.labels.team: only in the target" in result.diff
    after = await west.get(Manifest(snapshot))
    assert after is not None
    assert after["spec"]["clusterIP"] == before["spec"]["clusterIP"], "the server's cluster IP is kept"
    assert after["spec"]["ports"][0]["port"] == 80 and "team" not in (after["metadata"].get("labels") or {})
    assert differences(snapshot, after) == []


async def test_an_update_the_server_refuses_in_place_fails_that_object_and_says_recreate_would_do_it(
    west: KubeCluster, namespace: str
) -> None:
    snapshot = in_namespace(deployment(), namespace)
    drifted = in_namespace(deployment(), namespace)  # someone's own web, selecting other pods
    drifted["spec"]["selector"]["matchLabels"]["app"] = "web-v2"
    drifted["spec"]["template"]["metadata"]["labels"]["app"] = "web-v2"
    await namespace_and(west, namespace, drifted)

    refused = await write(west, Manifest(copy.deepcopy(snapshot)), ConflictPolicy.UPDATE)
    assert refused.outcome is Outcome.FAILED
    assert "spec.selector" in refused.reason and "field is immutable" in refused.reason
    assert "conflict policy recreate deletes and creates it again" in refused.reason
    live = await west.get(Manifest(snapshot))
    assert live is not None and live["spec"]["selector"]["matchLabels"] == {"app": "web-v2"}  # untouched

    recreated = await write(west, Manifest(copy.deepcopy(snapshot)), ConflictPolicy.RECREATE)
    assert recreated.outcome is Outcome.RECREATED, recreated.reason
    live = await west.get(Manifest(snapshot))
    assert live is not None and live["spec"]["selector"]["matchLabels"] == {"app": "web"}


async def test_a_selector_label_only_the_target_has_is_a_difference_update_cannot_remove(
    west: KubeCluster, namespace: str
) -> None:
    snapshot = in_namespace(deployment(), namespace)
    drifted = in_namespace(deployment(), namespace)
    drifted["spec"]["selector"]["matchLabels"]["tier"] = "front"
    drifted["spec"]["template"]["metadata"]["labels"]["tier"] = "front"
    await namespace_and(west, namespace, drifted)

    planned = await write(west, Manifest(copy.deepcopy(snapshot)), ConflictPolicy.UPDATE, dry_run=True)
    assert planned.outcome is Outcome.PLANNED
    assert planned.diff == [
        "spec.selector.matchLabels.tier: only in the target",
        "spec.template.metadata.labels.tier: only in the target",
    ]
    refused = await write(west, Manifest(copy.deepcopy(snapshot)), ConflictPolicy.UPDATE)
    assert refused.outcome is Outcome.FAILED and "field is immutable" in refused.reason
    assert "conflict policy recreate deletes and creates it again" in refused.reason
