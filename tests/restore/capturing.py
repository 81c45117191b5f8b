"""A stand-in for the discovery and snapshot steps, for restore tests: capture a namespace of a
sandbox cluster into a repository as a Ferry snapshot (manifests blob + one record per volume).

It lists every served namespaced type in the namespace (discovery API, no hard-coded list), the
Namespace itself, the CRDs of the custom resources found and the PVs of the claims; it backs each
claim's volume directory up as ``<namespace>/<claim>`` under one group id.
"""

from __future__ import annotations

import json
import secrets
from pathlib import Path
from typing import Any

from sandbox.controllers.volumes import pv_path
from shared.kube.cluster import Cluster
from shared.repository import Repository, backup, put_blob

SKIP = {"events", "events.events.k8s.io", "bindings", "localsubjectaccessreviews.authorization.k8s.io"}


async def capture(cluster: Cluster, namespace: str) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = []
    groups: set[str] = set()
    for r in await cluster.resources.preferred():
        if not r.namespaced or "list" not in r.verbs or r.name in SKIP:
            continue
        for obj in await cluster.list(r, namespace):
            items.append({"resource": r.name, "namespaced": True, "object": obj})
            if r.custom:
                groups.add(r.name)
    items.append(
        {"resource": "namespaces", "namespaced": False, "object": await cluster.get("namespaces", namespace)}
    )
    for crd in await cluster.list("customresourcedefinitions.apiextensions.k8s.io"):
        spec = crd["spec"]
        if f"{spec['names']['plural']}.{spec['group']}" in groups:
            items.append(
                {
                    "resource": "customresourcedefinitions.apiextensions.k8s.io",
                    "namespaced": False,
                    "object": crd,
                }
            )
    for item in list(items):
        if item["object"]["kind"] == "PersistentVolumeClaim" and item["object"]["spec"].get("volumeName"):
            pv = await cluster.get("persistentvolumes", item["object"]["spec"]["volumeName"])
            items.append({"resource": "persistentvolumes", "namespaced": False, "object": pv})
    return items


async def volume_dir(cluster: Cluster, namespace: str, claim: str) -> Path:
    pvc = await cluster.get("persistentvolumeclaims", claim, namespace)
    pv = await cluster.get("persistentvolumes", pvc["spec"]["volumeName"])
    path = pv_path(pv)
    assert path is not None, f"PV of {namespace}/{claim} has no directory"
    return path


async def snapshot(cluster: Cluster, namespace: str, repo: Repository) -> tuple[str, list[dict[str, Any]]]:
    """Capture ``namespace`` into ``repo``; returns the Ferry snapshot id and the captured items."""
    group = secrets.token_hex(8)
    items = await capture(cluster, namespace)
    for item in items:
        obj = item["object"]
        if obj["kind"] == "PersistentVolumeClaim" and obj["spec"].get("volumeName"):
            path = await volume_dir(cluster, namespace, obj["metadata"]["name"])
            backup(repo, path, name=f"{namespace}/{obj['metadata']['name']}", group=group)
    put_blob(repo, json.dumps({"items": items}).encode(), name="manifests", group=group)
    return group, items
