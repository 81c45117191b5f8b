"""Conflict policies and dry run against a sandbox API server, through shared.kube: what the user sees
in the target cluster after each policy, with the API's own refusals."""

from __future__ import annotations

import copy
import time
from typing import Any

import pytest

from services.restore.conflicts import write
from shared.contracts.reports import Outcome
from shared.contracts.requests import ConflictPolicy
from shared.kube.objects import Manifest
from shared.runtime import load_settings
from shared.runtime.clusters import KubeCluster
from shared.runtime.moving import Movers, mover_said


def configmap(ns: str, value: str) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "conf", "namespace": ns,
            "labels": {"app": "shop"}}, "data": {"key": value}}  # fmt: skip


def service(ns: str, port: int) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "web", "namespace": ns},
            "spec": {"selector": {"app": "web"}, "ports": [{"port": port, "protocol": "TCP"}]}}  # fmt: skip


async def existing(west: KubeCluster, *objs: dict[str, Any]) -> None:
    for obj in objs:
        await west.create(Manifest(copy.deepcopy(obj)))


@pytest.mark.parametrize(
    ("policy", "outcome", "left"),
    [
        (ConflictPolicy.SKIP, Outcome.SKIPPED, "live"),
        (ConflictPolicy.UPDATE, Outcome.UPDATED, "snapshot"),
        (ConflictPolicy.RECREATE, Outcome.RECREATED, "snapshot"),
        (ConflictPolicy.FAIL, Outcome.FAILED, "live"),
    ],
    ids=["skip keeps the live object", "update patches it", "recreate replaces it", "fail reports it"],
)
async def test_conflict_policies_on_a_sandbox_cluster(
    west: KubeCluster, namespace: str, policy: ConflictPolicy, outcome: Outcome, left: str
) -> None:
    ns = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": namespace}}
    await existing(west, ns, configmap(namespace, "live"))
    before = await west.get(Manifest(configmap(namespace, "")))
    assert before is not None

    result = await write(west, Manifest(configmap(namespace, "snapshot")), policy)
    assert result.outcome is outcome
    live = await west.get(Manifest(configmap(namespace, "")))
    assert live is not None and live["data"]["key"] == left
    if outcome is Outcome.RECREATED:
        assert live["metadata"]["uid"] != before["metadata"]["uid"], "recreate must make a new object"
    if outcome is Outcome.UPDATED:
        assert live["metadata"]["uid"] == before["metadata"]["uid"]
    if outcome in (Outcome.SKIPPED, Outcome.FAILED):
        assert result.diff == ["data.key: 'live' in the target, 'snapshot' in the snapshot"]

    again = await write(west, Manifest(configmap(namespace, left)), policy)
    assert again.outcome is Outcome.UNCHANGED  # equal now: nothing to do, whatever the policy
    namespace_again = await write(west, Manifest(copy.deepcopy(ns)), policy)
    assert namespace_again.outcome in (Outcome.UNCHANGED, Outcome.SKIPPED)  # never recreated


async def test_update_keeps_what_the_server_assigned(west: KubeCluster, namespace: str) -> None:
    await existing(west, {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": namespace}},
                   service(namespace, 80))  # fmt: skip
    live = await west.get(Manifest(service(namespace, 80)))
    assert live is not None and live["spec"].get("clusterIP")
    result = await write(west, Manifest(service(namespace, 8080)), ConflictPolicy.UPDATE)
    assert result.outcome is Outcome.UPDATED, result.reason
    after = await west.get(Manifest(service(namespace, 80)))
    assert after is not None and after["spec"]["ports"][0]["port"] == 8080
    assert after["spec"]["clusterIP"] == live["spec"]["clusterIP"], "a merge patch keeps the cluster IP"


async def test_the_api_message_is_the_reason_of_a_refused_object(west: KubeCluster, namespace: str) -> None:
    # The namespace does not exist: the API server refuses, and its words reach the report.
    result = await write(west, Manifest(configmap(namespace, "x")), ConflictPolicy.SKIP)
    assert result.outcome is Outcome.FAILED
    assert namespace in result.reason and "not found" in result.reason.lower()
    unknown = {
        "apiVersion": "example.com/v1",
        "kind": "Widget",
        "metadata": {"name": "w", "namespace": namespace},
    }
    refused = await write(west, Manifest(unknown), ConflictPolicy.SKIP)
    assert refused.outcome is Outcome.FAILED and "serves no resource" in refused.reason


async def test_a_dry_run_writes_nothing(west: KubeCluster, namespace: str) -> None:
    await existing(west, {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": namespace}},
                   configmap(namespace, "live"))  # fmt: skip
    for policy in ConflictPolicy:
        changed = await write(west, Manifest(configmap(namespace, "snapshot")), policy, dry_run=True)
        new = await write(west, Manifest(service(namespace, 80)), policy, dry_run=True)
        assert new.outcome is Outcome.PLANNED and new.reason == "would be created"
        assert changed.diff == ["data.key: 'live' in the target, 'snapshot' in the snapshot"]
    assert await west.get(Manifest(service(namespace, 80))) is None
    live = await west.get(Manifest(configmap(namespace, "")))
    assert live is not None and live["data"]["key"] == "live"


async def test_a_mover_that_cannot_start_fails_its_volume_at_once_with_the_kubelets_reason(
    west: KubeCluster, namespace: str
) -> None:
    """A pod that can never start (here: its credentials Secret is gone) is reported as such, within
    seconds, instead of after the mover timeout."""
    await existing(
        west,
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": namespace}},
        {"apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": {"name": "data", "namespace": namespace},
         "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}}},
    )  # fmt: skip
    settings = load_settings({"FERRY_REPO_PASSWORD": "pw"})
    movers = Movers(west, settings, request_id=f"req-{namespace}", step="restore",
                    repository_url="s3://nowhere/repo", labels={}, timeout=600)  # fmt: skip
    movers._secrets[namespace] = Manifest(
        {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "gone", "namespace": namespace}}
    )
    started = time.monotonic()
    run = await movers.run(namespace, "data", ["restore", "s1", "/data"], "restore")
    assert time.monotonic() - started < 60
    assert (
        "the mover cannot start" in run.why
        and 'CreateContainerConfigError: secret "gone" not found' in run.why
    )
    assert f"Job {namespace}/{run.job} kept for its logs" in run.why


@pytest.mark.parametrize(
    ("log", "said"),
    [
        pytest.param(
            "ferry-mover restore: no repository at s3://b/r (run `ferry-mover init`)\n"
            '{"command": "restore", "error": "no repository at s3://b/r (run `ferry-mover init`)", "exit_code": 10}\n',
            "no repository at s3://b/r (run `ferry-mover init`) (ferry-mover exit code 10)",
            id="the mover's own verdict, once",
        ),
        pytest.param(
            "line 1\nline 2\nline 3\nline 4\n", "line 2 | line 3 | line 4", id="else the last lines"
        ),
    ],
)
def test_a_failed_mover_is_summed_up_in_one_line(log: str, said: str) -> None:
    assert mover_said(log) == said
