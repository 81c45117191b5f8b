"""The real kubectl's generators against the sandbox: they POST protobuf, and the object is what they set.

``kubectl create deployment/job/cronjob/service/role/...`` build the object in Go and send it as
``application/vnd.kubernetes.protobuf`` without a JSON fallback, so each case here fails with a 415
unless the sandbox decodes that kind. The object is then read back with ``kubectl get -o json``, as
a user would, and compared on the fields the command set (and the defaults a real server adds).
"""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest

from sandbox import SandboxClusters
from tests.sandbox.conftest import MISSING, Kubectl, kubectl_runner, shaped

U = uuid.uuid4().hex[:6]  # cluster-scoped names are unique to this run


@pytest.fixture(scope="module")
def kc(clusters: SandboxClusters, tmp_path_factory: pytest.TempPathFactory) -> Kubectl:
    """kubectl on the east cluster, one HOME (so one discovery cache) for the module."""
    return kubectl_runner(clusters.kubeconfig_path, tmp_path_factory.mktemp("kubectl-home"))


@pytest.fixture(scope="module")
async def space(kc: Kubectl) -> AsyncIterator[str]:
    """One namespace for the module, made by ``kubectl create namespace`` (protobuf too)."""
    name = f"create-{U}"
    code, _, err = await kc("create", "namespace", name)
    assert code == 0, err
    yield name


def containers(*specs: dict[str, Any], restart: str | None = None) -> dict[str, Any]:
    pod: dict[str, Any] = {"containers": list(specs)}
    if restart:
        pod["restartPolicy"] = restart
    return {"template": {"spec": pod}}


