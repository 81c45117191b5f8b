"""Workload status: Deployments, StatefulSets, DaemonSets, ReplicaSets, Jobs, CronJobs, HPAs, Pods.

Deployments, ReplicaSets and StatefulSets get real ReplicaSets and Pods (``replicating.py``) and
report the status their controllers compute from them: replica counts of the pods that exist and
are ready (zero fields omitted, as Go's omitempty does), ``observedGeneration``, conditions.
StatefulSets create their volumeClaimTemplates' PVCs ``<template>-<sts>-<ordinal>`` (kept when
scaled down, as the default Retain policy does). DaemonSets get one pod on the single node (none
when their nodeSelector excludes it) and count it. Jobs not
run by the kubelet succeed at once; finished Jobs with ``ttlSecondsAfterFinished`` are deleted
(with their pods) when it runs out. Bare Pods are scheduled on ``sandbox-node`` and reported
Running and Ready once their claims are bound.
"""

from __future__ import annotations

import datetime as dt
import time
from typing import Any

from sandbox.controllers import Controller, Key
from sandbox.controllers.kubelet import KUBELET_LABEL, NODE, ensure_node, is_ferry_job
from sandbox.controllers.replicating import (
    REVISION_HASH,
    Replicator,
    claims_of,
    controller_of,
    is_ready,
    template_hash,
)
from sandbox.server.objects import DeleteOptions, now
from sandbox.server.storage import Event, clone

DEPLOY, STS, DS, RS = "deployments.apps", "statefulsets.apps", "daemonsets.apps", "replicasets.apps"
JOB, CRONJOB, HPA, PODS = "jobs.batch", "cronjobs.batch", "horizontalpodautoscalers.autoscaling", "pods"
PVC = "persistentvolumeclaims"
OWNERS = {"ReplicaSet": RS, "StatefulSet": STS, "Deployment": DEPLOY, "DaemonSet": DS}


def _compact(status: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in status.items() if v not in (0, None)}


def _conditions(old: dict[str, Any], wanted: list[tuple[str, str, str, str]]) -> list[dict[str, Any]]:
    """Conditions (type, status, reason, message), keeping transition times that did not change."""
    previous = {c.get("type"): c for c in old.get("conditions") or []}
    out = []
    stamp = now()
    for ctype, cstatus, reason, message in wanted:
        prev = previous.get(ctype)
        same = prev is not None and prev.get("status") == cstatus
        cond = {"type": ctype, "status": cstatus, "reason": reason, "message": message}
        cond["lastTransitionTime"] = prev.get("lastTransitionTime", stamp) if same and prev else stamp
        cond["lastUpdateTime"] = prev.get("lastUpdateTime", stamp) if same and prev else stamp
        out.append(cond)
    return out


def _revision(obj: dict[str, Any]) -> str:
    """The name of the ReplicaSet / ControllerRevision for the current pod template."""
    return f"{obj['metadata']['name']}-{template_hash((obj.get('spec') or {}).get('template'))}"


def _pod_counts(pods: list[dict[str, Any]]) -> tuple[int, int]:
    return len(pods), sum(1 for p in pods if is_ready(p))


def _deployment_status(
    obj: dict[str, Any], old: dict[str, Any], sets: list[dict[str, Any]], gen: Any
) -> dict[str, Any]:
    """Counts summed over the Deployment's ReplicaSets, as the deployment controller sums them."""

    def total(field: str, only: str = "") -> int:
        return sum(
            int((rs.get("status") or {}).get(field) or 0)
            for rs in sets
            if not only or rs["metadata"]["name"] == only
        )

    current = _revision(obj)
    replicas = total("replicas")
    wanted = int(((obj.get("spec") or {}).get("replicas")) or 0)
    available = ("Available", "True", "MinimumReplicasAvailable", "Deployment has minimum availability.")
    status = _compact(
        {
            "replicas": replicas,
            "updatedReplicas": total("replicas", current),
            "readyReplicas": total("readyReplicas"),
            "availableReplicas": total("availableReplicas"),
            "unavailableReplicas": max(0, replicas - total("availableReplicas")),
        }
    )
    status["observedGeneration"] = gen
    status["conditions"] = _conditions(
        old,
        [
            available
            if total("availableReplicas") >= wanted
            else (
                "Available",
                "False",
                "MinimumReplicasUnavailable",
                "Deployment does not have minimum availability.",
            ),
            (
                "Progressing",
                "True",
                "NewReplicaSetAvailable",
                f'ReplicaSet "{_revision(obj)}" has successfully progressed.',
            ),
        ],
    )
    return status


