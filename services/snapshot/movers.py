"""The temporary objects of a snapshot step: names, labels, and the manifests of mover Jobs.

Every temporary object (credentials Secret, VolumeSnapshot, claim from the snapshot, mover Job)
carries ``ferry.dev/request=<request id>`` and ``ferry.dev/step=snapshot``, so one label selector
finds what any attempt of the step left behind — the sweep at the start and at the end of every
attempt deletes them all. Names are stable for (request, claim), short enough for DNS-1123.

The mover Job (built by ``shared.runtime.movers``) runs Ferry's image with ``ferry-mover backup
/data``, the claim mounted read-only at ``/data``; credentials come from the Secret, progress goes to
NATS with the request id (the mover publishes per-volume Progress events itself).
"""

from __future__ import annotations

import hashlib
from typing import Any

from shared.contracts import snapshots as c
from shared.runtime import movers as moverjobs
from shared.runtime.settings import Settings

MOUNT = moverjobs.MOUNT
REQUEST_LABEL = "ferry.dev/request"
STEP_LABEL = "ferry.dev/step"
ROLE_LABEL = moverjobs.ROLE_LABEL
VOLUME_SNAPSHOTS = "volumesnapshots.snapshot.storage.k8s.io"
TEMPORARY = ("jobs.batch", "persistentvolumeclaims", VOLUME_SNAPSHOTS, "secrets")
SNAPSHOT_API = "snapshot.storage.k8s.io"


def labels(request_id: str, role: str) -> dict[str, str]:
    return {REQUEST_LABEL: request_id, STEP_LABEL: "snapshot", ROLE_LABEL: role}


def selector(request_id: str) -> str:
    return f"{REQUEST_LABEL}={request_id},{STEP_LABEL}=snapshot"


def short_name(*parts: str, prefix: str = "ferry-snap") -> str:
    """A DNS-1123 name under 63 characters, stable for the same parts."""
    digest = hashlib.sha256("/".join(parts).encode()).hexdigest()[:8]
    head = "".join(ch if ch.isalnum() else "-" for ch in parts[-1].lower())[: 63 - len(prefix) - 10].strip(
        "-"
    )
    return f"{prefix}-{head}-{digest}" if head else f"{prefix}-{digest}"


def credentials(settings: Settings, name: str, namespace: str, request_id: str) -> dict[str, Any]:
    return moverjobs.credentials_secret(
        settings, name=name, namespace=namespace, labels=labels(request_id, "mover-credentials")
    )


def volume_snapshot(
    name: str, namespace: str, claim: str, snapshot_class: str, request_id: str
) -> dict[str, Any]:
    return {
        "apiVersion": f"{SNAPSHOT_API}/v1",
        "kind": "VolumeSnapshot",
        "metadata": {"name": name, "namespace": namespace, "labels": labels(request_id, "volume-snapshot")},
        "spec": {"volumeSnapshotClassName": snapshot_class, "source": {"persistentVolumeClaimName": claim}},
    }


def claim_from_snapshot(
    name: str, namespace: str, snapshot: str, storage_class: str, size: str, request_id: str
) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "accessModes": ["ReadWriteOnce"],
        "resources": {"requests": {"storage": size}},
        "dataSource": {"apiGroup": SNAPSHOT_API, "kind": "VolumeSnapshot", "name": snapshot},
    }
    if storage_class:
        spec["storageClassName"] = storage_class
    return {
        "apiVersion": "v1",
        "kind": "PersistentVolumeClaim",
        "metadata": {"name": name, "namespace": namespace, "labels": labels(request_id, "snapshot-claim")},
        "spec": spec,
    }


def backup_args(namespace: str, claim: str, group: str, parent: str, tags: dict[str, str]) -> list[str]:
    args = ["backup", MOUNT, "--name", f"{namespace}/{claim}", "--group", group, "--parent", parent or "none"]
    for key, value in sorted(tags.items()):
        args += ["--tag", f"{key}={value}"]
    return moverjobs.mover_args(args, "snapshot")


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
    node: str = "",
) -> dict[str, Any]:
    """The shared mover Job (``shared.runtime.movers.mover_job``), reading its claim read-only, with
    the snapshot step's labels; ``node`` pins its pod next to the pod that mounts a live
    ReadWriteOnce claim."""
    return moverjobs.mover_job(
        settings,
        name=name,
        namespace=namespace,
        claim=claim,
        args=args,
        repository_url=repository_url,
        secret=secret,
        request_id=request_id,
        labels=labels(request_id, "mover"),
        read_only=True,
        node=node,
    )


def node_of(pods: list[dict[str, Any]], claim: str) -> str:
    """The node of a running pod that mounts ``claim`` (a live RWO copy must run there too)."""
    for pod in pods:
        volumes = (pod.get("spec") or {}).get("volumes") or []
        mounts = any((v.get("persistentVolumeClaim") or {}).get("claimName") == claim for v in volumes)
        if mounts and (pod.get("status") or {}).get("phase") == "Running" and pod["spec"].get("nodeName"):
            return str(pod["spec"]["nodeName"])
    return ""


def volume_tags(
    app: str, cluster: str, namespace: str, claim: str, consistency: str, request_id: str
) -> dict[str, str]:
    return {
        c.APP_TAG: app,
        c.CLUSTER_TAG: cluster,
        c.NAMESPACE_TAG: namespace,
        c.PVC_TAG: claim,
        c.CONSISTENCY_TAG: consistency,
        c.REQUEST_TAG: request_id,
    }