RBAC = "rbac.authorization.k8s.io"
CASES = [
    pytest.param(
        ["deployment", "web", "--image=nginx:1.27", "--replicas=2"],
        "deployment/web",
        {
            "spec": {
                "replicas": 2,
                "selector": {"matchLabels": {"app": "web"}},
                **containers({"name": "nginx", "image": "nginx:1.27"}),
                "strategy": {
                    "type": "RollingUpdate",
                    "rollingUpdate": {"maxSurge": "25%", "maxUnavailable": "25%"},
                },
            }
        },
        id="a deployment has its replicas, selector, image and the default rolling update",
    ),
    pytest.param(
        ["deployment", "idle", "--image=nginx", "--replicas=0"],
        "deployment/idle",
        {"spec": {"replicas": 0}},
        id="a deployment of zero replicas keeps the zero",
    ),
    pytest.param(
        ["job", "once", "--image=busybox", "--", "echo", "hi"],
        "job/once",
        {
            "spec": {
                **containers({"image": "busybox", "command": ["echo", "hi"]}, restart="Never"),
                "backoffLimit": 6,
                "completions": 1,
                "parallelism": 1,
                "completionMode": "NonIndexed",
                "suspend": False,
                "manualSelector": MISSING,
            }
        },
        id="a job has its command and a real server's defaults",
    ),
    pytest.param(
        ["cronjob", "tick", "--image=busybox", "--schedule=*/1 * * * *", "--", "date"],
        "cronjob/tick",
        {
            "spec": {
                "schedule": "*/1 * * * *",
                "jobTemplate": {
                    "spec": containers({"image": "busybox", "command": ["date"]}, restart="OnFailure")
                },
                "suspend": False,
                "concurrencyPolicy": "Allow",
                "successfulJobsHistoryLimit": 3,
                "failedJobsHistoryLimit": 1,
            }
        },
        id="a cronjob has its schedule, its job template and suspend false",
    ),
    pytest.param(
        ["service", "clusterip", "plain", "--tcp=80:8080"],
        "service/plain",
        {
            "spec": {
                "type": "ClusterIP",
                "selector": {"app": "plain"},
                "ports": [{"name": "80-8080", "port": 80, "targetPort": 8080, "protocol": "TCP"}],
            }
        },
        id="a cluster IP service's numeric target port is a number",
    ),
    pytest.param(
        ["service", "nodeport", "np", "--tcp=80:http"],
        "service/np",
        {"spec": {"type": "NodePort", "ports": [{"port": 80, "targetPort": "http"}]}},
        id="a node port service's named target port is a string",
    ),
    pytest.param(
        ["service", "loadbalancer", "lb", "--tcp=443:8443"],
        "service/lb",
        {"spec": {"type": "LoadBalancer", "ports": [{"port": 443, "targetPort": 8443}]}},
        id="a load balancer service has its port",
    ),
    pytest.param(
        ["service", "externalname", "db", "--external-name=db.example.com"],
        "service/db",
        {"spec": {"type": "ExternalName", "externalName": "db.example.com", "clusterIP": MISSING}},
        id="an external name service has its name and no cluster IP",
    ),
    pytest.param(
        ["service", "clusterip", "headless", "--clusterip=None"],
        "service/headless",
        {"spec": {"clusterIP": "None"}},
        id="a headless service keeps clusterIP None",
    ),
    pytest.param(
        ["role", "reader", "--verb=get,list", "--resource=pods,deployments.apps"],
        "role/reader",
        {
            "rules": [
                {"apiGroups": [""], "resources": ["pods"], "verbs": ["get", "list"]},
                {"apiGroups": ["apps"], "resources": ["deployments"], "verbs": ["get", "list"]},
            ]
        },
        id="a role has its rules, one per group",
    ),
    pytest.param(
        ["rolebinding", "readers", "--role=reader", "--user=alice", "--group=ops"],
        "rolebinding/readers",
        {
            "roleRef": {"apiGroup": RBAC, "kind": "Role", "name": "reader"},
            "subjects": [
                {"apiGroup": RBAC, "kind": "User", "name": "alice"},
                {"apiGroup": RBAC, "kind": "Group", "name": "ops"},
            ],
        },
        id="a role binding has its role and subjects",
    ),
    pytest.param(
        ["clusterrole", f"nodes-{U}", "--verb=get", "--resource=nodes", "--resource-name=n1"],
        f"clusterrole/nodes-{U}",
        {"rules": [{"apiGroups": [""], "resources": ["nodes"], "resourceNames": ["n1"], "verbs": ["get"]}]},
        id="a cluster role has its rules",
    ),
    pytest.param(
        ["clusterrole", f"agg-{U}", "--aggregation-rule=rbac.example.com/aggregate=true"],
        f"clusterrole/agg-{U}",
        {
            "aggregationRule": {
                "clusterRoleSelectors": [{"matchLabels": {"rbac.example.com/aggregate": "true"}}]
            }
        },
        id="an aggregated cluster role has its selectors",
    ),
    pytest.param(
        ["clusterrolebinding", f"ops-{U}", f"--clusterrole=nodes-{U}", "--group=ops"],
        f"clusterrolebinding/ops-{U}",
        {
            "roleRef": {"apiGroup": RBAC, "kind": "ClusterRole", "name": f"nodes-{U}"},
            "subjects": [{"apiGroup": RBAC, "kind": "Group", "name": "ops"}],
        },
        id="a cluster role binding has its role and subjects",
    ),
    pytest.param(
        ["quota", "small", "--hard=pods=3,requests.cpu=500m,requests.memory=1Gi", "--scopes=BestEffort"],
        "resourcequota/small",
        {
            "spec": {
                "hard": {"pods": "3", "requests.cpu": "500m", "requests.memory": "1Gi"},
                "scopes": ["BestEffort"],
            }
        },
        id="a quota's hard limits are quantity strings",
    ),
    pytest.param(
        ["poddisruptionbudget", "one", "--selector=app=web", "--min-available=1"],
        "poddisruptionbudget/one",
        {"spec": {"minAvailable": 1, "selector": {"matchLabels": {"app": "web"}}}},
        id="a disruption budget's minAvailable count is a number",
    ),
    pytest.param(
        ["poddisruptionbudget", "half", "--selector=app=web", "--max-unavailable=50%"],
        "poddisruptionbudget/half",
        {"spec": {"maxUnavailable": "50%", "minAvailable": MISSING}},
        id="a disruption budget's percentage is a string",
    ),
    pytest.param(
        ["ingress", "exact", "--rule=foo.com/bar=svc1:8080"],
        "ingress/exact",
        {
            "spec": {
                "rules": [
                    {
                        "host": "foo.com",
                        "http": {
                            "paths": [
                                {
                                    "path": "/bar",
                                    "pathType": "Exact",
                                    "backend": {"service": {"name": "svc1", "port": {"number": 8080}}},
                                }
                            ]
                        },
                    }
                ]
            }
        },
        id="an ingress has its host, path and numbered backend port",
    ),
    pytest.param(
        ["ingress", "prefix", "--class=nginx", "--rule=foo.com/*=svc:http,tls=cert"],
        "ingress/prefix",
        {
            "spec": {
                "ingressClassName": "nginx",
                "rules": [
                    {
                        "host": "foo.com",
                        "http": {
                            "paths": [
                                {
                                    "path": "/",
                                    "pathType": "Prefix",
                                    "backend": {"service": {"name": "svc", "port": {"name": "http"}}},
                                }
                            ]
                        },
                    }
                ],
                "tls": [{"hosts": ["foo.com"], "secretName": "cert"}],
            }
        },
        id="an ingress has its class, prefix path, named port and TLS",
    ),
    pytest.param(
        ["priorityclass", f"high-{U}", "--value=10", "--description=batch work"],
        f"priorityclass/high-{U}",
        {"value": 10, "description": "batch work", "preemptionPolicy": "PreemptLowerPriority"},
        id="a priority class has its value and description",
    ),
    pytest.param(
        ["priorityclass", f"zero-{U}", "--value=0"],
        f"priorityclass/zero-{U}",
        {"value": 0, "globalDefault": MISSING},
        id="a priority class of value zero keeps the zero",
    ),
    pytest.param(
        [
            "secret",
            "docker-registry",
            "registry",
            "--docker-server=r.example.com",
            "--docker-username=u",
            "--docker-password=p",
        ],
        "secret/registry",
        {"type": "kubernetes.io/dockerconfigjson"},
        id="a registry secret has its type",
    ),
    pytest.param(
        ["serviceaccount", "robot"],
        "serviceaccount/robot",
        {"metadata": {"name": "robot"}},
        id="a service account is created",
    ),
]


