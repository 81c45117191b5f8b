"""Update validation: what kube-apiserver 1.32 refuses to change, refused over HTTP (PUT and PATCH)
with the status and message a user sees; what it allows still goes through."""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from typing import Any

import aiohttp
import pytest

from tests.sandbox.conftest import eventually
from tests.sandbox.test_kubectl import Kubectl

MERGE = "application/merge-patch+json"
STRATEGIC = "application/strategic-merge-patch+json"
JSON_PATCH = "application/json-patch+json"
POD_SPEC = {"containers": [{"name": "app", "image": "busybox:1"}]}
TEMPLATE = {"metadata": {"labels": {"app": "web"}}, "spec": POD_SPEC}
SELECTOR = {"matchLabels": {"app": "web"}}
CLAIM = {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}}


class Http:
    def __init__(self, session: aiohttp.ClientSession, url: str) -> None:
        self.session, self.url = session, url

    async def call(
        self, method: str, path: str, body: Any = None, ctype: str = "application/json"
    ) -> tuple[int, dict[str, Any]]:
        data = None if body is None else json.dumps(body)
        async with self.session.request(
            method, self.url + path, data=data, headers={"Content-Type": ctype}
        ) as resp:
            return resp.status, await resp.json()

    async def put_changed(
        self, path: str, change: Callable[[dict[str, Any]], None]
    ) -> tuple[int, dict[str, Any]]:
        """GET, change the object, PUT it back: what `kubectl replace` and typed clients do."""
        status, obj = await self.call("GET", path)
        assert status == 200, obj
        change(obj)
        return await self.call("PUT", path, obj)


@pytest.fixture
async def http(east_url: str) -> Any:
    async with aiohttp.ClientSession() as session:
        yield Http(session, east_url)


def collection(api: str, resource: str, ns: str) -> str:
    return f"{api}/namespaces/{ns}/{resource}"


def _set(path: str, value: Any) -> Callable[[dict[str, Any]], None]:
    def change(obj: dict[str, Any]) -> None:
        *parents, last = path.split(".")
        target = obj
        for key in parents:
            target = target.setdefault(key, {})
        target[last] = copy.deepcopy(value)

    return change


