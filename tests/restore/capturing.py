"""A stand-in for the snapshot step, for restore tests: the real discovery code builds the inventory
of a namespace of a sandbox cluster, and this module stores it in a repository as a Ferry snapshot —
the inventory as the manifests blob, and each claim's volume directory backed up as
``<namespace>/<claim>`` — under one group id. When ``services.snapshot`` exists, the end-to-end test
uses it instead (test_migration.py).
"""

from __future__ import annotations

import secrets
from datetime import UTC, datetime
from pathlib import Path

from sandbox.controllers.volumes import pv_path
from services.discovery.collecting import collect
from services.discovery.depending import link
from services.snapshot.snapshotting import with_values
from shared.contracts.inventory import Inventory, encode_inventory
from shared.contracts.requests import MobilityRequest, RequestKind, Source, Target
from shared.kube.cluster import Cluster
from shared.repository import Repository, backup, put_blob


async def inventory(cluster: Cluster, namespace: str) -> Inventory:
    request = MobilityRequest(kind=RequestKind.MIGRATE, source=Source(cluster=cluster.name, namespaces=[namespace]),
                              target=Target(cluster="west"))  # fmt: skip
    collected = await collect(cluster, request)
    linked = await link(cluster, collected)
    # Discovery keeps digests of Secret values; the snapshot step reads the values again, as here.
    items, _gone = await with_values(cluster, collected.items + linked.dependencies)
    return Inventory(request_id="capture", cluster=cluster.name, namespaces=collected.namespaces,
                     captured_at=datetime.now(UTC).isoformat(timespec="seconds"),
                     items=items, references=linked.references,
                     volumes=linked.volumes, skipped=collected.skipped)  # fmt: skip


async def volume_dir(cluster: Cluster, namespace: str, claim: str) -> Path:
    pvc = await cluster.get("persistentvolumeclaims", claim, namespace)
    pv = await cluster.get("persistentvolumes", pvc["spec"]["volumeName"])
    path = pv_path(pv)
    assert path is not None, f"PV of {namespace}/{claim} has no directory"
    return path


async def snapshot(cluster: Cluster, namespace: str, repo: Repository) -> tuple[str, Inventory]:
    """Capture ``namespace`` into ``repo``; returns the Ferry snapshot id and the inventory."""
    group = secrets.token_hex(8)
    found = await inventory(cluster, namespace)
    for volume in found.volumes:
        path = await volume_dir(cluster, volume.namespace, volume.claim)
        backup(repo, path, name=f"{volume.namespace}/{volume.claim}", group=group)
    put_blob(repo, encode_inventory(found), name="manifests", group=group)
    return group, found
