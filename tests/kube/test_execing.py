"""``pod_exec``: a command in a pod's container over the sandbox's ``pods/exec`` WebSocket."""

from __future__ import annotations

import pytest

from sandbox import SandboxClusters
from shared.kube import Cluster, ExecFailed, NotFound, pod_exec
from shared.kube.execing import exit_code_of

POD = "hooked"


async def running_pod(east: Cluster, ns: str) -> str:
    """A Deployment's pod with a claim mounted at /data, Running (the sandbox runs no container)."""
    claim = {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}}
    await east.create(
        {
            "apiVersion": "v1",
            "kind": "PersistentVolumeClaim",
            "metadata": {"name": "data", "namespace": ns},
            "spec": claim,
        }
    )
    container = {
        "name": "app",
        "image": "busybox",
        "env": [{"name": "WHO", "value": "ferry"}],
        "volumeMounts": [{"name": "data", "mountPath": "/data"}],
    }
    spec = {
        "containers": [container],
        "volumes": [{"name": "data", "persistentVolumeClaim": {"claimName": "data"}}],
    }
    deploy = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": POD, "namespace": ns},
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": {"app": POD}},
            "template": {"metadata": {"labels": {"app": POD}}, "spec": spec},
        },
    }
    await east.create(deploy)
    await east.wait_for(
        "deployments.apps",
        POD,
        lambda o: bool((o or {}).get("status", {}).get("availableReplicas")),
        namespace=ns,
        within=20,
    )
    (pod,) = await east.list("pods", ns, label_selector=f"app={POD}")
    return str(pod["metadata"]["name"])


async def test_a_command_s_output_and_exit_code_come_back(
    east: Cluster, ns: str, clusters: SandboxClusters
) -> None:
    pod = await running_pod(east, ns)
    result = await pod_exec(east, ns, pod, ["sh", "-c", 'echo "hi $WHO" | tee /data/mark; echo warn >&2'])
    assert (result.exit_code, result.stdout, result.stderr, result.timed_out) == (
        0,
        "hi ferry\n",
        "warn\n",
        False,
    )
    assert result.ok and result.duration > 0
    claim = await east.get("persistentvolumeclaims", "data", ns)
    assert (clusters["east"].volume_path(claim["spec"]["volumeName"]) / "mark").read_text() == "hi ferry\n"
    failed = await pod_exec(east, ns, pod, ["sh", "-c", "echo partial; exit 42"], container="app")
    assert (failed.exit_code, failed.stdout, failed.ok) == (42, "partial\n", False)


async def test_stdin_is_sent_and_closed(east: Cluster, ns: str) -> None:
    pod = await running_pod(east, ns)
    result = await pod_exec(east, ns, pod, ["sh", "-c", "wc -c"], stdin=b"x" * 200_000)
    assert (result.exit_code, result.stdout.strip()) == (0, "200000")


async def test_a_timeout_ends_the_exec_and_keeps_the_output_so_far(east: Cluster, ns: str) -> None:
    pod = await running_pod(east, ns)
    result = await pod_exec(east, ns, pod, ["sh", "-c", "echo started; sleep 30"], within=1.0)
    assert result.timed_out and result.exit_code is None and result.stdout == "started\n"
    assert result.duration < 5


async def test_refusals_are_ferry_errors(east: Cluster, ns: str) -> None:
    pod = await running_pod(east, ns)
    with pytest.raises(NotFound):
        await pod_exec(east, ns, "no-such-pod", ["true"])
    with pytest.raises(ExecFailed, match="executable file not found"):
        await pod_exec(east, ns, pod, ["no-such-command"])


@pytest.mark.parametrize(
    ("status", "code"),
    [
        pytest.param({"metadata": {}, "status": "Success"}, 0, id="success is exit code 0"),
        pytest.param(
            {
                "status": "Failure",
                "reason": "NonZeroExitCode",
                "details": {"causes": [{"reason": "ExitCode", "message": "3"}]},
            },
            3,
            id="the exit code comes from the ExitCode cause",
        ),
    ],
)
def test_the_error_channel_status_gives_the_exit_code(status: dict[str, object], code: int) -> None:
    assert exit_code_of(status) == code