# (api prefix, resource, body, how: PUT change or (patch type, patch), status, message part)
CASES = [
    pytest.param(
        "/api/v1",
        "pods",
        {"metadata": {"name": "p"}, "spec": POD_SPEC},
        (STRATEGIC, {"spec": {"containers": [{"name": "app", "ports": [{"containerPort": 80}]}]}}),
        422,
        'Pod "p" is invalid: spec: Forbidden: pod updates may not change fields other than '
        "`spec.containers[*].image`,`spec.initContainers[*].image`,`spec.activeDeadlineSeconds`,"
        "`spec.tolerations` (only additions to existing tolerations),`spec.terminationGracePeriodSeconds` "
        "(allow it to be set to 1 if it was previously negative)\n",
        id="a pod's container ports may not change",
    ),
    pytest.param(
        "/api/v1",
        "pods",
        {"metadata": {"name": "p"}, "spec": POD_SPEC},
        _set("spec.restartPolicy", "Never"),
        422,
        "spec: Forbidden: pod updates may not change fields other than",
        id="a pod's restart policy may not change (PUT)",
    ),
    pytest.param(
        "/api/v1",
        "pods",
        {"metadata": {"name": "p"}, "spec": POD_SPEC},
        (JSON_PATCH, [{"op": "add", "path": "/spec/containers/-", "value": {"name": "b", "image": "x"}}]),
        422,
        "spec.containers: Forbidden: pod updates may not add or remove containers",
        id="a pod may not gain a container",
    ),
    pytest.param(
        "/api/v1",
        "pods",
        {"metadata": {"name": "p"}, "spec": {**POD_SPEC, "activeDeadlineSeconds": 60}},
        (MERGE, {"spec": {"activeDeadlineSeconds": 120}}),
        422,
        "spec.activeDeadlineSeconds: Invalid value: 120: must be less than or equal to previous value",
        id="a pod's deadline may only shrink",
    ),
    pytest.param(
        "/api/v1",
        "pods",
        {"metadata": {"name": "p"}, "spec": POD_SPEC},
        (
            STRATEGIC,
            {
                "metadata": {"labels": {"moved": "yes"}, "annotations": {"a": "b"}},
                "spec": {
                    "containers": [{"name": "app", "image": "busybox:2"}],
                    "activeDeadlineSeconds": 30,
                },
            },
        ),
        200,
        "",
        id="a pod's image, deadline, labels and annotations may change",
    ),
    pytest.param(
        "/api/v1",
        "pods",
        {"metadata": {"name": "p"}, "spec": POD_SPEC},
        _set("spec.tolerations", [{"operator": "Exists"}]),  # tolerates all: no defaults added back
        422,
        "spec.tolerations: Forbidden: existing toleration can not be modified except its tolerationSeconds",
        id="a pod's default tolerations may not be dropped",
    ),
    pytest.param(
        "/apis/apps/v1",
        "deployments",
        {"metadata": {"name": "d"}, "spec": {"selector": SELECTOR, "template": TEMPLATE}},
        (MERGE, {"spec": {"selector": {"matchLabels": {"app": "web2"}}}}),
        422,
        'Deployment.apps "d" is invalid: spec.selector: Invalid value: v1.LabelSelector{MatchLabels:'
        'map[string]string{"app":"web2"}, MatchExpressions:[]v1.LabelSelectorRequirement(nil)}: '
        "field is immutable",
        id="a deployment's selector is immutable",
    ),
    pytest.param(
        "/apis/apps/v1",
        "deployments",
        {"metadata": {"name": "d"}, "spec": {"selector": SELECTOR, "template": TEMPLATE}},
        (MERGE, {"spec": {"replicas": 0, "template": {"metadata": {"labels": {"v": "2"}}}}}),
        200,
        "",
        id="a deployment may scale and change its template",
    ),
    pytest.param(
        "/apis/apps/v1",
        "daemonsets",
        {"metadata": {"name": "ds"}, "spec": {"selector": SELECTOR, "template": TEMPLATE}},
        _set("spec.selector", {"matchLabels": {"app": "web", "x": "y"}}),
        422,
        "spec.selector: Invalid value: v1.LabelSelector{MatchLabels:map[string]string"
        '{"app":"web", "x":"y"}, MatchExpressions:[]v1.LabelSelectorRequirement(nil)}: field is immutable',
        id="a daemonset's selector is immutable (PUT)",
    ),
    pytest.param(
        "/apis/apps/v1",
        "statefulsets",
        {"metadata": {"name": "s"}, "spec": {"selector": SELECTOR, "template": TEMPLATE, "serviceName": "a"}},
        (MERGE, {"spec": {"serviceName": "b"}}),
        422,
        'StatefulSet.apps "s" is invalid: spec: Forbidden: updates to statefulset spec for fields other than '
        "'replicas', 'ordinals', 'template', 'updateStrategy', 'persistentVolumeClaimRetentionPolicy' "
        "and 'minReadySeconds' are forbidden",
        id="a statefulset's service name may not change",
    ),
    pytest.param(
        "/apis/apps/v1",
        "statefulsets",
        {"metadata": {"name": "s"}, "spec": {"selector": SELECTOR, "template": TEMPLATE, "serviceName": "a"}},
        (MERGE, {"spec": {"replicas": 0, "minReadySeconds": 5}}),
        200,
        "",
        id="a statefulset may scale",
    ),
    pytest.param(
        "/apis/batch/v1",
        "jobs",
        {"metadata": {"name": "j"}, "spec": {"template": {"spec": {**POD_SPEC, "restartPolicy": "Never"}}}},
        (
            STRATEGIC,
            {"spec": {"template": {"spec": {"containers": [{"name": "app", "image": "busybox:2"}]}}}},
        ),
        422,
        'Job.batch "j" is invalid: spec.template: Invalid value: core.PodTemplateSpec{',
        id="a running job's template is immutable",
    ),
    pytest.param(
        "/apis/batch/v1",
        "jobs",
        {"metadata": {"name": "j"}, "spec": {"template": {"spec": {**POD_SPEC, "restartPolicy": "Never"}}}},
        (MERGE, {"spec": {"completions": 3}}),
        422,
        "spec.completions: Invalid value: 3: field is immutable",
        id="a non-indexed job's completions are immutable",
    ),
    pytest.param(
        "/apis/batch/v1",
        "jobs",
        {
            "metadata": {"name": "j"},
            "spec": {"suspend": True, "template": {"spec": {**POD_SPEC, "restartPolicy": "Never"}}},
        },
        (MERGE, {"spec": {"template": {"spec": {"nodeSelector": {"zone": "b"}}}, "parallelism": 2}}),
        200,
        "",
        id="a suspended job that never started may change its node selector",
    ),
    pytest.param(
        "/api/v1",
        "services",
        {"metadata": {"name": "svc"}, "spec": {"ports": [{"port": 80}]}},
        (MERGE, {"spec": {"clusterIP": "None", "clusterIPs": ["None"]}}),
        422,
        'spec.clusterIPs[0]: Invalid value: []string{"None"}: may not change once set',
        id="a service's cluster IP may not change once set",
    ),
    pytest.param(
        "/api/v1",
        "configmaps",
        {"metadata": {"name": "cm"}, "data": {"a": "1"}, "immutable": True},
        (MERGE, {"data": {"a": "2"}, "immutable": False}),
        422,
        'ConfigMap "cm" is invalid: [immutable: Forbidden: field is immutable when `immutable` is set, '
        "data: Forbidden: field is immutable when `immutable` is set]",
        id="an immutable configmap keeps its data and its immutability",
    ),
    pytest.param(
        "/api/v1",
        "configmaps",
        {"metadata": {"name": "cm"}, "data": {"a": "1"}, "immutable": True},
        (MERGE, {"metadata": {"labels": {"moved": "yes"}}}),
        200,
        "",
        id="an immutable configmap's labels may change",
    ),
    pytest.param(
        "/api/v1",
        "secrets",
        {"metadata": {"name": "s"}, "stringData": {"a": "1"}, "immutable": True},
        (MERGE, {"stringData": {"a": "2"}}),
        422,
        'Secret "s" is invalid: data: Forbidden: field is immutable when `immutable` is set',
        id="an immutable secret keeps its data, given as stringData too",
    ),
    pytest.param(
        "/api/v1",
        "secrets",
        {"metadata": {"name": "s"}, "data": {}},
        (MERGE, {"type": "kubernetes.io/tls"}),
        422,
        'Secret "s" is invalid: type: Invalid value: "kubernetes.io/tls": field is immutable',
        id="a secret's type is immutable",
    ),
    pytest.param(
        "/api/v1",
        "persistentvolumeclaims",
        {"metadata": {"name": "c"}, "spec": {**CLAIM, "storageClassName": "none-such"}},
        (MERGE, {"spec": {"accessModes": ["ReadWriteMany"]}}),
        422,
        'PersistentVolumeClaim "c" is invalid: spec: Forbidden: spec is immutable after creation except '
        "resources.requests and volumeAttributesClassName for bound claims\n",
        id="a claim's access modes are immutable",
    ),
    pytest.param(
        "/api/v1",
        "persistentvolumeclaims",
        {"metadata": {"name": "c"}, "spec": {**CLAIM, "storageClassName": "none-such"}},
        (MERGE, {"spec": {"resources": {"requests": {"storage": "2Gi"}}}}),
        422,
        "spec: Forbidden: spec is immutable after creation except resources.requests",
        id="an unbound claim may not grow",
    ),
    pytest.param(
        "/api/v1",
        "pods",
        {"metadata": {"name": "p"}, "spec": POD_SPEC},
        (MERGE, {"metadata": {"uid": "0000"}}),
        422,
        'Pod "p" is invalid: metadata.uid: Invalid value: "0000": field is immutable',
        id="an object's uid is immutable",
    ),
    pytest.param(
        "/api/v1",
        "configmaps",
        {"metadata": {"name": "cm"}},
        (MERGE, {"metadata": {"name": "other"}}),
        400,
        "the name of the object (other) does not match the name on the URL (cm)",
        id="an object's name may not be patched",
    ),
]