def _statefulset_status(obj: dict[str, Any], pods: list[dict[str, Any]], gen: Any) -> dict[str, Any]:
    revision = _revision(obj)
    replicas, ready = _pod_counts(pods)
    status: dict[str, Any] = {"replicas": replicas, "availableReplicas": ready}  # never omitted
    status.update(
        _compact({"readyReplicas": ready, "currentReplicas": replicas, "updatedReplicas": replicas})
    )
    status.update(observedGeneration=gen, currentRevision=revision, updateRevision=revision, collisionCount=0)
    return status


def _replicaset_status(pods: list[dict[str, Any]], gen: Any) -> dict[str, Any]:
    replicas, ready = _pod_counts(pods)
    status = {"replicas": replicas, "observedGeneration": gen}  # replicas is required: never omitted
    status.update(
        _compact({"fullyLabeledReplicas": replicas, "readyReplicas": ready, "availableReplicas": ready})
    )
    return status


class WorkloadController(Controller):
    name = "workloads"
    resources = (DEPLOY, STS, DS, RS, JOB, CRONJOB, HPA, PODS, PVC)

    def __init__(self, server: Any) -> None:
        super().__init__(server)
        self.replicator = Replicator(self.objects, self.store)

    async def seed(self) -> None:
        ensure_node(self)

    def keys_for(self, event: Event) -> list[Key]:
        """A pod's or ReplicaSet's change wakes its controller; a claim's, the pods that mount it."""
        meta = event.obj["metadata"]
        ns = meta.get("namespace", "")
        if event.resource == PVC:
            return [
                (PODS, ns, p["metadata"]["name"])
                for p in self.store.items(PODS, ns)
                if meta["name"] in claims_of(p)
            ]
        keys = [(event.resource, ns, meta["name"])] if event.type != "DELETED" else []
        owner = controller_of(event.obj)
        if owner is not None and owner.get("kind") in OWNERS and event.resource in (PODS, RS):
            keys.append((OWNERS[owner["kind"]], ns, owner.get("name", "")))
        return keys

    async def reconcile(self, resource: str, namespace: str, name: str) -> float | None:
        obj = self.store.get(resource, namespace, name)
        if obj is None or obj["metadata"].get("deletionTimestamp"):
            return None
        if resource == JOB:
            expiry = self._ttl_left(obj)
            if expiry is not None:
                if expiry > 0:
                    return expiry
                self.objects.delete(self.objects.rt(JOB), namespace, name, DeleteOptions("Background"))
                return None
        if resource == PODS:
            if KUBELET_LABEL not in (obj["metadata"].get("labels") or {}):
                self.replicator.run(obj)  # the kubelet runs its own (Ferry's Job pods)
            return None
        old = obj.get("status") or {}
        status = self._status(resource, obj, old)
        if status is not None and status != old:
            self.objects.write(
                self.objects.rt(resource), obj, {**clone(obj), "status": status}, subresource="status"
            )
        return None

    def _status(self, resource: str, obj: dict[str, Any], old: dict[str, Any]) -> dict[str, Any] | None:
        """The status this workload's controller reports once everything is ready (None: none)."""
        spec = obj.get("spec") or {}
        gen = obj["metadata"].get("generation")
        replicas = int(spec.get("replicas", 1) if spec.get("replicas") is not None else 1)
        if resource == DEPLOY:
            for rs in self.replicator.sync_deployment(obj, replicas):
                self._sync_replicaset(rs)
            sets = self.replicator.owned(RS, obj["metadata"]["namespace"], obj["metadata"]["uid"])
            return _deployment_status(obj, old, sets, gen)
        if resource == STS:
            self._claims_for(obj, replicas)
            pods = self.replicator.sync_statefulset(obj, replicas, _revision(obj))
            return _statefulset_status(obj, pods, gen)
        if resource == DS:
            return self._daemonset_status(obj, gen)
        if resource == RS:
            return _replicaset_status(self.replicator.sync_replicaset(obj, replicas), gen)
        if resource == JOB:
            return self._job_status(obj)
        if resource == HPA:
            target = spec.get("minReplicas", 1)
            return {"currentReplicas": target, "desiredReplicas": target}
        return None

    def _sync_replicaset(self, rs: dict[str, Any]) -> None:
        """Sync a Deployment's ReplicaSet now, so the Deployment's status counts its pods."""
        replicas = int((rs.get("spec") or {}).get("replicas") or 0)
        status = _replicaset_status(
            self.replicator.sync_replicaset(rs, replicas), rs["metadata"].get("generation")
        )
        current = self.store.get(RS, rs["metadata"]["namespace"], rs["metadata"]["name"]) or rs
        if status != current.get("status"):
            self.objects.write(
                self.objects.rt(RS), current, {**clone(current), "status": status}, subresource="status"
            )

    def _daemonset_status(self, ds: dict[str, Any], gen: Any) -> dict[str, Any]:
        """One node: its pod there unless the pod's nodeSelector excludes it (how quiescing works);
        the counts follow that pod, as the DaemonSet controller counts them."""
        spec = ds.get("spec") or {}
        selector = ((spec.get("template") or {}).get("spec") or {}).get("nodeSelector") or {}
        node = self.store.get("nodes", "", NODE)
        labels = ((node or {}).get("metadata") or {}).get("labels") or {}
        wanted = 1 if all(labels.get(k) == v for k, v in selector.items()) else 0
        pods = self.replicator.sync_daemonset(ds, bool(wanted))
        digest = template_hash(spec.get("template"))
        scheduled = [p for p in pods if (p.get("spec") or {}).get("nodeName")]
        ready = sum(1 for p in scheduled if is_ready(p))
        updated = sum(
            1 for p in scheduled if (p["metadata"].get("labels") or {}).get(REVISION_HASH) == digest
        )
        status = {
            "currentNumberScheduled": len(scheduled),
            "desiredNumberScheduled": wanted,
            "numberMisscheduled": 0,
            "numberReady": ready,
            "observedGeneration": gen,
        }
        status.update(
            _compact(
                {
                    "numberAvailable": ready,
                    "numberUnavailable": max(0, wanted - ready),
                    "updatedNumberScheduled": updated,
                }
            )
        )
        return status

    def _ttl_left(self, job: dict[str, Any]) -> float | None:
        """Seconds until the TTL-after-finished controller deletes a finished Job (None: never)."""
        ttl = (job.get("spec") or {}).get("ttlSecondsAfterFinished")
        finished = [
            c.get("lastTransitionTime")
            for c in (job.get("status") or {}).get("conditions") or []
            if c.get("type") in ("Complete", "Failed") and c.get("status") == "True"
        ]
        if ttl is None or not finished or not finished[0]:
            return None
        done = dt.datetime.strptime(finished[0], "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=dt.UTC).timestamp()
        return float(done + float(ttl) - time.time())

    def _job_status(self, job: dict[str, Any]) -> dict[str, Any] | None:
        if self.server.options.kubelet and is_ferry_job(self.server.options, job):
            return None  # the kubelet runs it for real
        old = job.get("status") or {}
        if any(c.get("type") in ("Complete", "Failed") for c in old.get("conditions") or []):
            return None
        spec = job.get("spec") or {}
        if spec.get("suspend"):
            conds = _conditions(old, [("Suspended", "True", "JobSuspended", "Job suspended")])
            return {**old, "conditions": conds}
        stamp = now()
        completions = int(spec.get("completions") or 1)
        return {
            "startTime": old.get("startTime", stamp),
            "completionTime": stamp,
            "succeeded": completions,
            "ready": 0,
            "terminating": 0,
            "uncountedTerminatedPods": {},
            "conditions": _conditions(
                old,
                [
                    (
                        "SuccessCriteriaMet",
                        "True",
                        "CompletionsReached",
                        "Reached expected number of succeeded pods",
                    ),
                    ("Complete", "True", "CompletionsReached", "Reached expected number of succeeded pods"),
                ],
            ),
        }

    def _claims_for(self, sts: dict[str, Any], replicas: int) -> None:
        spec, meta = sts.get("spec") or {}, sts["metadata"]
        selector = (spec.get("selector") or {}).get("matchLabels") or {}
        rt = self.objects.rt("persistentvolumeclaims")
        for template in spec.get("volumeClaimTemplates") or []:
            tmeta = template.get("metadata") or {}
            for ordinal in range(replicas):
                name = f"{tmeta.get('name')}-{meta['name']}-{ordinal}"
                if self.store.get(rt.resource, meta["namespace"], name) is not None:
                    continue
                labels = {**(tmeta.get("labels") or {}), **selector}
                body = {
                    "metadata": {
                        "name": name,
                        "labels": labels,
                        "annotations": tmeta.get("annotations") or {},
                    },
                    "spec": clone(template.get("spec") or {}),
                }
                if not body["metadata"]["annotations"]:
                    del body["metadata"]["annotations"]
                self.objects.create(rt, meta["namespace"], body)
