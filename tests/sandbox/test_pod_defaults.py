"""What a real API server fills in wherever a PodSpec lives, and the two HPA versions on one object.

Kubernetes 1.32's ``SetDefaults_PodSpec``/``SetDefaults_Container``/volume and probe defaults on
Pods and on every pod template; the Pod-only ``SetDefaults_Pod`` and admission plugins (Priority,
DefaultTolerationSeconds); ``autoscaling/v1`` and ``v2`` HorizontalPodAutoscalers converted over
one stored object. Everything is read back the way a client reads it (``kubectl get -o json``).
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from tests.sandbox.test_defaults import MISSING, shaped

Kubectl = Callable[..., Awaitable[tuple[int, str, str]]]
CONTAINER_DEFAULTS = {
    "imagePullPolicy": "IfNotPresent",
    "terminationMessagePath": "/dev/termination-log",
    "terminationMessagePolicy": "File",
    "resources": {},
}
SPEC_DEFAULTS = {
    "restartPolicy": "Always",
    "dnsPolicy": "ClusterFirst",
    "schedulerName": "default-scheduler",
    "terminationGracePeriodSeconds": 30,
    "securityContext": {},
}
FULL_POD_SPEC = {
    "serviceAccountName": "robot",
    "containers": [
        {
            "name": "web",
            "image": "nginx:1.27",
            "ports": [{"containerPort": 80}],
            "env": [{"name": "NODE", "valueFrom": {"fieldRef": {"fieldPath": "spec.nodeName"}}}],
            "livenessProbe": {"httpGet": {"port": 80}},
            "readinessProbe": {"exec": {"command": ["true"]}, "periodSeconds": 3},
        }
    ],
    "initContainers": [{"name": "init", "image": "busybox"}],
    "volumes": [
        {"name": "scratch"},
        {"name": "cfg", "configMap": {"name": "cfg"}},
        {"name": "key", "secret": {"secretName": "key", "defaultMode": 256}},
        {"name": "host", "hostPath": {"path": "/tmp"}},
        {"name": "all", "projected": {"sources": [{"serviceAccountToken": {"path": "t"}}]}},
    ],
}
FULL_DEFAULTS = {
    **SPEC_DEFAULTS,
    "serviceAccount": "robot",
    "containers": [
        {
            **CONTAINER_DEFAULTS,
            "ports": [{"containerPort": 80, "protocol": "TCP"}],
            "env": [{"valueFrom": {"fieldRef": {"apiVersion": "v1"}}}],
            "livenessProbe": {
                "httpGet": {"path": "/", "scheme": "HTTP"},
                "timeoutSeconds": 1,
                "periodSeconds": 10,
                "successThreshold": 1,
                "failureThreshold": 3,
            },
            "readinessProbe": {"periodSeconds": 3, "timeoutSeconds": 1},
        }
    ],
    "initContainers": [{**CONTAINER_DEFAULTS, "imagePullPolicy": "Always"}],
    "volumes": [
        {"emptyDir": {}},
        {"configMap": {"defaultMode": 420}},
        {"secret": {"defaultMode": 256}},
        {"hostPath": {"type": ""}},
        {
            "projected": {
                "defaultMode": 420,
                "sources": [{"serviceAccountToken": {"expirationSeconds": 3600}}],
            }
        },
    ],
}
LABELS = {"app": "a"}
TEMPLATE = {"metadata": {"labels": LABELS}, "spec": FULL_POD_SPEC}
JOB_TEMPLATE = {"spec": {**FULL_POD_SPEC, "restartPolicy": "Never"}}
TEMPLATE_DEFAULTS = {"spec": FULL_DEFAULTS}
NOT_POD_ONLY = {
    "enableServiceLinks": MISSING,
    "priority": MISSING,
    "preemptionPolicy": MISSING,
    "tolerations": MISSING,
}


def doc(api_version: str, kind: str, name: str, spec: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {"apiVersion": api_version, "kind": kind, "metadata": {"name": name}, "spec": spec, **extra}


async def _create_and_get(kubectl: Kubectl, ns: str, body: dict[str, Any]) -> dict[str, Any]:
    code, _, err = await kubectl("create", "-n", ns, "-f", "-", stdin=json.dumps(body))
    assert code == 0, err
    code, out, err = await kubectl(
        "get", "-n", ns, body["kind"].lower(), body["metadata"]["name"], "-o", "json"
    )
    assert code == 0, err
    return json.loads(out)  # type: ignore[no-any-return]


SEL = {"selector": {"matchLabels": LABELS}}
TEMPLATED = [
    pytest.param(
        doc("apps/v1", "Deployment", "d", {**SEL, "template": TEMPLATE}), "spec.template", id="Deployment"
    ),
    pytest.param(
        doc("apps/v1", "ReplicaSet", "r", {**SEL, "template": TEMPLATE}), "spec.template", id="ReplicaSet"
    ),
    pytest.param(
        doc("apps/v1", "StatefulSet", "s", {**SEL, "serviceName": "s", "template": TEMPLATE}),
        "spec.template",
        id="StatefulSet",
    ),
    pytest.param(
        doc("apps/v1", "DaemonSet", "ds", {**SEL, "template": TEMPLATE}), "spec.template", id="DaemonSet"
    ),
    pytest.param(doc("v1", "ReplicationController", "rc", {"template": TEMPLATE}), "spec.template", id="RC"),
    pytest.param(doc("batch/v1", "Job", "j", {"template": JOB_TEMPLATE}), "spec.template", id="Job"),
    pytest.param(
        doc(
            "batch/v1",
            "CronJob",
            "cj",
            {"schedule": "@daily", "jobTemplate": {"spec": {"template": JOB_TEMPLATE}}},
        ),
        "spec.jobTemplate.spec.template",
        id="CronJob",
    ),
    pytest.param(
        {"apiVersion": "v1", "kind": "PodTemplate", "metadata": {"name": "pt"}, "template": TEMPLATE},
        "template",
        id="PodTemplate",
    ),
]


def _dig(obj: dict[str, Any], path: str) -> Any:
    for part in path.split("."):
        obj = obj[part]
    return obj


@pytest.mark.parametrize(("body", "path"), TEMPLATED)
async def test_every_pod_template_gets_the_podspec_defaults_but_no_pod_only_ones(
    kubectl: Kubectl, ns: str, body: dict[str, Any], path: str
) -> None:
    template = _dig(await _create_and_get(kubectl, ns, body), path)
    expected = {"spec": {**FULL_DEFAULTS, **NOT_POD_ONLY}}
    if body["kind"] in ("Job", "CronJob"):
        expected["spec"] = {**expected["spec"], "restartPolicy": "Never"}
    assert shaped(template, expected) == expected


async def test_a_pod_gets_the_podspec_defaults_and_what_its_admission_plugins_add(
    kubectl: Kubectl, ns: str
) -> None:
    code, _, err = await kubectl("create", "serviceaccount", "robot", "-n", ns)  # the plugin looks it up
    assert code == 0, err
    pod = await _create_and_get(kubectl, ns, doc("v1", "Pod", "p", FULL_POD_SPEC))
    sources = [{"serviceAccountToken": {"expirationSeconds": 3607}}, {"configMap": {}}, {"downwardAPI": {}}]
    token = {"projected": {"defaultMode": 420, "sources": sources}}
    expected = {
        **FULL_DEFAULTS,
        "volumes": [*FULL_DEFAULTS["volumes"], token],  # the ServiceAccount plugin's kube-api-access-xxxxx
        "enableServiceLinks": True,
        "priority": 0,
        "preemptionPolicy": "PreemptLowerPriority",
        "tolerations": [
            {"key": k, "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 300}
            for k in ("node.kubernetes.io/not-ready", "node.kubernetes.io/unreachable")
        ],
    }
    assert shaped(pod["spec"], expected) == expected


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        pytest.param(
            {"containers": [{"name": "c", "image": "busybox", "imagePullPolicy": "Never"}]},
            {
                "containers": [{"imagePullPolicy": "Never"}],
                "serviceAccountName": "default",
                "serviceAccount": "default",
            },
            id="a client's pull policy is kept, the ServiceAccount plugin names the default account",
        ),
        pytest.param(
            {"containers": [{"name": "c", "image": "reg:5000/app@sha256:" + "a" * 64}]},
            {"containers": [{"imagePullPolicy": "IfNotPresent"}]},
            id="an image by digest is not pulled again",
        ),
        pytest.param(
            {"containers": [{"name": "c", "image": "app:latest", "resources": {"limits": {"cpu": "1"}}}]},
            {"containers": [{"imagePullPolicy": "Always", "resources": {"requests": {"cpu": "1"}}}]},
            id="a latest image is always pulled and a pod's limits become its requests",
        ),
        pytest.param(
            {
                "enableServiceLinks": False,
                "priorityClassName": "system-node-critical",
                "tolerations": [{"operator": "Exists"}],
                "containers": [{"name": "c", "image": "busybox"}],
            },
            {
                "enableServiceLinks": False,
                "priority": 2000001000,
                "tolerations": [{"operator": "Exists"}],
            },
            id="a pod tolerating everything gets no default tolerations, a system class its priority",
        ),
    ],
)
async def test_a_pods_own_values_are_kept(
    kubectl: Kubectl, ns: str, spec: dict[str, Any], expected: dict[str, Any]
) -> None:
    pod = await _create_and_get(kubectl, ns, doc("v1", "Pod", "p", spec))
    assert shaped(pod["spec"], expected) == expected


async def test_a_pod_naming_a_missing_priority_class_is_forbidden(kubectl: Kubectl, ns: str) -> None:
    body = doc("v1", "Pod", "p", {"priorityClassName": "nope", "containers": [{"name": "c", "image": "x"}]})
    code, _, err = await kubectl("create", "-n", ns, "-f", "-", stdin=json.dumps(body))
    assert code != 0
    assert 'pods "p" is forbidden: no PriorityClass with name nope was found' in err


async def test_a_job_without_a_restart_policy_is_refused_as_for_real(kubectl: Kubectl, ns: str) -> None:
    body = doc("batch/v1", "Job", "j", {"template": {"spec": {"containers": [{"name": "c", "image": "x"}]}}})
    code, _, err = await kubectl("create", "-n", ns, "-f", "-", stdin=json.dumps(body))
    assert code != 0
    assert 'spec.template.spec.restartPolicy: Unsupported value: "Always"' in err


async def test_defaults_come_back_after_an_update_removes_them(kubectl: Kubectl, ns: str) -> None:
    deploy = await _create_and_get(
        kubectl, ns, doc("apps/v1", "Deployment", "d", {**SEL, "template": TEMPLATE})
    )
    patch = [{"op": "remove", "path": "/spec/template/spec/containers/0/terminationMessagePath"}]
    code, _, err = await kubectl("patch", "-n", ns, "deployment", "d", "--type=json", "-p", json.dumps(patch))
    assert code == 0, err
    code, out, err = await kubectl("get", "-n", ns, "deployment", "d", "-o", "json")
    after = json.loads(out)
    assert (
        after["spec"]["template"]["spec"]["containers"][0]["terminationMessagePath"] == "/dev/termination-log"
    )
    assert after["metadata"]["resourceVersion"] == deploy["metadata"]["resourceVersion"]  # a no-op


async def test_kubectl_create_deployment_shows_the_template_defaults(kubectl: Kubectl, ns: str) -> None:
    code, _, err = await kubectl("create", "deployment", "web", "-n", ns, "--image=nginx", "--port=80")
    assert code == 0, err
    code, out, err = await kubectl("get", "deploy", "web", "-n", ns, "-o", "json")
    assert code == 0, err
    spec = json.loads(out)["spec"]["template"]["spec"]
    expected = {
        **SPEC_DEFAULTS,
        "containers": [
            {
                **CONTAINER_DEFAULTS,
                "imagePullPolicy": "Always",
                "ports": [{"containerPort": 80, "protocol": "TCP"}],
            }
        ],
    }
    assert shaped(spec, expected) == expected


async def test_kubectl_autoscale_posts_v1_and_both_versions_read_one_object(
    kubectl: Kubectl, ns: str
) -> None:
    code, _, err = await kubectl("create", "deployment", "web", "-n", ns, "--image=nginx")
    assert code == 0, err
    code, _, err = await kubectl(
        "autoscale", "deployment", "web", "-n", ns, "--min=2", "--max=5", "--cpu-percent=70"
    )
    assert code == 0, err
    code, out, err = await kubectl(
        "get", "horizontalpodautoscalers.v2.autoscaling", "web", "-n", ns, "-o", "json"
    )
    assert code == 0, err
    v2 = json.loads(out)
    assert v2["apiVersion"] == "autoscaling/v2"
    assert v2["spec"]["minReplicas"] == 2 and v2["spec"]["maxReplicas"] == 5
    assert v2["spec"]["metrics"] == [
        {
            "type": "Resource",
            "resource": {"name": "cpu", "target": {"type": "Utilization", "averageUtilization": 70}},
        }
    ]
    code, out, err = await kubectl(
        "get", "horizontalpodautoscalers.v1.autoscaling", "web", "-n", ns, "-o", "json"
    )
    assert code == 0, err
    v1 = json.loads(out)
    assert v1["apiVersion"] == "autoscaling/v1"
    assert v1["spec"]["targetCPUUtilizationPercentage"] == 70 and "metrics" not in v1["spec"]
    assert v1["metadata"]["resourceVersion"] == v2["metadata"]["resourceVersion"]


async def test_a_v2_only_metric_survives_a_v1_read_modify_write(kubectl: Kubectl, ns: str) -> None:
    memory = {
        "type": "Resource",
        "resource": {"name": "memory", "target": {"type": "AverageValue", "averageValue": "1Gi"}},
    }
    spec = {
        "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "web"},
        "maxReplicas": 3,
        "metrics": [memory],
    }
    await _create_and_get(kubectl, ns, doc("autoscaling/v2", "HorizontalPodAutoscaler", "h", spec))
    code, out, err = await kubectl(
        "get", "horizontalpodautoscalers.v1.autoscaling", "h", "-n", ns, "-o", "json"
    )
    assert code == 0, err
    v1 = json.loads(out)
    assert "targetCPUUtilizationPercentage" not in v1["spec"]
    assert json.loads(v1["metadata"]["annotations"]["autoscaling.alpha.kubernetes.io/metrics"]) == [
        {"type": "Resource", "resource": {"name": "memory", "targetAverageValue": "1Gi"}}
    ]
    v1["spec"]["maxReplicas"] = 4
    code, _, err = await kubectl("replace", "-n", ns, "-f", "-", stdin=json.dumps(v1))
    assert code == 0, err
    code, out, err = await kubectl(
        "get", "horizontalpodautoscalers.v2.autoscaling", "h", "-n", ns, "-o", "json"
    )
    v2 = json.loads(out)
    assert v2["spec"]["maxReplicas"] == 4 and v2["spec"]["metrics"] == [memory]
    assert "annotations" not in v2["metadata"]