@pytest.mark.parametrize(("args", "ref", "expected"), CASES)
async def test_kubectl_create_makes_what_it_was_asked_for(
    kc: Kubectl, space: str, args: list[str], ref: str, expected: dict[str, Any]
) -> None:
    code, out, err = await kc("-n", space, "create", *args)  # "-n" first: a command may end in "-- ..."
    assert code == 0, err
    assert out.strip().endswith("created"), out
    assert shaped(await _get(kc, space, ref), expected) == expected


async def _get(kc: Kubectl, space: str, ref: str) -> dict[str, Any]:
    code, out, err = await kc("get", ref, "-n", space, "-o", "json")
    assert code == 0, err
    return json.loads(out)  # type: ignore[no-any-return]


async def test_kubectl_expose_scale_set_image_label_and_annotate_a_created_deployment(
    kc: Kubectl, space: str
) -> None:
    steps = [
        ("create", "deployment", "shop", "--image=nginx:1.27", "--port=80"),
        ("expose", "deployment", "shop", "--port=8080", "--target-port=80"),
        ("scale", "deployment", "shop", "--replicas=3"),
        ("set", "image", "deployment/shop", "nginx=nginx:1.28"),
        ("label", "deployment", "shop", "tier=web"),
        ("annotate", "deployment", "shop", "owner=team-a"),
        ("run", "probe", "--image=busybox", "--labels=role=probe", "--", "sleep", "1"),
    ]
    for step in steps:
        code, _, err = await kc("-n", space, *step)
        assert code == 0, f"kubectl {' '.join(step)}: {err}"
    deployment = await _get(kc, space, "deployment/shop")
    assert deployment["metadata"]["labels"] == {"app": "shop", "tier": "web"}
    assert deployment["metadata"]["annotations"]["owner"] == "team-a"
    assert deployment["spec"]["replicas"] == 3
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    assert (container["image"], container["ports"][0]["containerPort"]) == ("nginx:1.28", 80)
    service = await _get(kc, space, "service/shop")
    assert service["spec"]["selector"] == {"app": "shop"}
    assert service["spec"]["ports"] == [{"port": 8080, "protocol": "TCP", "targetPort": 80}]
    pod = await _get(kc, space, "pod/probe")
    assert pod["spec"]["containers"][0]["image"] == "busybox"
    assert pod["metadata"]["labels"] == {"role": "probe"}


async def test_kubectl_auth_can_i_sends_a_protobuf_review(kc: Kubectl, space: str) -> None:
    code, out, err = await kc("auth", "can-i", "create", "deployments", "-n", space)
    assert (code, out.strip()) == (0, "yes"), err