@pytest.mark.parametrize(("api_prefix", "resource", "body", "how", "status", "message"), CASES)
async def test_updates_are_refused_or_allowed_as_a_real_server_does(
    http: Http,
    ns: str,
    api_prefix: str,
    resource: str,
    body: dict[str, Any],
    how: Any,
    status: int,
    message: str,
) -> None:
    base = collection(api_prefix, resource, ns)
    code, created = await http.call("POST", base, body)
    assert code == 201, created
    path = f"{base}/{created['metadata']['name']}"
    if callable(how):
        code, answer = await http.put_changed(path, how)
    else:
        ctype, patch = how
        code, answer = await http.call("PATCH", path, patch, ctype)
    assert code == status, answer
    if status != 200:
        assert message in answer["message"], answer["message"]
        assert answer["reason"] == {422: "Invalid", 400: "BadRequest"}[status]
        if status == 422:
            assert answer["details"]["causes"], answer


async def test_a_bound_claim_grows_only_when_its_class_allows_expansion(
    http: Http, ns: str, unique: str
) -> None:
    sc_path = "/apis/storage.k8s.io/v1/storageclasses"
    for name, expand in ((f"fixed-{unique}", False), (f"grows-{unique}", True)):
        sc = {
            "metadata": {"name": name},
            "provisioner": "sandbox.ferry.dev/local-path",
            "allowVolumeExpansion": expand,
        }
        code, answer = await http.call("POST", sc_path, sc)
        assert code == 201, answer
    base = collection("/api/v1", "persistentvolumeclaims", ns)
    for name in ("fixed", "grows"):
        claim = {"metadata": {"name": name}, "spec": {**CLAIM, "storageClassName": f"{name}-{unique}"}}
        code, answer = await http.call("POST", base, claim)
        assert code == 201, answer

    async def bound(name: str) -> bool:
        _, obj = await http.call("GET", f"{base}/{name}")
        return bool(obj.get("status", {}).get("phase") == "Bound")

    for name in ("fixed", "grows"):
        await eventually(lambda name=name: bound(name))  # type: ignore[misc]
    grow = {"spec": {"resources": {"requests": {"storage": "2Gi"}}}}
    code, answer = await http.call("PATCH", f"{base}/fixed", grow, MERGE)
    assert (code, answer["reason"]) == (403, "Forbidden"), answer
    assert answer["message"] == (
        'persistentvolumeclaims "fixed" is forbidden: only dynamically provisioned pvc can be resized '
        "and the storageclass that provisions the pvc must support resize"
    )
    code, answer = await http.call("PATCH", f"{base}/grows", grow, MERGE)
    assert code == 200, answer
    assert answer["spec"]["resources"]["requests"]["storage"] == "2Gi"
    shrink = {"spec": {"resources": {"requests": {"storage": "512Mi"}}}}
    code, answer = await http.call("PATCH", f"{base}/grows", shrink, MERGE)
    assert code == 422, answer
    assert (
        "spec.resources.requests.storage: Forbidden: field can not be less than status.capacity"
        in (answer["message"])
    )
    code, answer = await http.call("PATCH", f"{base}/grows", {"spec": {"volumeName": "elsewhere"}}, MERGE)
    assert code == 422, answer  # bound once, a claim's volume is fixed


