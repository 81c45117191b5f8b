"""Workloads report believable status; Jobs running Ferry's image run as local processes on PV directories."""

from __future__ import annotations

import asyncio
import ipaddress
import json
import os
import sys
from pathlib import Path
from typing import Any

import pytest
from kubernetes_asyncio import client

from sandbox import SandboxClusters
from sandbox.controllers.running import image_repository, map_paths
from tests.sandbox.conftest import eventually

LABELS = {"app": "db"}


def pod_template(image: str = "postgres:16") -> dict[str, Any]:
    return {"metadata": {"labels": LABELS}, "spec": {"containers": [{"name": "main", "image": image}]}}


async def test_a_statefulset_gets_ready_replicas_and_its_claims(api: client.ApiClient, ns: str) -> None:
    apps, core = client.AppsV1Api(api), client.CoreV1Api(api)
    template = {
        "metadata": {"name": "pgdata"},
        "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}},
    }
    body = {
        "metadata": {"name": "db"},
        "spec": {
            "replicas": 2,
            "serviceName": "db",
            "selector": {"matchLabels": LABELS},
            "template": pod_template(),
            "volumeClaimTemplates": [template],
        },
    }
    await apps.create_namespaced_stateful_set(ns, body)

    async def ready() -> Any:
        sts = await apps.read_namespaced_stateful_set("db", ns)
        return sts if sts.status.ready_replicas == 2 and sts.status.observed_generation == 1 else None

    await eventually(ready)
    claims = {c.metadata.name: c for c in (await core.list_namespaced_persistent_volume_claim(ns)).items}
    assert sorted(claims) == ["pgdata-db-0", "pgdata-db-1"]
    assert claims["pgdata-db-0"].metadata.labels == LABELS
    await apps.patch_namespaced_stateful_set_scale("db", ns, {"spec": {"replicas": 0}})

    async def scaled_down() -> Any:
        sts = await apps.read_namespaced_stateful_set("db", ns)
        return (
            sts.status.observed_generation == 2 and not sts.status.replicas and not sts.status.ready_replicas
        )

    await eventually(scaled_down)
    assert len((await core.list_namespaced_persistent_volume_claim(ns)).items) == 2  # claims are kept


async def test_a_deployment_is_available_and_scaling_to_zero_is_reflected(
    api: client.ApiClient, ns: str
) -> None:
    apps = client.AppsV1Api(api)
    body = {
        "metadata": {"name": "web"},
        "spec": {"replicas": 3, "selector": {"matchLabels": LABELS}, "template": pod_template("nginx")},
    }
    await apps.create_namespaced_deployment(ns, body)

    async def available() -> Any:
        d = await apps.read_namespaced_deployment("web", ns)
        conditions = {c.type: c.status for c in d.status.conditions or []}
        return d.status.available_replicas == 3 and conditions.get("Available") == "True"

    await eventually(available)
    await apps.patch_namespaced_deployment("web", ns, {"spec": {"replicas": 0}})

    async def zero() -> Any:
        d = await apps.read_namespaced_deployment("web", ns)
        return (
            d.status.observed_generation == 2
            and d.status.replicas is None
            and d.status.available_replicas is None
        )

    await eventually(zero)


async def test_a_replicaset_reports_its_replicas_ready_and_scaling_to_zero(
    api: client.ApiClient, ns: str
) -> None:
    apps = client.AppsV1Api(api)
    body = {
        "metadata": {"name": "web"},
        "spec": {"replicas": 2, "selector": {"matchLabels": LABELS}, "template": pod_template("nginx")},
    }
    await apps.create_namespaced_replica_set(ns, body)

    async def ready() -> Any:
        rs = await apps.read_namespaced_replica_set("web", ns)
        return rs if rs.status.observed_generation == 1 else None

    status = (await eventually(ready)).status
    assert (status.replicas, status.ready_replicas, status.available_replicas) == (2, 2, 2)
    assert status.fully_labeled_replicas == 2
    await apps.patch_namespaced_replica_set_scale("web", ns, {"spec": {"replicas": 0}})

    async def scaled_down() -> Any:
        rs = await apps.read_namespaced_replica_set("web", ns)
        return rs if rs.status.observed_generation == 2 else None

    status = (await eventually(scaled_down)).status
    assert status.replicas == 0  # required in ReplicaSetStatus, so it is sent as 0
    assert status.ready_replicas is None and status.available_replicas is None  # omitempty


