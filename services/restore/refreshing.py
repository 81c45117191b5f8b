"""Quiet workloads while their claim is refreshed, and bring them back, even across a crash.

A delta restore rewrites files under a running application: a database reading its files while they
change underneath it would crash or corrupt them. So before a claim that already exists in the
target is refreshed, every Deployment and StatefulSet of its namespace that mounts it (a pod
template's ``persistentVolumeClaim`` or a StatefulSet's claim template) is scaled to zero, its
replicas saved first in the annotation ``ferry.dev/replicas-before-refresh``, and the refresh waits
until its pods are gone (``status.replicas`` 0). The workload is scaled back when the restore
reaches it (before it is compared with the snapshot) or, for workloads the snapshot does not hold
and after any failure, when the restore ends.

Crash-safe: the annotation is written in the same patch as the scale-down and is never overwritten,
so an attempt that finds a workload already at zero with the annotation takes the replicas from it,
and a redelivered step brings the workload back to what it was before the first attempt.
"""

from __future__ import annotations

import asyncio
import re
import time

from shared.kube.objects import Manifest, Obj, dig, pod_specs
from shared.runtime.clusters import ApiRefused, Cluster

ANNOTATION = "ferry.dev/replicas-before-refresh"
SCALED_KINDS = (("apps/v1", "Deployment"), ("apps/v1", "StatefulSet"))


def mounts(workload: Obj, claim: str) -> bool:
    """Whether ``workload``'s pods mount ``claim`` (directly, or as a StatefulSet claim template)."""
    for spec in pod_specs(workload):
        for volume in spec.get("volumes") or []:
            if dig(volume, "persistentVolumeClaim", "claimName") == claim:
                return True
    if workload.get("kind") == "StatefulSet":
        name = dig(workload, "metadata", "name") or ""
        for template in dig(workload, "spec", "volumeClaimTemplates") or []:
            prefix = f"{dig(template, 'metadata', 'name')}-{name}-"
            if claim.startswith(prefix) and re.fullmatch(r"\d+", claim[len(prefix) :]):
                return True
    return False


class Refresher:
    """The workloads one restore scaled down, by key, until they are scaled back."""

    def __init__(self, cluster: Cluster, *, timeout: float) -> None:
        self.cluster, self.timeout = cluster, timeout
        self.scaled: dict[str, Manifest] = {}
        self._lock = asyncio.Lock()

    async def scale_down(self, namespace: str, claim: str) -> str:
        """Scale every workload mounting ``claim`` to zero and wait for it; "" or why it could not."""
        found: list[Manifest] = []
        for api_version, kind in SCALED_KINDS:
            async for obj in self.cluster.iterate(api_version, kind, namespace):
                if mounts(obj, claim):
                    found.append(Manifest(obj))
        for workload in found:
            async with self._lock:
                self.scaled.setdefault(workload.key, workload)
            annotations = workload.metadata.get("annotations") or {}
            if ANNOTATION not in annotations:
                replicas = dig(workload.obj, "spec", "replicas")
                before = str(1 if replicas is None else replicas)
                patch = {"metadata": {"annotations": {ANNOTATION: before}}, "spec": {"replicas": 0}}
                try:
                    await self.cluster.merge_patch(workload, patch)
                except ApiRefused as e:
                    return f"cannot scale {workload.key} to zero for the refresh: {e}"
        deadline = time.monotonic() + self.timeout
        for workload in found:
            delay = 0.05
            while True:
                live = await self.cluster.get(workload)
                if live is None or not dig(live, "status", "replicas"):
                    break
                if time.monotonic() > deadline:
                    return f"{workload.key} still has pods {self.timeout:.0f}s after it was scaled to zero"
                await asyncio.sleep(delay)
                delay = min(delay * 1.5, 1.0)
        return ""

    async def scale_back(self, key: str) -> None:
        """Give a workload scaled down by this restore (or a crashed attempt) its replicas back."""
        async with self._lock:
            workload = self.scaled.pop(key, None)
        if workload is None:
            return
        live = await self.cluster.get(workload)
        before = ((live or {}).get("metadata", {}).get("annotations") or {}).get(ANNOTATION)
        if live is None or before is None:
            return
        try:
            replicas = int(before)
        except ValueError:
            replicas = 1
        patch = {"metadata": {"annotations": {ANNOTATION: None}}, "spec": {"replicas": replicas}}
        await self.cluster.merge_patch(workload, patch)

    async def scale_back_all(self) -> None:
        for key in list(self.scaled):
            await self.scale_back(key)
