"""Mover Jobs: ``ferry-mover`` in Ferry's image next to a volume, with every setting it needs to reach
the repository and the bus — the one builder the snapshot, restore and verify steps share.

What a mover gets, and how:
- plain env: the repository URL, the request id, the S3 endpoint and region (``FERRY_S3_VIRTUAL_HOST``
  when path-style is off), the NATS URL and user;
- from a per-request Secret the step creates in the volume's namespace (and deletes when it ends):
  the repository password, the S3 keys, the NATS password or token as env vars (``secretKeyRef`` to
  keys the Secret holds, so nothing is optional), and the contents of the files the service's own
  settings name — NATS creds, NKey seed, TLS CA/cert/key, the S3 CA bundle — mounted read-only at
  ``/etc/ferry/mover`` with the matching ``FERRY_*`` path variables;
- resources sized for the mover's bounded memory (peak RSS under 512 MiB whatever the volume size);
- root in its container, with only the capabilities its work takes (``security_context``).
Secrets never appear in the Job spec itself, so ``kubectl get job -o yaml`` shows none.
"""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Any

from shared.contracts.errors import PermanentError
from shared.runtime.settings import Settings

MOUNT = "/data"
FILES_MOUNT = "/etc/ferry/mover"
ROLE_LABEL = "ferry.dev/role"
# The mover's RSS stays under 512 MiB (benchmarks/mover.py measures it): the limit leaves headroom.
RESOURCES = {"requests": {"cpu": "250m", "memory": "256Mi"}, "limits": {"memory": "768Mi"}}
# A volume holds files of any owner and mode (a database's 0700 directory of uid 999), and a restore
# must give them back their owners. Ferry's image runs as uid 10001, which can do neither, so a
# mover runs as root, as Velero's node agent does, but with every capability dropped except these
# (all in the Pod Security "baseline" set): DAC_OVERRIDE reads (and writes) whatever the mode;
# a restore also sets owners (CHOWN), modes, times and ACLs of files it does not own (FOWNER), keeps
# setuid/setgid bits across chown (FSETID), recreates device nodes (MKNOD) and file capabilities,
# the security.capability attribute (SETFCAP).
BACKUP_CAPABILITIES = ["DAC_OVERRIDE"]
RESTORE_CAPABILITIES = ["CHOWN", "DAC_OVERRIDE", "FOWNER", "FSETID", "MKNOD", "SETFCAP"]


def _values(settings: Settings) -> dict[str, str]:
    """Secret values the mover reads from env vars."""
    data = {
        "FERRY_REPO_PASSWORD": settings.repo_password,
        "FERRY_S3_ACCESS_KEY": settings.s3.access_key,
        "FERRY_S3_SECRET_KEY": settings.s3.secret_key,
        "FERRY_NATS_PASSWORD": settings.nats.password,
        "FERRY_NATS_TOKEN": settings.nats.token,
    }
    return {k: v for k, v in data.items() if v}


def _files(settings: Settings) -> dict[str, tuple[str, str]]:
    """env var -> (key in the Secret, path on the service) of every file setting in use."""
    named = {
        "FERRY_NATS_CREDS": ("nats.creds", settings.nats.creds),
        "FERRY_NATS_NKEY_SEED": ("nats.nkey", settings.nats.nkey_seed),
        "FERRY_NATS_TLS_CA": ("nats-ca.pem", settings.nats.tls_ca),
        "FERRY_NATS_TLS_CERT": ("nats-cert.pem", settings.nats.tls_cert),
        "FERRY_NATS_TLS_KEY": ("nats-key.pem", settings.nats.tls_key),
        "FERRY_S3_CA_BUNDLE": ("s3-ca.pem", settings.s3.ca_bundle),
    }
    return {env: (key, path) for env, (key, path) in named.items() if path}


def secret_keys(settings: Settings) -> list[str]:
    """The env-var keys the credentials Secret holds."""
    return sorted(_values(settings))


def credentials_secret(
    settings: Settings, *, name: str, namespace: str, labels: dict[str, str]
) -> dict[str, Any]:
    """The Secret a step's movers read their credentials from (blocking: reads the file settings)."""
    data = {k: v.encode() for k, v in _values(settings).items()}
    for env, (key, path) in _files(settings).items():
        try:
            data[key] = Path(path).read_bytes()
        except OSError as e:
            raise PermanentError(f"{env}={path}: cannot read it for the mover Jobs: {e.strerror}") from None
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": name, "namespace": namespace, "labels": labels},
        "type": "Opaque",
        "data": {k: base64.b64encode(v).decode() for k, v in data.items()},
    }


