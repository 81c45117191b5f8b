"""What a real API server fills in on create for Jobs, CronJobs, Deployments and StatefulSets.

Kubernetes 1.32's ``SetDefaults_Job``, ``SetDefaults_CronJob``, ``SetDefaults_Deployment`` and
``SetDefaults_StatefulSet``: a value the client left out (or sent empty, as ``kubectl create
deployment`` sends ``strategy: {}``) is defaulted, one the client set is kept, zero and false included.
"""

from __future__ import annotations

from typing import Any

import pytest
from kubernetes_asyncio import client

from tests.sandbox.conftest import MISSING, shaped

POD = {"spec": {"restartPolicy": "Never", "containers": [{"name": "c", "image": "busybox"}]}}
POD_OF_APP = {
    "metadata": {"labels": {"app": "a"}},
    "spec": {"containers": [{"name": "c", "image": "busybox"}]},
}
SELECTOR = {"matchLabels": {"app": "a"}}


CASES = [
    pytest.param(
        "job",
        {"spec": {"template": POD}},
        {
            "metadata": {"labels": {"job-name": "x"}},
            "spec": {
                "completions": 1,
                "parallelism": 1,
                "backoffLimit": 6,
                "completionMode": "NonIndexed",
                "suspend": False,
                "podReplacementPolicy": "TerminatingOrFailed",
                "manualSelector": MISSING,
            },
        },
        id="a bare Job gets one completion, six retries, suspend false and its pods' labels",
    ),
    pytest.param(
        "job",
        {"spec": {"parallelism": 3, "template": POD}},
        {"spec": {"parallelism": 3, "completions": MISSING}},
        id="a Job with parallelism alone is a work queue without completions",
    ),
    pytest.param(
        "job",
        {
            "spec": {
                "completionMode": "Indexed",
                "completions": 2,
                "backoffLimitPerIndex": 1,
                "template": POD,
            }
        },
        {"spec": {"backoffLimit": 2147483647, "completionMode": "Indexed"}},
        id="a Job with a backoff limit per index has no overall limit",
    ),
    pytest.param(
        "job",
        {
            "spec": {
                "podFailurePolicy": {
                    "rules": [{"action": "Ignore", "onPodConditions": [{"type": "DisruptionTarget"}]}]
                },
                "template": POD,
            }
        },
        {
            "spec": {
                "podReplacementPolicy": "Failed",
                "podFailurePolicy": {
                    "rules": [{"onPodConditions": [{"type": "DisruptionTarget", "status": "True"}]}]
                },
            }
        },
        id="a Job with a pod failure policy replaces failed pods only, its conditions default to True",
    ),
    pytest.param(
        "job",
        {
            "metadata": {"labels": {"team": "a"}},
            "spec": {"backoffLimit": 0, "suspend": True, "template": POD},
        },
        {"metadata": {"labels": {"team": "a"}}, "spec": {"backoffLimit": 0, "suspend": True}},
        id="a Job's own labels, zero retries and suspension are kept",
    ),
    pytest.param(
        "cronjob",
        {"spec": {"schedule": "*/5 * * * *", "jobTemplate": {"spec": {"template": POD}}}},
        {
            "spec": {
                "suspend": False,
                "concurrencyPolicy": "Allow",
                "successfulJobsHistoryLimit": 3,
                "failedJobsHistoryLimit": 1,
                "jobTemplate": {"spec": {"backoffLimit": MISSING, "suspend": MISSING}},
            }
        },
        id="a CronJob gets suspend false and history limits, its job template no Job defaults",
    ),
    pytest.param(
        "cronjob",
        {
            "spec": {
                "schedule": "*/5 * * * *",
                "suspend": True,
                "concurrencyPolicy": "Forbid",
                "successfulJobsHistoryLimit": 0,
                "jobTemplate": {"spec": {"template": POD}},
            }
        },
        {"spec": {"suspend": True, "concurrencyPolicy": "Forbid", "successfulJobsHistoryLimit": 0}},
        id="a CronJob's own suspension, policy and zero history are kept",
    ),
    pytest.param(
        "deployment",
        {"spec": {"selector": SELECTOR, "strategy": {}, "template": POD_OF_APP}},
        {
            "spec": {
                "strategy": {
                    "type": "RollingUpdate",
                    "rollingUpdate": {"maxSurge": "25%", "maxUnavailable": "25%"},
                }
            }
        },
        id="a Deployment's empty strategy becomes a 25% rolling update",
    ),
    pytest.param(
        "deployment",
        {"spec": {"selector": SELECTOR, "strategy": {"type": "Recreate"}, "template": POD_OF_APP}},
        {"spec": {"strategy": {"type": "Recreate", "rollingUpdate": MISSING}}},
        id="a recreating Deployment gets no rolling update",
    ),
    pytest.param(
        "statefulset",
        {"spec": {"selector": SELECTOR, "serviceName": "a", "updateStrategy": {}, "template": POD_OF_APP}},
        {
            "spec": {
                "updateStrategy": {"type": "RollingUpdate", "rollingUpdate": {"partition": 0}},
                "persistentVolumeClaimRetentionPolicy": {"whenDeleted": "Retain", "whenScaled": "Retain"},
            }
        },
        id="a StatefulSet's empty update strategy becomes a rolling update from partition 0",
    ),
]


async def _create(api: client.ApiClient, ns: str, kind: str, body: dict[str, Any]) -> Any:
    body = {**body, "metadata": {"name": "x", **body.get("metadata", {})}}
    batch, apps = client.BatchV1Api(api), client.AppsV1Api(api)
    create: Any = {
        "job": batch.create_namespaced_job,
        "cronjob": batch.create_namespaced_cron_job,
        "deployment": apps.create_namespaced_deployment,
        "statefulset": apps.create_namespaced_stateful_set,
    }[kind]
    return await create(ns, body)


@pytest.mark.parametrize(("kind", "body", "expected"), CASES)
async def test_a_created_object_has_a_real_servers_defaults(
    api: client.ApiClient, ns: str, kind: str, body: dict[str, Any], expected: dict[str, Any]
) -> None:
    created = api.sanitize_for_serialization(await _create(api, ns, kind, body))
    assert shaped(created, expected) == expected
