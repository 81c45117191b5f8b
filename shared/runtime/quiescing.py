"""Quiesce an application for a consistent copy, and bring it back exactly as it was — even after a crash.

Deployments and StatefulSets are scaled to zero and CronJobs are suspended (MTC's
QuiesceApplications). The original value is written into an annotation on the object *in the same
patch* that changes it, so the cluster itself remembers what to restore:

- a later attempt (the service was killed mid-step) finds the annotation, keeps the original value
  it holds rather than reading the current zero, and restores it when it ends;
- ``unquiesce`` lists the namespaces for annotated objects instead of trusting memory, so it also
  repairs objects an earlier, crashed attempt left quiesced.

The snapshot step quiesces for a consistent copy and brings the source back at its end; a cutover
leaves it down (the application then runs in the target only), and a rollback brings it back. The
first quiesce's time is kept in ``ferry.dev/quiesced-at`` so the cutover's downtime is measured from
it, whatever attempt finished the copy. Owned workloads are left alone (their owner's controller
would undo the change).
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Any

from shared.contracts.inventory import Item
from shared.kube import Cluster, NotFound

log = logging.getLogger("ferry.quiesce")

REPLICAS = "ferry.dev/pre-quiesce-replicas"
SUSPEND = "ferry.dev/pre-quiesce-suspend"
SINCE = "ferry.dev/quiesced-at"  # unix seconds of the first quiesce
NOTES = (REPLICAS, SUSPEND, SINCE)
SCALED = ("deployments.apps", "statefulsets.apps")
SUSPENDED = ("cronjobs.batch",)


@dataclass(frozen=True)
class Quiesced:
    """What ``quiesce`` changed, and since when the application is down (the earliest attempt's time)."""

    keys: list[str]
    since: float


def _annotations(obj: dict[str, Any]) -> dict[str, str]:
    return dict((obj.get("metadata") or {}).get("annotations") or {})


def _quiesce_patch(resource: str, current: dict[str, Any], now: float) -> tuple[dict[str, Any], float]:
    notes = _annotations(current)
    spec = current.get("spec") or {}
    since = notes.get(SINCE, f"{now:.3f}")
    if resource in SCALED:
        original = notes.get(REPLICAS, str(spec.get("replicas", 1)))
        patch = {"metadata": {"annotations": {REPLICAS: original, SINCE: since}}, "spec": {"replicas": 0}}
    else:
        original = notes.get(SUSPEND, "true" if spec.get("suspend") else "false")
        patch = {"metadata": {"annotations": {SUSPEND: original, SINCE: since}}, "spec": {"suspend": True}}
    return patch, float(since)


async def quiesce(cluster: Cluster, items: list[Item]) -> Quiesced:
    """Scale workloads to zero and suspend CronJobs, and wait until no pod runs. Idempotent."""
    now = round(time.time(), 3)  # as the annotation keeps it, so every attempt reports the same time
    changed, since = [], now
    for item in items:
        if item.owned or item.resource not in SCALED + SUSPENDED:
            continue
        try:
            current = await cluster.get(item.resource, item.name, item.namespace)
        except NotFound:
            continue
        patch, first = _quiesce_patch(item.resource, current, now)
        since = min(since, first)
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
    return Quiesced(keys=changed, since=since)


def _unquiesce_patch(resource: str, notes: dict[str, str]) -> dict[str, Any] | None:
    cleared: dict[str, Any] = {"annotations": {key: None for key in NOTES if key in notes}}
    if resource in SCALED and REPLICAS in notes:
        return {"metadata": cleared, "spec": {"replicas": int(notes[REPLICAS])}}
    if resource in SUSPENDED and SUSPEND in notes:
        return {"metadata": cleared, "spec": {"suspend": notes[SUSPEND] == "true"}}
    return None


async def unquiesce(cluster: Cluster, namespaces: list[str], selector: str = "") -> list[str]:
    """Restore every annotated workload of the namespaces (those ``selector`` matches, if given) to
    its saved value; returns the keys. Idempotent: a restored workload has no annotation left."""
    restored = []
    for namespace in namespaces:
        for resource in SCALED + SUSPENDED:
            for obj in await cluster.list(resource, namespace, label_selector=selector):
                patch = _unquiesce_patch(resource, _annotations(obj))
                if patch is None:
                    continue
                name = obj["metadata"]["name"]
                await cluster.patch(resource, name, patch, namespace=namespace)
                restored.append(f"{resource}/{namespace}/{name}")
    if restored:
        log.info("un-quiesced %s", ", ".join(restored))
    return restored


def as_before_quiesce(manifest: dict[str, Any]) -> dict[str, Any]:
    """A manifest captured from a quiesced source, as it was before: saved replicas or suspension
    back in its spec, Ferry's quiesce annotations gone (a restore must not land an app at zero)."""
    meta = manifest.get("metadata") or {}
    notes = dict(meta.get("annotations") or {})
    if not any(key in notes for key in NOTES):
        return manifest
    spec = dict(manifest.get("spec") or {})
    if REPLICAS in notes:
        spec["replicas"] = int(notes[REPLICAS])
    if SUSPEND in notes:
        spec["suspend"] = notes[SUSPEND] == "true"
    kept = {k: v for k, v in notes.items() if k not in NOTES}
    meta = {**meta, "annotations": kept} if kept else {k: v for k, v in meta.items() if k != "annotations"}
    return {**manifest, "metadata": meta, "spec": spec}
