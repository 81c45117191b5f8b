"""Mover Jobs: ``ferry-mover`` next to a volume in the target cluster, to fill it or to read it back.

Volume data is written where the volume lives (DESIGN.md): for each restored PVC the restore step
creates a Job running Ferry's image with ``ferry-mover restore <snapshot> /data``, the PVC mounted at
``/data``, before any workload that mounts the claim is created. The verify step runs
``ferry-mover backup /data --parent none`` into the same repository: every file is read and hashed
again (no metadata shortcut), deduplication means nothing but trees is stored, and the two trees are
compared in the repository (``checking.compare_trees``).

The repository password and S3 credentials reach the Job through a Secret the step creates in the
namespace (one per request, deleted with the Jobs when the step ends); the repository URL, endpoint,
NATS URL (progress events) and request id are plain env/args. Everything carries the request's labels
so a rollback or a cleanup finds it.
"""

from __future__ import annotations

import base64
import hashlib
from typing import Any

from services.restore.objects import Obj
from shared.runtime.settings import Settings

MOUNT = "/data"
ROLE_LABEL = "ferry.dev/role"


def short_name(*parts: str, prefix: str = "ferry") -> str:
    """A DNS-1123 name that stays under 63 characters and is stable for the same parts."""
    digest = hashlib.sha256("/".join(parts).encode()).hexdigest()[:10]
    head = "-".join(p for p in parts if p)[: 63 - len(prefix) - 13].strip("-.").lower()
    head = "".join(c if c.isalnum() or c == "-" else "-" for c in head)
    return f"{prefix}-{head}-{digest}".replace("--", "-")


def _secret_data(settings: Settings) -> dict[str, str]:
    data = {
        "FERRY_REPO_PASSWORD": settings.repo_password,
        "FERRY_S3_ACCESS_KEY": settings.s3.access_key,
        "FERRY_S3_SECRET_KEY": settings.s3.secret_key,
    }
    return {k: v for k, v in data.items() if v}


def secret_keys(settings: Settings) -> list[str]:
    return sorted(_secret_data(settings))


def credentials_secret(settings: Settings, namespace: str, name: str, labels: dict[str, str]) -> Obj:
    data = _secret_data(settings)
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {
            "name": name,
            "namespace": namespace,
            "labels": {**labels, ROLE_LABEL: "mover-credentials"},
        },
        "type": "Opaque",
        "data": {k: base64.b64encode(v.encode()).decode() for k, v in data.items()},
    }


def mover_job(
    settings: Settings,
    *,
    name: str,
    namespace: str,
    claim: str,
    args: list[str],
    repository_url: str,
    secret: str,
    request_id: str,
    step: str,
    labels: dict[str, str],
    role: str,
) -> Obj:
    """A Job running ``ferry-mover <args>`` with ``claim`` mounted at /data."""
    env: list[dict[str, Any]] = [
        {"name": "FERRY_REPO", "value": repository_url},
        {"name": "FERRY_REQUEST_ID", "value": request_id},
    ]
    if settings.s3.endpoint:
        env.append({"name": "FERRY_S3_ENDPOINT", "value": settings.s3.endpoint})
    if settings.s3.region:
        env.append({"name": "FERRY_S3_REGION", "value": settings.s3.region})
    if settings.nats.url:
        env.append({"name": "FERRY_NATS_URL", "value": settings.nats.url})
    for key in secret_keys(settings):  # only the keys the Secret holds: no optional refs needed
        env.append({"name": key, "valueFrom": {"secretKeyRef": {"name": secret, "key": key}}})
    job_labels = {**labels, ROLE_LABEL: role}
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": name, "namespace": namespace, "labels": job_labels},
        "spec": {
            "backoffLimit": 2,
            "template": {
                "metadata": {"labels": job_labels},
                "spec": {
                    "restartPolicy": "Never",
                    "containers": [
                        {
                            "name": "mover",
                            "image": settings.image,
                            "command": ["ferry-mover"],
                            "args": [*args, "--json", "--quiet", "--step", step],
                            "env": env,
                            "volumeMounts": [{"name": "data", "mountPath": MOUNT}],
                        }
                    ],
                    "volumes": [{"name": "data", "persistentVolumeClaim": {"claimName": claim}}],
                },
            },
        },
    }


def restore_args(snapshot_id: str) -> list[str]:
    return ["restore", snapshot_id, MOUNT]


def verify_args(name: str, group: str, request_id: str) -> list[str]:
    return ["backup", MOUNT, "--name", name, "--group", group, "--parent", "none",
            "--tag", f"ferry.dev/verification={request_id}"]  # fmt: skip


def job_state(job: Obj | None) -> tuple[bool, str]:
    """(finished, "" if it succeeded else why not) from a Job's status conditions."""
    if job is None:
        return True, "the Job disappeared"
    for condition in (job.get("status") or {}).get("conditions") or []:
        if condition.get("status") != "True":
            continue
        if condition.get("type") == "Complete":
            return True, ""
        if condition.get("type") == "Failed":
            reason = condition.get("message") or condition.get("reason") or "failed"
            return True, f"mover Job failed: {reason}"
    return False, ""