async def test_a_job_with_another_image_is_simulated_as_succeeded_without_pods(
    api: client.ApiClient, ns: str
) -> None:
    batch, core = client.BatchV1Api(api), client.CoreV1Api(api)
    spec = {
        "template": {"spec": {"restartPolicy": "Never", "containers": [{"name": "c", "image": "busybox"}]}}
    }
    await batch.create_namespaced_job(ns, {"metadata": {"name": "other"}, "spec": spec})

    async def complete() -> Any:
        job = await batch.read_namespaced_job("other", ns)
        return job.status.succeeded == 1 and any(c.type == "Complete" for c in job.status.conditions or [])

    await eventually(complete)
    assert (await core.list_namespaced_pod(ns)).items == []


def ferry_job(name: str, command: list[str], **container: Any) -> dict[str, Any]:
    return {
        "metadata": {"name": name},
        "spec": {
            "backoffLimit": 0,
            "template": {
                "spec": {
                    "restartPolicy": "Never",
                    "containers": [
                        {
                            "name": "mover",
                            "image": "ghcr.io/ferry-dev/ferry:test",
                            "command": command,
                            **container,
                        }
                    ],
                    "volumes": [
                        {"name": "data", "persistentVolumeClaim": {"claimName": "data"}},
                        {"name": "creds", "secret": {"secretName": "creds"}},
                    ],
                }
            },
        },
    }


SCRIPT = """
import os, sys
source, creds = sys.argv[1], sys.argv[2]
key = open(os.path.join(creds, "key")).read()
with open(os.path.join(source, "out.txt"), "w") as f:
    f.write(f"{os.environ['GREETING']} {os.environ['TOKEN']} {key} {os.environ['TARGET']}")
print("done writing", source)
"""


async def test_a_ferry_image_job_runs_locally_against_the_pv_directory(
    api: client.ApiClient, ns: str, clusters: SandboxClusters
) -> None:
    core, batch = client.CoreV1Api(api), client.BatchV1Api(api)
    await core.create_namespaced_secret(
        ns, {"metadata": {"name": "creds"}, "stringData": {"key": "s3cr3t", "token": "t0k"}}
    )
    await core.create_namespaced_config_map(ns, {"metadata": {"name": "cfg"}, "data": {"GREETING": "hello"}})
    await core.create_namespaced_persistent_volume_claim(
        ns,
        {
            "metadata": {"name": "data"},
            "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}},
        },
    )
    job = ferry_job(
        "mover",
        ["python", "-c", SCRIPT, "/data", "/etc/creds"],
        env=[
            {"name": "TOKEN", "valueFrom": {"secretKeyRef": {"name": "creds", "key": "token"}}},
            {"name": "TARGET", "value": "/data/sub"},
        ],
        envFrom=[{"configMapRef": {"name": "cfg"}}],
        volumeMounts=[{"name": "data", "mountPath": "/data"}, {"name": "creds", "mountPath": "/etc/creds"}],
    )
    await batch.create_namespaced_job(ns, job)

    async def complete() -> Any:
        j = await batch.read_namespaced_job("mover", ns)
        return j if any(c.type == "Complete" for c in j.status.conditions or []) else None

    done = await eventually(complete, within=20)
    assert done.status.succeeded == 1
    pvc = await core.read_namespaced_persistent_volume_claim("data", ns)
    pv_dir = clusters["east"].volume_path(pvc.spec.volume_name)
    assert (pv_dir / "out.txt").read_text() == f"hello t0k s3cr3t {pv_dir}/sub"
    pods = (await core.list_namespaced_pod(ns, label_selector="job-name=mover")).items
    assert [p.status.phase for p in pods] == ["Succeeded"]
    log = await core.read_namespaced_pod_log(pods[0].metadata.name, ns)
    assert f"done writing {pv_dir}" in log
    events = await core.list_namespaced_event(ns, field_selector="involvedObject.name=mover")
    assert sorted(e.reason for e in events.items) == ["Completed", "SuccessfulCreate"]


async def _mover(*args: str, env: dict[str, str]) -> str:
    """Run the venv's ``ferry-mover`` on this machine, as a person inspecting the repository would."""
    proc = await asyncio.create_subprocess_exec(
        str(Path(sys.executable).parent / "ferry-mover"),
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env={**os.environ, **env},
    )
    async with asyncio.timeout(60):
        out, err = await proc.communicate()
    assert proc.returncode == 0, err.decode()
    return out.decode()


