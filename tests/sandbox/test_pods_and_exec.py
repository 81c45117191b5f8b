"""Workloads get real ReplicaSets and Pods; ``kubectl exec`` runs commands in them on their volumes."""

from __future__ import annotations

from typing import Any

from kubernetes_asyncio import client

from sandbox import SandboxClusters
from tests.sandbox.conftest import eventually
from tests.sandbox.test_kubectl import Kubectl

LABELS = {"app": "web"}
CLAIM = {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}}


def template(**container: Any) -> dict[str, Any]:
    return {
        "metadata": {"labels": LABELS},
        "spec": {"containers": [{"name": "web", "image": "nginx", **container}]},
    }


async def pods_of(core: client.CoreV1Api, ns: str) -> list[Any]:
    return list((await core.list_namespaced_pod(ns)).items)


async def test_a_deployment_owns_a_replicaset_whose_pods_run_scale_to_zero_and_are_collected(
    api: client.ApiClient, ns: str
) -> None:
    apps, core = client.AppsV1Api(api), client.CoreV1Api(api)
    body = {
        "metadata": {"name": "web"},
        "spec": {"replicas": 2, "selector": {"matchLabels": LABELS}, "template": template()},
    }
    deploy = await apps.create_namespaced_deployment(ns, body)

    async def running() -> list[Any]:
        pods = await pods_of(core, ns)
        return pods if len(pods) == 2 and all(p.status.phase == "Running" for p in pods) else []

    pods = await eventually(running)
    (rs,) = (await apps.list_namespaced_replica_set(ns)).items
    digest = rs.metadata.labels["pod-template-hash"]
    assert rs.metadata.name == f"web-{digest}"
    assert (
        rs.metadata.owner_references[0].uid == deploy.metadata.uid
        and rs.metadata.owner_references[0].controller
    )
    for pod in pods:
        assert (
            pod.metadata.name.startswith(f"web-{digest}-")
            and pod.metadata.labels["pod-template-hash"] == digest
        )
        assert pod.metadata.owner_references[0].name == rs.metadata.name
        assert pod.spec.node_name == "sandbox-node" and pod.status.pod_ip
        assert {c.type: c.status for c in pod.status.conditions}["Ready"] == "True"
        assert pod.status.container_statuses[0].ready
    assert len({p.status.pod_ip for p in pods}) == 2
    await apps.patch_namespaced_deployment_scale("web", ns, {"spec": {"replicas": 0}})

    async def scaled_down() -> bool:
        d = await apps.read_namespaced_deployment("web", ns)
        return not await pods_of(core, ns) and d.status.replicas is None and d.status.observed_generation == 2

    await eventually(scaled_down)
    await apps.patch_namespaced_deployment_scale("web", ns, {"spec": {"replicas": 1}})
    await eventually(lambda: running_count(core, ns, 1))
    await apps.delete_namespaced_deployment("web", ns)

    async def collected() -> bool:
        return not (await apps.list_namespaced_replica_set(ns)).items and not await pods_of(core, ns)

    await eventually(collected)


async def running_count(core: client.CoreV1Api, ns: str, n: int) -> bool:
    pods = await pods_of(core, ns)
    return len(pods) == n and all(p.status.phase == "Running" for p in pods)


async def test_a_new_pod_template_makes_a_new_replicaset_and_the_old_one_scales_to_zero(
    api: client.ApiClient, ns: str
) -> None:
    apps, core = client.AppsV1Api(api), client.CoreV1Api(api)
    body = {
        "metadata": {"name": "web"},
        "spec": {"replicas": 1, "selector": {"matchLabels": LABELS}, "template": template()},
    }
    await apps.create_namespaced_deployment(ns, body)
    await eventually(lambda: running_count(core, ns, 1))
    patch = {"spec": {"template": {"spec": {"containers": [{"name": "web", "image": "nginx:2"}]}}}}
    await apps.patch_namespaced_deployment("web", ns, patch)

    async def rolled() -> Any:
        sets = {
            r.metadata.annotations["deployment.kubernetes.io/revision"]: r
            for r in (await apps.list_namespaced_replica_set(ns)).items
        }
        pods = await pods_of(core, ns)
        done = len(sets) == 2 and sets["1"].spec.replicas == 0 and len(pods) == 1
        return (sets, pods) if done and pods[0].spec.containers[0].image == "nginx:2" else None

    sets, pods = await eventually(rolled)
    assert pods[0].metadata.owner_references[0].name == sets["2"].metadata.name


