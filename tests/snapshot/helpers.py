"""What snapshot tests look at: file trees by content hash, temporary objects left, replicas."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Any

from shared.contracts.requests import MobilityRequest, RequestKind, Source, Target, VolumePolicy
from shared.kube import Cluster

TEMPORARY = (
    "jobs.batch",
    "persistentvolumeclaims",
    "volumesnapshots.snapshot.storage.k8s.io",
    "secrets",
    "pods",
)


def tree(root: Path) -> dict[str, str]:
    """relative path -> content hash (files), 'dir', or '-> target' (symlinks)."""
    found: dict[str, str] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            path = Path(dirpath) / name
            rel = str(path.relative_to(root))
            if path.is_symlink():
                found[rel] = f"-> {os.readlink(path)}"
            elif path.is_dir():
                found[rel] = "dir"
            else:
                found[rel] = hashlib.sha256(path.read_bytes()).hexdigest()
    return found


def snapshot_request(
    quiesce: bool = False, method: str = "auto", parallel: int = 2, **labels: str
) -> MobilityRequest:
    return MobilityRequest(
        kind=RequestKind.REPLICATE,
        source=Source(cluster="east", namespaces=["shop"]),
        itinerary=["discover", "snapshot"],
        quiesce=quiesce,
        volumes=VolumePolicy(method=method, parallel=parallel),  # type: ignore[arg-type]
        labels=labels,
    )


async def leftovers(east: Cluster, namespace: str = "shop") -> list[str]:
    """Objects Ferry's snapshot step made and did not remove (by its labels, and by name)."""
    found = []
    for resource in TEMPORARY:
        for obj in await east.list(resource, namespace):
            meta = obj["metadata"]
            if (meta.get("labels") or {}).get("ferry.dev/step") == "snapshot" or meta["name"].startswith(
                "ferry-"
            ):
                found.append(f"{resource}/{meta['name']}")
    return found


async def workload_state(east: Cluster) -> dict[str, Any]:
    web = await east.get("deployments.apps", "web", "shop")
    db = await east.get("statefulsets.apps", "db", "shop")
    cron = await east.get("cronjobs.batch", "nightly-report", "shop")

    def notes(obj: dict[str, Any]) -> dict[str, str]:
        found = (obj["metadata"].get("annotations") or {}).items()
        return {k: v for k, v in found if k.startswith("ferry.dev/")}

    return {
        "web": web["spec"]["replicas"],
        "db": db["spec"]["replicas"],
        "suspend": bool(cron["spec"].get("suspend")),
        "annotations": {
            name: notes(obj) for name, obj in (("web", web), ("db", db), ("cron", cron)) if notes(obj)
        },
    }


def migrate_step_request(*, cutover: bool = False, stage: bool = False, parallel: int = 2) -> MobilityRequest:
    """A migrate (a cutover or a stage) that stops after the snapshot step: what that step does to the
    source is the test's subject, not the restore."""
    return MobilityRequest(
        kind=RequestKind.MIGRATE,
        source=Source(cluster="east", namespaces=["shop"]),
        target=Target(cluster="west"),
        itinerary=["discover", "snapshot"],
        cutover=cutover,
        stage=stage,
        volumes=VolumePolicy(parallel=parallel),
    )