async def _finished(api: client.ApiClient, ns: str, job: str) -> tuple[str, str]:
    """Wait until a Job is Complete or Failed; its condition and its pod's log."""
    core, batch = client.CoreV1Api(api), client.BatchV1Api(api)

    async def condition() -> str | None:
        j = await batch.read_namespaced_job(job, ns)
        return next((c.type for c in j.status.conditions or [] if c.type in ("Complete", "Failed")), None)

    outcome = await eventually(condition, within=60)
    pods = (await core.list_namespaced_pod(ns, label_selector=f"job-name={job}")).items
    return outcome, await core.read_namespaced_pod_log(pods[0].metadata.name, ns)


async def test_a_ferry_mover_job_backs_up_a_claim_into_a_repository_on_another_claim(
    api: client.ApiClient, ns: str, clusters: SandboxClusters
) -> None:
    core, batch = client.CoreV1Api(api), client.BatchV1Api(api)
    await core.create_namespaced_secret(
        ns, {"metadata": {"name": "repo-creds"}, "stringData": {"password": "correct horse"}}
    )
    spec = {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}}
    for claim_name in ("data", "repo"):
        await core.create_namespaced_persistent_volume_claim(
            ns, {"metadata": {"name": claim_name}, "spec": spec}
        )

    async def bound(claim_name: str) -> Any:
        pvc = await core.read_namespaced_persistent_volume_claim(claim_name, ns)
        return pvc if pvc.status.phase == "Bound" else None

    data_dir = clusters["east"].volume_path((await eventually(lambda: bound("data"))).spec.volume_name)
    repo_dir = clusters["east"].volume_path((await eventually(lambda: bound("repo"))).spec.volume_name)
    (data_dir / "sub").mkdir()
    (data_dir / "index.html").write_text("<h1>shop</h1>\n")
    (data_dir / "sub" / "orders.csv").write_text("id,total\n1,9.99\n")
    (data_dir / "sub" / "photo.bin").write_bytes(os.urandom(50_000))
    password = {"secretKeyRef": {"name": "repo-creds", "key": "password"}}
    env = [{"name": "FERRY_REPO", "value": "/repo"}, {"name": "FERRY_REPO_PASSWORD", "valueFrom": password}]
    mounts = [{"name": "data", "mountPath": "/data"}, {"name": "repo", "mountPath": "/repo"}]
    volumes = [{"name": c, "persistentVolumeClaim": {"claimName": c}} for c in ("data", "repo")]
    steps = {
        "init": ["ferry-mover", "init"],
        "backup": ["ferry-mover", "backup", "/data", "--name", f"{ns}/data", "--quiet"],
    }
    for job_name, command in steps.items():
        job = ferry_job(job_name, command, env=env, volumeMounts=mounts)
        job["spec"]["template"]["spec"]["volumes"] = volumes
        job["spec"]["template"]["spec"]["containers"][0]["image"] = "ghcr.io/ferry-dev/ferry-mover:test"
        await batch.create_namespaced_job(ns, job)
        outcome, log = await _finished(api, ns, job_name)
        assert outcome == "Complete", log

    local = {"FERRY_REPO": str(repo_dir), "FERRY_REPO_PASSWORD": "correct horse"}
    listing = json.loads((await _mover("ls", "--json", env=local)).splitlines()[-1])
    snapshots = [(s["name"], s["kind"]) for s in listing["snapshots"]]
    assert snapshots == [(f"{ns}/data", "tree")]
    files = await _mover("ls", listing["snapshots"][0]["id"], env=local)
    entries = [line.split()[-1] for line in files.splitlines() if line.startswith("-")]
    assert sorted(entries) == ["index.html", "sub/orders.csv", "sub/photo.bin"]


async def test_a_failing_ferry_job_is_failed_with_its_log_kept(api: client.ApiClient, ns: str) -> None:
    core, batch = client.CoreV1Api(api), client.BatchV1Api(api)
    job = ferry_job("broken", ["python", "-c", "import sys; print('about to fail'); sys.exit(3)"])
    job["spec"]["template"]["spec"]["volumes"] = []
    await batch.create_namespaced_job(ns, job)

    async def failed() -> Any:
        j = await batch.read_namespaced_job("broken", ns)
        return j if any(c.type == "Failed" for c in j.status.conditions or []) else None

    done = await eventually(failed, within=20)
    assert done.status.failed == 1
    reason = next(c.reason for c in done.status.conditions if c.type == "Failed")
    assert reason == "BackoffLimitExceeded"
    events = await core.list_namespaced_event(ns, field_selector="involvedObject.name=broken,type=Warning")
    assert [e.reason for e in events.items] == ["BackoffLimitExceeded"]
    pod = (await core.list_namespaced_pod(ns, label_selector="job-name=broken")).items[0]
    assert pod.status.phase == "Failed"
    assert pod.status.container_statuses[0].state.terminated.exit_code == 3
    assert "about to fail" in await core.read_namespaced_pod_log(pod.metadata.name, ns)


