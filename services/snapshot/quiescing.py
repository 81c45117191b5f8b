"""Quiesce an application for a consistent copy, and bring it back exactly as it was — even after a crash.

Before the volumes are copied, Deployments and StatefulSets are scaled to zero and CronJobs are
suspended (MTC's QuiesceApplications). The original value is written into an annotation on the
object *in the same patch* that changes it, so the cluster itself remembers what to restore:

- a later attempt of the same step (the service was killed mid-copy) finds the annotation, keeps
  the original value it holds rather than reading the current zero, and restores it when it ends;
- ``unquiesce`` lists the namespaces for annotated objects instead of trusting memory, so it also
  repairs objects an earlier, crashed attempt left quiesced.

Owned workloads are left alone (their owner's controller would undo the change).
"""

from __future__ import annotations

import logging
from typing import Any

from shared.contracts.inventory import Item
from shared.kube import Cluster, NotFound

log = logging.getLogger("ferry.snapshot")

REPLICAS = "ferry.dev/pre-quiesce-replicas"
SUSPEND = "ferry.dev/pre-quiesce-suspend"
SCALED = ("deployments.apps", "statefulsets.apps")
SUSPENDED = ("cronjobs.batch",)


def _annotations(obj: dict[str, Any]) -> dict[str, str]:
    return dict((obj.get("metadata") or {}).get("annotations") or {})


async def quiesce(cluster: Cluster, items: list[Item]) -> list[str]:
    """Scale workloads to zero and suspend CronJobs; returns the keys changed. Idempotent."""
    changed = []
    for item in items:
        if item.owned or item.resource not in SCALED + SUSPENDED:
            continue
        try:
            current = await cluster.get(item.resource, item.name, item.namespace)
        except NotFound:
            continue
        notes = _annotations(current)
        spec = current.get("spec") or {}
        if item.resource in SCALED:
            original = notes.get(REPLICAS, str(spec.get("replicas", 1)))
            patch = {"metadata": {"annotations": {REPLICAS: original}}, "spec": {"replicas": 0}}
        else:
            original = notes.get(SUSPEND, "true" if spec.get("suspend") else "false")
            patch = {"metadata": {"annotations": {SUSPEND: original}}, "spec": {"suspend": True}}
        await cluster.patch(item.resource, item.name, patch, namespace=item.namespace)
        changed.append(item.key)
    for item in items:
        if item.key in changed and item.resource in SCALED:
            await cluster.wait_for(
                item.resource,
                item.name,
                lambda o: o is None or not (o.get("status") or {}).get("replicas"),
                namespace=item.namespace,
                within=300,
                what=f"{item.key} to scale down to zero",
            )
    log.info("quiesced %d workloads", len(changed))
    return changed


async def unquiesce(cluster: Cluster, namespaces: list[str]) -> list[str]:
    """Restore every annotated workload of the namespaces to its saved value; returns the keys."""
    restored = []
    for namespace in namespaces:
        for resource in SCALED + SUSPENDED:
            for obj in await cluster.list(resource, namespace):
                notes = _annotations(obj)
                name = obj["metadata"]["name"]
                if resource in SCALED and REPLICAS in notes:
                    patch: dict[str, Any] = {
                        "metadata": {"annotations": {REPLICAS: None}},
                        "spec": {"replicas": int(notes[REPLICAS])},
                    }
                elif resource in SUSPENDED and SUSPEND in notes:
                    patch = {
                        "metadata": {"annotations": {SUSPEND: None}},
                        "spec": {"suspend": notes[SUSPEND] == "true"},
                    }
                else:
                    continue
                await cluster.patch(resource, name, patch, namespace=namespace)
                restored.append(f"{resource}/{namespace}/{name}")
    if restored:
        log.info("un-quiesced %s", ", ".join(restored))
    return restored