def security_context(read_only: bool) -> tuple[dict[str, Any], dict[str, Any]]:
    """The pod's and the container's securityContext: root, no escalation, a read-only root file system
    (the mover writes only to its volume and the repository), the runtime's seccomp profile, and only
    the capabilities a backup (``read_only``) or a restore needs."""
    pod = {
        "runAsUser": 0,
        "runAsGroup": 0,
        "runAsNonRoot": False,
        "seccompProfile": {"type": "RuntimeDefault"},
    }
    container = {
        "privileged": False,
        "allowPrivilegeEscalation": False,
        "readOnlyRootFilesystem": True,
        "capabilities": {
            "drop": ["ALL"],
            "add": BACKUP_CAPABILITIES if read_only else RESTORE_CAPABILITIES,
        },
    }
    return pod, container


def mover_args(args: list[str], step: str) -> list[str]:
    """``ferry-mover`` arguments with what every step's mover is asked for: its JSON summary as the
    last log line (the step reads it), no progress on the terminal, and the step its events name."""
    return [*args, "--json", "--quiet", "--step", step]


def _env(settings: Settings, repository_url: str, request_id: str, secret: str) -> list[dict[str, Any]]:
    """The container's env: plain values, secret values by reference, file paths under FILES_MOUNT."""
    env: list[dict[str, Any]] = [
        {"name": "FERRY_REPO", "value": repository_url},
        {"name": "FERRY_REQUEST_ID", "value": request_id},
        {"name": "FERRY_CACHE_DIR", "value": "off"},  # a Job's pod starts empty: a cache only costs writes
    ]
    plain = {
        "FERRY_S3_ENDPOINT": settings.s3.endpoint,
        "FERRY_S3_REGION": settings.s3.region,
        "FERRY_S3_VIRTUAL_HOST": "" if settings.s3.path_style else "1",
        "FERRY_NATS_URL": settings.nats.url,
        "FERRY_NATS_USER": settings.nats.user,
    }
    env += [{"name": k, "value": v} for k, v in plain.items() if v]
    for key in secret_keys(settings):
        env.append({"name": key, "valueFrom": {"secretKeyRef": {"name": secret, "key": key}}})
    env += [{"name": var, "value": f"{FILES_MOUNT}/{key}"} for var, (key, _) in _files(settings).items()]
    return env


def _volumes(
    settings: Settings, claim: str, secret: str, read_only: bool
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """The pod's volumes and the container's mounts: the claim at MOUNT, the Secret's files if any."""
    mounts: list[dict[str, Any]] = [{"name": "data", "mountPath": MOUNT, "readOnly": read_only}]
    claim_source: dict[str, Any] = {"claimName": claim}
    if read_only:
        claim_source["readOnly"] = True
    volumes: list[dict[str, Any]] = [{"name": "data", "persistentVolumeClaim": claim_source}]
    if files := _files(settings):
        items = [{"key": key, "path": key} for key, _ in files.values()]
        volumes.append(
            {"name": "mover-files", "secret": {"secretName": secret, "items": items, "defaultMode": 0o400}}
        )
        mounts.append({"name": "mover-files", "mountPath": FILES_MOUNT, "readOnly": True})
    return volumes, mounts


def _pinned(node: str) -> dict[str, Any]:
    """The affinity that puts a pod on ``node`` (next to the pod mounting a live ReadWriteOnce claim)."""
    term = {"matchFields": [{"key": "metadata.name", "operator": "In", "values": [node]}]}
    return {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [term]}}}


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
    labels: dict[str, str],
    read_only: bool,
    backoff_limit: int = 1,
    node: str = "",
) -> dict[str, Any]:
    """A Job running ``ferry-mover <args>`` with ``claim`` at /data; ``node`` pins it next to a pod
    that mounts a live ReadWriteOnce claim."""
    volumes, mounts = _volumes(settings, claim, secret, read_only)
    pod_security, container_security = security_context(read_only)
    container = {
        "name": "mover",
        "image": settings.image,
        "command": ["ferry-mover"],
        "args": args,
        "env": _env(settings, repository_url, request_id, secret),
        "volumeMounts": mounts,
        "resources": RESOURCES,
        "securityContext": container_security,
    }
    pod_spec: dict[str, Any] = {
        "restartPolicy": "Never",
        "securityContext": pod_security,
        "containers": [container],
        "volumes": volumes,
    }
    if node:
        pod_spec["affinity"] = _pinned(node)
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": name, "namespace": namespace, "labels": labels},
        "spec": {
            "backoffLimit": backoff_limit,
            "template": {"metadata": {"labels": labels}, "spec": pod_spec},
        },
    }


# Waiting reasons of a container that will not start by itself: the step fails now, not at its timeout.
STUCK = {
    "ErrImagePull",
    "ImagePullBackOff",
    "InvalidImageName",
    "CreateContainerConfigError",
    "CreateContainerError",
}


def stuck(pods: list[dict[str, Any]]) -> str:
    """Why a mover pod can never start (a bad image, a missing Secret key), or ""."""
    for pod in pods:
        for status in (pod.get("status") or {}).get("containerStatuses") or []:
            waiting = (status.get("state") or {}).get("waiting") or {}
            if waiting.get("reason") in STUCK:
                return f"{waiting['reason']}: {waiting.get('message') or status.get('image', '')}".strip()
    return ""