IMAGES = [
    pytest.param("ghcr.io/ferry-dev/ferry:0.1.0", "ferry", id="a registry image with a tag"),
    pytest.param(
        "registry.local:5000/ferry-mover@sha256:abc", "ferry-mover", id="a registry port and a digest"
    ),
    pytest.param("ferry", "ferry", id="a bare name"),
]


@pytest.mark.parametrize(("image", "repository"), IMAGES)
def test_image_repository_names_are_parsed(image: str, repository: str) -> None:
    assert image_repository(image) == repository


MAPPINGS = [
    pytest.param("/data", "/pv", id="a bare mount path"),
    pytest.param("--source=/data/sub", "--source=/pv/sub", id="a mount path inside an option value"),
    pytest.param("/database", "/database", id="a longer path that only shares a prefix is left alone"),
    pytest.param("/data/cache/x", "/cache-dir/x", id="the longest mount path wins"),
    pytest.param("s3://bucket/data", "s3://bucket/data", id="a path inside a URL is left alone"),
]


@pytest.mark.parametrize(("text", "expected"), MAPPINGS)
def test_mount_paths_are_mapped_in_arguments(text: str, expected: str) -> None:
    assert map_paths(text, [("/data", "/pv"), ("/data/cache", "/cache-dir")]) == expected


async def test_a_finished_job_with_a_ttl_is_deleted_with_its_pods(api: client.ApiClient, ns: str) -> None:
    core, batch = client.CoreV1Api(api), client.BatchV1Api(api)
    job = ferry_job("short-lived", ["python", "-c", "pass"])
    job["spec"]["ttlSecondsAfterFinished"] = 0
    job["spec"]["template"]["spec"]["volumes"] = []
    await batch.create_namespaced_job(ns, job)

    async def gone() -> bool:
        jobs = (await batch.list_namespaced_job(ns)).items
        pods = (await core.list_namespaced_pod(ns)).items
        return not jobs and not pods

    await eventually(gone, within=20)


async def test_a_service_gets_endpoints_and_an_owned_endpoint_slice_that_go_with_it(
    api: client.ApiClient, ns: str
) -> None:
    core, disc = client.CoreV1Api(api), client.DiscoveryV1Api(api)
    svc = await core.create_namespaced_service(
        ns,
        {"metadata": {"name": "web"}, "spec": {"selector": LABELS, "ports": [{"name": "http", "port": 80}]}},
    )
    assert ipaddress.ip_address(svc.spec.cluster_ip) in ipaddress.ip_network("10.96.0.0/12")

    async def derived() -> Any:
        slices = (
            await disc.list_namespaced_endpoint_slice(ns, label_selector="kubernetes.io/service-name=web")
        ).items
        await core.read_namespaced_endpoints("web", ns)
        return slices

    slices = await eventually(derived)
    assert slices[0].metadata.owner_references[0].uid == svc.metadata.uid
    await core.delete_namespaced_service("web", ns)

    async def cleaned() -> bool:
        left = (await disc.list_namespaced_endpoint_slice(ns)).items
        endpoints = (await core.list_namespaced_endpoints(ns)).items
        return not left and not endpoints

    await eventually(cleaned)


WAIT_FOR_STOP = """
import os, sys, time
deadline = time.time() + 20
while not os.path.exists(os.path.join(sys.argv[1], "stop")) and time.time() < deadline:
    time.sleep(0.02)
"""


async def test_a_claim_in_use_by_a_running_pod_is_protected_until_the_pod_ends(
    api: client.ApiClient, ns: str, clusters: SandboxClusters
) -> None:
    core, batch = client.CoreV1Api(api), client.BatchV1Api(api)
    await core.create_namespaced_persistent_volume_claim(
        ns,
        {
            "metadata": {"name": "data"},
            "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}},
        },
    )
    job = ferry_job(
        "holder",
        ["python", "-c", WAIT_FOR_STOP, "/data"],
        volumeMounts=[{"name": "data", "mountPath": "/data"}],
    )
    job["spec"]["template"]["spec"]["volumes"] = job["spec"]["template"]["spec"]["volumes"][:1]
    await batch.create_namespaced_job(ns, job)

    async def running() -> Any:
        pods = (await core.list_namespaced_pod(ns, label_selector="job-name=holder")).items
        return pods and pods[0].status.phase == "Running"

    await eventually(running)
    pvc = await core.read_namespaced_persistent_volume_claim("data", ns)
    pv_dir = clusters["east"].volume_path(pvc.spec.volume_name)
    await core.delete_namespaced_persistent_volume_claim("data", ns)
    held = await core.read_namespaced_persistent_volume_claim("data", ns)
    assert held.metadata.deletion_timestamp is not None
    assert held.metadata.finalizers == ["kubernetes.io/pvc-protection"]
    (pv_dir / "stop").touch()

    async def released() -> bool:
        names = [c.metadata.name for c in (await core.list_namespaced_persistent_volume_claim(ns)).items]
        return "data" not in names

    await eventually(released, within=20)


