"""What the mover Job looks like, and how a mover that can never run is recognised (no cluster needed)."""

from __future__ import annotations

from typing import Any

import pytest

from services.snapshot import movers
from shared.runtime import load_settings
from shared.runtime import movers as shared_movers


def pod(phase: str = "Running", claim: str = "data", node: str = "n1", waiting: str = "") -> dict[str, Any]:
    statuses = (
        [{"image": "ferry:x", "state": {"waiting": {"reason": waiting, "message": "pull failed"}}}]
        if waiting
        else []
    )
    return {
        "spec": {"nodeName": node, "volumes": [{"name": "v", "persistentVolumeClaim": {"claimName": claim}}]},
        "status": {"phase": phase, "containerStatuses": statuses},
    }


def test_the_mover_job_mounts_read_only_and_takes_secrets_from_the_secret_only() -> None:
    settings = load_settings(
        {}, repo_password="pw", nats={"url": "nats://bus:4222"}, image="ghcr.io/ferry-dev/ferry:0.2"
    )
    job = movers.mover_job(settings, name="j", namespace="shop", claim="data", args=["backup", "/data"],
                           repository_url="s3://b/p", secret="creds", request_id="r1", node="n1")  # fmt: skip
    spec = job["spec"]["template"]["spec"]
    container = spec["containers"][0]
    assert container["image"] == "ghcr.io/ferry-dev/ferry:0.2" and container["command"] == ["ferry-mover"]
    assert container["volumeMounts"] == [{"name": "data", "mountPath": "/data", "readOnly": True}]
    assert spec["volumes"][0]["persistentVolumeClaim"] == {"claimName": "data", "readOnly": True}
    env = {e["name"]: e for e in container["env"]}
    assert env["FERRY_REPO_PASSWORD"]["valueFrom"]["secretKeyRef"] == {
        "name": "creds",
        "key": "FERRY_REPO_PASSWORD",
    }
    assert "FERRY_S3_SECRET_KEY" not in env  # not configured: not referenced
    assert all("pw" not in str(e.get("value", "")) for e in container["env"])
    terms = spec["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"][
        "nodeSelectorTerms"
    ]
    assert terms == [{"matchFields": [{"key": "metadata.name", "operator": "In", "values": ["n1"]}]}]
    assert job["metadata"]["labels"] == {
        "ferry.dev/request": "r1",
        "ferry.dev/step": "snapshot",
        "ferry.dev/role": "mover",
    }


def test_a_live_copy_follows_the_running_pod_of_its_claim() -> None:
    assert movers.node_of([pod(node="n1", claim="other"), pod(node="n2")], "data") == "n2"
    assert movers.node_of([pod(phase="Succeeded", node="n3")], "data") == ""


def test_a_pod_that_can_never_start_is_recognised() -> None:
    assert shared_movers.stuck([pod(waiting="ContainerCreating")]) == ""
    assert shared_movers.stuck([pod(waiting="ImagePullBackOff")]) == "ImagePullBackOff: pull failed"


def test_names_are_dns_labels_and_stable() -> None:
    long = movers.short_name("replicate-20261123-200133-abc123", "shop", "x" * 80)
    assert len(long) <= 63 and long == movers.short_name("replicate-20261123-200133-abc123", "shop", "x" * 80)
    assert long != movers.short_name("replicate-20261123-200133-abc124", "shop", "x" * 80)


# What a namespace labelled pod-security.kubernetes.io/enforce=baseline lets a container add.
BASELINE_CAPABILITIES = {"AUDIT_WRITE", "CHOWN", "DAC_OVERRIDE", "FOWNER", "FSETID", "KILL", "MKNOD",
                         "NET_BIND_SERVICE", "SETFCAP", "SETGID", "SETPCAP", "SETUID", "SYS_CHROOT"}  # fmt: skip


@pytest.mark.parametrize("step", ["snapshot", "restore"])
def test_a_mover_runs_as_root_with_only_the_capabilities_its_step_takes(step: str) -> None:
    """Ferry's image runs as uid 10001, which can neither read a database's 0700 files nor give restored
    files their owners: the mover Job runs as root, but confined, and admissible in a baseline namespace."""
    settings = load_settings({}, repo_password="pw", image="ghcr.io/ferry-dev/ferry:0.2")
    common = dict(name="j", namespace="shop", claim="data", repository_url="s3://b/p", secret="creds")
    if step == "snapshot":
        job = movers.mover_job(settings, request_id="r1", args=["backup", "/data"], **common)
    else:
        job = shared_movers.mover_job(settings, request_id="r1", args=["restore", "s1", "/data"], labels={},
                                      read_only=False, **common)  # fmt: skip
    spec = job["spec"]["template"]["spec"]
    assert spec["securityContext"] == {
        "runAsUser": 0,
        "runAsGroup": 0,
        "runAsNonRoot": False,
        "seccompProfile": {"type": "RuntimeDefault"},
    }
    container = spec["containers"][0]["securityContext"]
    assert container["privileged"] is False and container["allowPrivilegeEscalation"] is False
    assert container["readOnlyRootFilesystem"] is True
    assert container["capabilities"]["drop"] == ["ALL"]
    added = set(container["capabilities"]["add"])
    assert added <= BASELINE_CAPABILITIES
    if step == "snapshot":
        assert added == {"DAC_OVERRIDE"}  # reads every file; changes nothing
    else:
        assert {"CHOWN", "FOWNER", "DAC_OVERRIDE"} <= added
    assert not any("hostPath" in volume for volume in spec["volumes"])
