"""Workload status: Deployments, StatefulSets, DaemonSets, ReplicaSets, Jobs, CronJobs, HPAs, Pods.

No pods are created for workloads (the sandbox has no containers to run); instead each workload
gets the status its controller would report once everything is ready: replica counts equal to
``spec.replicas`` (zero fields omitted, as Go's omitempty does), ``observedGeneration``, conditions.
StatefulSets create their volumeClaimTemplates' PVCs ``<template>-<sts>-<ordinal>`` (kept when
scaled down, as the default Retain policy does). Jobs not run by the kubelet succeed at once;
finished Jobs with ``ttlSecondsAfterFinished`` are deleted (with their pods) when it runs out. Bare
Pods are scheduled on ``sandbox-node`` and reported Running and Ready.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import time
from typing import Any

from sandbox.controllers import Controller
from sandbox.controllers.kubelet import KUBELET_LABEL, NODE, ensure_node, is_ferry_job
from sandbox.server.objects import DeleteOptions, now
from sandbox.server.storage import clone

DEPLOY, STS, DS, RS = "deployments.apps", "statefulsets.apps", "daemonsets.apps", "replicasets.apps"
JOB, CRONJOB, HPA, PODS = "jobs.batch", "cronjobs.batch", "horizontalpodautoscalers.autoscaling", "pods"


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
    template = (obj.get("spec") or {}).get("template")
    return f"{obj['metadata']['name']}-{hashlib.sha256(repr(template).encode()).hexdigest()[:10]}"


def _deployment_status(obj: dict[str, Any], old: dict[str, Any], replicas: int, gen: Any) -> dict[str, Any]:
    status = _compact(
        {
            "replicas": replicas,
            "updatedReplicas": replicas,
            "readyReplicas": replicas,
            "availableReplicas": replicas,
        }
    )
    status["observedGeneration"] = gen
    status["conditions"] = _conditions(
        old,
        [
            ("Available", "True", "MinimumReplicasAvailable", "Deployment has minimum availability."),
            (
                "Progressing",
                "True",
                "NewReplicaSetAvailable",
                f'ReplicaSet "{_revision(obj)}" has successfully progressed.',
            ),
        ],
    )
    return status


def _statefulset_status(obj: dict[str, Any], replicas: int, gen: Any) -> dict[str, Any]:
    revision = _revision(obj)
    status: dict[str, Any] = {"replicas": replicas, "availableReplicas": replicas}  # never omitted
    status.update(
        _compact({"readyReplicas": replicas, "currentReplicas": replicas, "updatedReplicas": replicas})
    )
    status.update(observedGeneration=gen, currentRevision=revision, updateRevision=revision, collisionCount=0)
    return status


class WorkloadController(Controller):
    name = "workloads"
    resources = (DEPLOY, STS, DS, RS, JOB, CRONJOB, HPA, PODS)

    async def seed(self) -> None:
        ensure_node(self)

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
            self._run_pod(obj)
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
            return _deployment_status(obj, old, replicas, gen)
        if resource == STS:
            self._claims_for(obj, replicas)
            return _statefulset_status(obj, replicas, gen)
        if resource == DS:
            return self._daemonset_status(spec, gen)
        if resource == RS:
            status = {"replicas": replicas, "observedGeneration": gen}
            status.update(
                _compact(
                    {
                        "fullyLabeledReplicas": replicas,
                        "readyReplicas": replicas,
                        "availableReplicas": replicas,
                    }
                )
            )
            return status
        if resource == JOB:
            return self._job_status(obj)
        if resource == HPA:
            target = spec.get("minReplicas", 1)
            return {"currentReplicas": target, "desiredReplicas": target}
        return None

    def _daemonset_status(self, spec: dict[str, Any], gen: Any) -> dict[str, Any]:
        """One node: scheduled there unless the pod's nodeSelector excludes it (how quiescing works)."""
        selector = ((spec.get("template") or {}).get("spec") or {}).get("nodeSelector") or {}
        node = self.store.get("nodes", "", NODE)
        labels = ((node or {}).get("metadata") or {}).get("labels") or {}
        n = 1 if all(labels.get(k) == v for k, v in selector.items()) else 0
        status = {
            "currentNumberScheduled": n,
            "desiredNumberScheduled": n,
            "numberMisscheduled": 0,
            "numberReady": n,
            "observedGeneration": gen,
        }
        status.update(_compact({"numberAvailable": n, "updatedNumberScheduled": n}))
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

    def _run_pod(self, pod: dict[str, Any]) -> None:
        """A bare pod (not one the kubelet runs) is scheduled and reported Running and Ready."""
        if KUBELET_LABEL in (pod["metadata"].get("labels") or {}):
            return
        if (pod.get("status") or {}).get("phase") not in (None, "Pending"):
            return
        rt = self.objects.rt(PODS)
        if not pod["spec"].get("nodeName"):
            new = clone(pod)
            new["metadata"].pop("resourceVersion", None)
            new["spec"]["nodeName"] = NODE
            self.objects.write(rt, pod, new)
            pod = self.store.get(PODS, pod["metadata"]["namespace"], pod["metadata"]["name"]) or new
        stamp = now()
        containers = pod["spec"].get("containers") or []
        status = {
            "phase": "Running",
            "conditions": [
                {"type": t, "status": "True", "lastProbeTime": None, "lastTransitionTime": stamp}
                for t in (
                    "PodReadyToStartContainers",
                    "Initialized",
                    "Ready",
                    "ContainersReady",
                    "PodScheduled",
                )
            ],
            "hostIP": "10.0.0.1",
            "podIP": "10.244.0.10",
            "startTime": stamp,
            "qosClass": "BestEffort",
            "containerStatuses": [
                {
                    "name": c["name"],
                    "image": c.get("image", ""),
                    "imageID": "",
                    "ready": True,
                    "started": True,
                    "restartCount": 0,
                    "state": {"running": {"startedAt": stamp}},
                }
                for c in containers
            ],
        }
        self.objects.write(rt, pod, {**clone(pod), "status": status}, subresource="status")