TALK_THEN_WAIT = """
import os, sys, time
print("one", flush=True)
deadline = time.time() + 20
while not os.path.exists(sys.argv[1]) and time.time() < deadline:
    time.sleep(0.02)
print("two", flush=True)
"""


async def test_following_a_pod_log_streams_until_the_process_ends(
    api: client.ApiClient, ns: str, tmp_path: Path
) -> None:
    core, batch = client.CoreV1Api(api), client.BatchV1Api(api)
    stop = tmp_path / "stop"
    job = ferry_job("talker", ["python", "-c", TALK_THEN_WAIT, str(stop)])
    job["spec"]["template"]["spec"]["volumes"] = []
    await batch.create_namespaced_job(ns, job)

    async def running() -> Any:
        pods = (await core.list_namespaced_pod(ns, label_selector="job-name=talker")).items
        return pods[0].metadata.name if pods and pods[0].status.phase == "Running" else None

    pod = await eventually(running)
    response = await core.read_namespaced_pod_log(pod, ns, follow=True, _preload_content=False)
    try:
        async with asyncio.timeout(20):
            assert await response.content.readline() == b"one\n"
            stop.touch()
            assert await response.content.read() == b"two\n"
    finally:
        response.release()


NODE_SELECTORS = [
    pytest.param({}, 1, id="a daemonset without a node selector runs on the one node"),
    pytest.param({"kubernetes.io/os": "linux"}, 1, id="a matching node selector keeps it scheduled"),
    pytest.param({"migration.example/quiesce": "true"}, 0, id="a selector no node has quiesces it"),
]


@pytest.mark.parametrize(("node_selector", "scheduled"), NODE_SELECTORS)
async def test_a_daemonset_is_scheduled_where_its_node_selector_allows(
    api: client.ApiClient, ns: str, node_selector: dict[str, str], scheduled: int
) -> None:
    apps = client.AppsV1Api(api)
    template = pod_template("fluentd")
    template["spec"]["nodeSelector"] = node_selector
    await apps.create_namespaced_daemon_set(
        ns,
        {"metadata": {"name": "agent"}, "spec": {"selector": {"matchLabels": LABELS}, "template": template}},
    )

    async def observed() -> Any:
        ds = await apps.read_namespaced_daemon_set("agent", ns)
        return ds if ds.status.observed_generation == 1 else None

    ds = await eventually(observed)
    assert ds.status.desired_number_scheduled == scheduled and ds.status.number_ready == scheduled


async def test_a_wait_for_first_consumer_claim_binds_when_a_pod_uses_it(
    api: client.ApiClient, ns: str
) -> None:
    core, batch = client.CoreV1Api(api), client.BatchV1Api(api)
    spec = {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}}
    await core.create_namespaced_persistent_volume_claim(
        ns, {"metadata": {"name": "data"}, "spec": {**spec, "storageClassName": "local-wffc"}}
    )
    await core.create_namespaced_persistent_volume_claim(ns, {"metadata": {"name": "marker"}, "spec": spec})

    async def marker_bound() -> bool:
        return (await core.read_namespaced_persistent_volume_claim("marker", ns)).status.phase == "Bound"

    await eventually(marker_bound)  # the storage controller has seen both claims by now
    assert (await core.read_namespaced_persistent_volume_claim("data", ns)).status.phase == "Pending"
    job = ferry_job(
        "consumer", ["python", "-c", "pass"], volumeMounts=[{"name": "data", "mountPath": "/data"}]
    )
    job["spec"]["template"]["spec"]["volumes"] = job["spec"]["template"]["spec"]["volumes"][:1]
    await batch.create_namespaced_job(ns, job)

    async def bound() -> Any:
        pvc = await core.read_namespaced_persistent_volume_claim("data", ns)
        return pvc if pvc.status.phase == "Bound" else None

    pvc = await eventually(bound, within=20)
    assert pvc.metadata.annotations["volume.kubernetes.io/selected-node"] == "sandbox-node"