async def test_a_volume_s_source_is_immutable(http: Http, unique: str) -> None:
    pv = {
        "metadata": {"name": f"pv-{unique}"},
        "spec": {
            "capacity": {"storage": "1Gi"},
            "accessModes": ["ReadWriteOnce"],
            "hostPath": {"path": "/a"},
        },
    }
    path = "/api/v1/persistentvolumes"
    code, answer = await http.call("POST", path, pv)
    assert code == 201, answer
    code, answer = await http.call(
        "PATCH", f"{path}/{pv['metadata']['name']}", {"spec": {"hostPath": {"path": "/b"}}}, MERGE
    )
    assert code == 422, answer
    assert (
        "spec.persistentvolumesource: Forbidden: spec.persistentvolumesource is immutable after creation\n"
        in (answer["message"])
    )
    code, answer = await http.call(
        "PATCH",
        f"{path}/{pv['metadata']['name']}",
        {"spec": {"persistentVolumeReclaimPolicy": "Delete"}},
        MERGE,
    )
    assert code == 200, answer


async def test_kubectl_shows_the_refusal_of_a_pod_spec_change(kubectl: Kubectl, ns: str) -> None:
    pod = f"""
apiVersion: v1
kind: Pod
metadata: {{name: p, namespace: {ns}}}
spec:
  containers: [{{name: app, image: busybox:1}}]
"""
    code, out, err = await kubectl("apply", "-f", "-", stdin=pod)
    assert code == 0, err
    code, out, err = await kubectl("apply", "-f", "-", stdin=pod.replace("busybox:1", "busybox:2"))
    assert code == 0, err  # an image is the one thing a pod's containers may change
    changed = pod.replace("image: busybox:1}", "image: busybox:2, workingDir: /tmp}")
    code, out, err = await kubectl("apply", "-f", "-", stdin=changed)
    assert code != 0
    assert 'The Pod "p" is invalid: spec: Forbidden: pod updates may not change fields other than' in err


async def test_kubectl_shows_the_refusal_of_a_selector_change(kubectl: Kubectl, ns: str) -> None:
    code, out, err = await kubectl("create", "deployment", "web", "--image=nginx", "-n", ns)
    assert code == 0, err
    patch = '{"spec":{"selector":{"matchLabels":{"app":"other"}}}}'
    code, out, err = await kubectl("patch", "deployment", "web", "-n", ns, "--type=merge", "-p", patch)
    assert code != 0
    assert 'The Deployment "web" is invalid: spec.selector: Invalid value: v1.LabelSelector{' in err
    assert "field is immutable" in err
