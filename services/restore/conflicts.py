"""Writing one object under the request's conflict policy, with a result for every object.

Velero's default (skip with a warning) buries real differences in noise (velero #1948, #6818), and
its ``update`` is best effort. Ferry writes each object and records exactly what happened:

- absent in the target → **created**;
- present and already equal to the snapshot's version (every field the snapshot sets has the same
  value; fields the server defaulted are ignored) → **unchanged**, whatever the policy;
- present and different → by policy: **skip** (reported with the differing fields), **update**
  (a JSON merge patch of the snapshot's version: server-set fields such as a Service's cluster IP
  survive it), **recreate** (delete, wait until gone, create), **fail** (the object fails, the
  request ends PartiallyFailed);
- any API refusal → **failed** with the API's message.

A Namespace is never deleted or failed for existing: restoring into an existing namespace is normal,
and recreating one would delete everything in it. A dry run computes the same decision and the
diff without writing. The cluster is reached through the small ``Cluster`` protocol, so this module
is tested without one and the service plugs in ``shared.kube``.
"""

from __future__ import annotations

import asyncio
import time

from shared.contracts.reports import ObjectResult, Outcome
from shared.contracts.requests import ConflictPolicy
from shared.kube.comparing import differences, without_ferry_labels
from shared.kube.objects import Manifest, Obj
from shared.runtime.clusters import AlreadyExists, ApiRefused, Cluster


def update_patch(desired: Obj) -> Obj:
    """The merge patch that brings a live object to the snapshot's version (metadata limited to
    labels and annotations: the rest of metadata is the server's)."""
    patch = {k: v for k, v in desired.items() if k not in ("metadata", "status")}
    meta = desired.get("metadata") or {}
    patch["metadata"] = {k: meta[k] for k in ("labels", "annotations") if k in meta}
    return patch


def result_of(
    item: Manifest, outcome: Outcome, reason: str = "", diff: list[str] | None = None
) -> ObjectResult:
    """The result of ``item``, named as captured and as written, with the notes gathered on the way."""
    return ObjectResult(key=item.source_key, target=item.key, outcome=outcome, reason=reason, diff=diff or [],
                        warnings=list(item.notes))  # fmt: skip


async def _wait_gone(cluster: Cluster, item: Manifest, within: float) -> bool:
    deadline = time.monotonic() + within
    delay = 0.05
    while time.monotonic() < deadline:
        if await cluster.get(item) is None:
            return True
        await asyncio.sleep(delay)
        delay = min(delay * 1.5, 1.0)
    return False


async def write(
    cluster: Cluster,
    item: Manifest,
    policy: ConflictPolicy,
    *,
    dry_run: bool = False,
    delete_timeout: float = 60.0,
) -> ObjectResult:
    """Write ``item`` (already cleaned and transformed) under ``policy``; never raises ApiRefused."""
    try:
        live = await cluster.get(item) if dry_run else None
        if not dry_run:
            try:
                await cluster.create(item)
                return result_of(item, Outcome.CREATED)
            except AlreadyExists:
                live = await cluster.get(item)
                if live is None:  # deleted in between: try once more
                    await cluster.create(item)
                    return result_of(item, Outcome.CREATED)
        if live is None:
            return result_of(item, Outcome.PLANNED, reason="would be created")
        diff = differences(without_ferry_labels(item.obj), live)
        if not diff:
            return result_of(item, Outcome.UNCHANGED, reason="already equal to the snapshot")
        if item.kind == "Namespace" and policy is not ConflictPolicy.UPDATE:
            reason = "namespace exists; its objects are restored into it"
            return result_of(item, Outcome.SKIPPED, reason=reason, diff=diff)
        if policy is ConflictPolicy.SKIP:
            reason = "already exists and differs (conflict policy skip)"
            return result_of(item, Outcome.SKIPPED, reason=reason, diff=diff)
        if policy is ConflictPolicy.FAIL:
            reason = "already exists and differs (conflict policy fail)"
            return result_of(item, Outcome.FAILED, reason=reason, diff=diff)
        if dry_run:
            reason = (
                f"would be {'updated' if policy is ConflictPolicy.UPDATE else 'deleted and created again'}"
            )
            return result_of(item, Outcome.PLANNED, reason=reason, diff=diff)
        if policy is ConflictPolicy.UPDATE or item.kind == "Namespace":
            await cluster.merge_patch(item, update_patch(item.obj))
            return result_of(item, Outcome.UPDATED, diff=diff)
        await cluster.delete(item)
        if not await _wait_gone(cluster, item, delete_timeout):
            reason = f"deleted for recreate, but still present after {delete_timeout:.0f}s (finalizers?)"
            return result_of(item, Outcome.FAILED, reason=reason, diff=diff)
        await cluster.create(item)
        return result_of(item, Outcome.RECREATED, diff=diff)
    except (ApiRefused, AlreadyExists) as e:
        return result_of(item, Outcome.FAILED, reason=str(e) or type(e).__name__)
