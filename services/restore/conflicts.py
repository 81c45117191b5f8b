"""Writing one object under the request's conflict policy, with a result for every object.

Velero's default (skip with a warning) buries real differences in noise (velero #1948, #6818), and
its ``update`` is best effort. Ferry writes each object and records exactly what happened:

- absent in the target → **created**;
- present and already equal to the snapshot's version → **unchanged**, whatever the policy. Equal
  is ``shared.kube.comparing.differences``, both ways: every field the snapshot sets has the same
  value, and the target has no content of its own the snapshot lacks (a ConfigMap key, a label or
  annotation someone added, a field another writer owns per managedFields); fields the server
  defaulted or assigned are not differences;
- present and different → by policy: **skip** (reported with the differing fields), **update**
  (the target is made equal to the snapshot's version, see below), **recreate** (delete, wait until
  gone, create), **fail** (the object fails, the request ends PartiallyFailed);
- any API refusal → **failed** with the API's message.

``update`` is one JSON merge patch: the snapshot's version (metadata limited to labels and
annotations), plus ``null`` for every target-only field the two-way diff found, so those keys are
removed. It was chosen over the alternatives because it does exactly what the diff says on every
API server, the sandbox included, and for every type, custom resources included:

- server-side apply with Ferry's field manager and ``force`` removes only fields *Ferry* applied
  before; a key another writer added (``kubectl edit``) survives it, which is the bug this fixes;
- a PUT of the snapshot's version drops everything the server assigned or controllers keep (a
  Service's cluster IP and node ports, a claim's volume) and fails on immutable fields;
- a merge patch leaves every field it does not name to the server: a Service keeps its cluster IP,
  a Deployment its defaulted strategy. Lists are replaced as a whole by the snapshot's list, so
  target-only fields inside list items go with them.

A Namespace is never deleted or failed for existing: restoring into an existing namespace is normal,
and recreating one would delete everything in it. A dry run computes the same decision and the
diff without writing. The cluster is reached through the small ``Cluster`` protocol, so this module
is tested without one and the service plugs in ``shared.kube``.
"""

from __future__ import annotations

import asyncio
import copy
import time
from collections.abc import Iterable

from services.restore.transforming import REWROTE
from shared.contracts.reports import ObjectResult, Outcome
from shared.contracts.requests import ConflictPolicy
from shared.kube.comparing import Path, differences, digested, target_only, without_ferry_labels
from shared.kube.objects import Manifest, Obj
from shared.runtime.clusters import AlreadyExists, ApiRefused, Cluster
from shared.runtime.quiescing import NOTES as QUIESCE_NOTES


def stale_quiesce_notes(live: Obj) -> list[Path]:
    """The quiesce annotations an updated object still carries (a failback lands on the primary's
    quiesced workloads): the update brings the snapshot's replicas, so the notes of the old quiesce
    go, or a later cutover would measure its downtime from their stale time."""
    notes = (live.get("metadata") or {}).get("annotations") or {}
    return [("metadata", "annotations", key) for key in QUIESCE_NOTES if key in notes]


def update_patch(desired: Obj, removed: Iterable[Path] = ()) -> Obj:
    """The merge patch that makes a live object the snapshot's version: ``desired`` (metadata limited
    to labels and annotations: the rest of metadata is the server's), and ``null`` at each path of
    ``removed`` (target-only fields, from ``comparing.target_only``) so the server deletes them."""
    patch = copy.deepcopy({k: v for k, v in desired.items() if k not in ("metadata", "status")})
    meta = desired.get("metadata") or {}
    patch["metadata"] = copy.deepcopy({k: meta[k] for k in ("labels", "annotations") if k in meta})
    for path in removed:
        if not _patchable(path):
            continue
        keys = [str(part) for part in path]  # no list indexes: see _patchable
        node = patch
        for part in keys[:-1]:
            child = node.setdefault(part, {})
            if not isinstance(child, dict):
                break  # a list or value of the snapshot replaces it whole
            node = child
        else:
            node[keys[-1]] = None
    return patch


def _patchable(path: Path) -> bool:
    """A merge patch can delete a map key, never a list item; metadata is written for labels and
    annotations only; status is not written at all."""
    if not path or any(isinstance(p, int) for p in path) or path[0] in ("status", "apiVersion", "kind"):
        return False
    return path[0] != "metadata" or (len(path) >= 3 and path[1] in ("labels", "annotations"))


def result_of(
    item: Manifest, outcome: Outcome, reason: str = "", diff: list[str] | None = None
) -> ObjectResult:
    """The result of ``item``, named as captured and as written, with the notes gathered on the way."""
    return ObjectResult(
        key=item.source_key,
        target=item.key,
        outcome=outcome,
        reason=reason,
        diff=diff or [],
        warnings=[n for n in item.notes if not n.startswith(REWROTE)],
        rewrites=[n.removeprefix(REWROTE) for n in item.notes if n.startswith(REWROTE)],
    )


# How an API server says a field cannot change in place (a selector, a Pod's spec, a claim's spec,
# an immutable ConfigMap's data): the update cannot succeed, only a delete and a create can.
_IN_PLACE = ("is immutable", "may not change", "Forbidden: updates to")


def _refused_update(error: ApiRefused) -> str:
    reason = str(error) or type(error).__name__
    if any(words in reason for words in _IN_PLACE):
        reason += (
            " (the target object differs in a field that cannot change in place: conflict policy "
            "recreate deletes and creates it again, or remove it from the target first)"
        )
    return reason


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
        desired = without_ferry_labels(item.obj)
        diff = differences(digested(desired), digested(live))  # the report is on the bus: no values
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
            removed = [*target_only(desired, live), *stale_quiesce_notes(live)]
            try:
                await cluster.merge_patch(item, update_patch(item.obj, removed))
            except ApiRefused as e:
                return result_of(item, Outcome.FAILED, reason=_refused_update(e), diff=diff)
            return result_of(item, Outcome.UPDATED, diff=diff)
        await cluster.delete(item)
        if not await _wait_gone(cluster, item, delete_timeout):
            reason = f"deleted for recreate, but still present after {delete_timeout:.0f}s (finalizers?)"
            return result_of(item, Outcome.FAILED, reason=reason, diff=diff)
        await cluster.create(item)
        return result_of(item, Outcome.RECREATED, diff=diff)
    except (ApiRefused, AlreadyExists) as e:
        return result_of(item, Outcome.FAILED, reason=str(e) or type(e).__name__)