async def test_a_statefulset_creates_ordered_pods_mounting_their_claims_and_removes_the_highest_first(
    api: client.ApiClient, ns: str
) -> None:
    apps, core = client.AppsV1Api(api), client.CoreV1Api(api)
    body = {
        "metadata": {"name": "db"},
        "spec": {
            "replicas": 3,
            "serviceName": "db",
            "selector": {"matchLabels": LABELS},
            "template": template(volumeMounts=[{"name": "data", "mountPath": "/data"}]),
            "volumeClaimTemplates": [{"metadata": {"name": "data"}, "spec": CLAIM}],
        },
    }
    await apps.create_namespaced_stateful_set(ns, body)

    async def ready() -> Any:
        sts = await apps.read_namespaced_stateful_set("db", ns)
        return sts if sts.status.ready_replicas == 3 else None

    await eventually(ready)
    pods = {p.metadata.name: p for p in await pods_of(core, ns)}
    assert sorted(pods) == ["db-0", "db-1", "db-2"]
    volumes = {v.name: v for v in pods["db-1"].spec.volumes}  # with the pod's kube-api-access-xxxxx
    assert volumes["data"].persistent_volume_claim.claim_name == "data-db-1"
    assert pods["db-1"].metadata.labels["statefulset.kubernetes.io/pod-name"] == "db-1"
    assert pods["db-1"].spec.hostname == "db-1" and pods["db-1"].spec.subdomain == "db"
    assert pods["db-0"].metadata.creation_timestamp <= pods["db-2"].metadata.creation_timestamp
    await apps.patch_namespaced_stateful_set_scale("db", ns, {"spec": {"replicas": 1}})

    async def one_left() -> bool:
        sts = await apps.read_namespaced_stateful_set("db", ns)
        return [p.metadata.name for p in await pods_of(core, ns)] == [
            "db-0"
        ] and sts.status.ready_replicas == 1

    await eventually(one_left)


async def test_kubectl_exec_runs_in_the_pod_with_its_volume_and_env_and_reports_the_exit_code(
    kubectl: Kubectl, api: client.ApiClient, ns: str, clusters: SandboxClusters
) -> None:
    apps, core = client.AppsV1Api(api), client.CoreV1Api(api)
    await core.create_namespaced_persistent_volume_claim(ns, {"metadata": {"name": "data"}, "spec": CLAIM})
    spec = template(
        env=[{"name": "GREETING", "value": "hello"}], volumeMounts=[{"name": "data", "mountPath": "/data"}]
    )
    spec["spec"]["volumes"] = [{"name": "data", "persistentVolumeClaim": {"claimName": "data"}}]
    body = {
        "metadata": {"name": "web"},
        "spec": {"replicas": 1, "selector": {"matchLabels": LABELS}, "template": spec},
    }
    await apps.create_namespaced_deployment(ns, body)
    await eventually(lambda: running_count(core, ns, 1))
    (pod,) = await pods_of(core, ns)
    name = pod.metadata.name
    code, out, err = await kubectl(
        "exec", "-n", ns, name, "--", "sh", "-c", 'echo "$GREETING" > /data/note; cat /data/note'
    )
    assert (code, out) == (0, "hello\n"), err
    pvc = await core.read_namespaced_persistent_volume_claim("data", ns)
    assert (clusters["east"].volume_path(pvc.spec.volume_name) / "note").read_text() == "hello\n"
    code, out, err = await kubectl("exec", "-n", ns, name, "--", "sh", "-c", "echo oops >&2; exit 7")
    assert code == 7 and "oops" in err
    code, out, err = await kubectl(
        "exec", "-i", "-n", ns, name, "--", "sh", "-c", "tr a-z A-Z", stdin="quiet\n"
    )
    assert (code, out) == (0, "QUIET\n"), err
    code, _, err = await kubectl("exec", "-n", ns, name, "-c", "nope", "--", "true")
    assert code != 0 and "container nope is not valid for pod" in err
