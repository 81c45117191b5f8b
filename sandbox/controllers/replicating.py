"""Pods for workloads: what the Deployment, ReplicaSet and StatefulSet controllers and a kubelet do.

- a Deployment owns one ReplicaSet per pod template, ``<deployment>-<pod-template-hash>``, labelled
  and selected with ``pod-template-hash``; the current one gets ``spec.replicas``, older ones are
  scaled to zero (and kept, as ``revisionHistoryLimit`` keeps them);
- a ReplicaSet owns ``<replicaset>-xxxxx`` Pods, a DaemonSet one ``<daemonset>-xxxxx`` Pod on the
  node (``controller-revision-hash``, ``pod-template-generation``, node affinity and the daemon
  tolerations), none when its nodeSelector excludes the node; a StatefulSet owns ``<statefulset>-<ordinal>`` Pods
  mounting ``<template>-<statefulset>-<ordinal>`` claims, created in order (``OrderedReady``: the
  next only once the previous is Ready) and removed from the highest ordinal down;
- every Pod is controller-owned (``ownerReferences`` with ``controller: true``), so the garbage
  collector removes them with their owner, and it is "run" as a kubelet would report it: scheduled
  on ``sandbox-node``, then Running and Ready with an IP once every claim it mounts is Bound
  (Pending with ``ContainerCreating`` until then). Containers of ordinary images are never run;
  ``pods/exec`` runs commands in them as local processes (``kubelet.py``).

Everything happens inside one reconcile, so a workload's status is computed from the pods that
exist right after the sync, and stays consistent with them.
"""

from __future__ import annotations

import hashlib
import itertools
from typing import Any

from sandbox.server.objects import Objects, now, random_suffix
from sandbox.server.qos import pod_qos
from sandbox.server.storage import ObjectStore, clone

PODS, PVC, RS = "pods", "persistentvolumeclaims", "replicasets.apps"
NODE = "sandbox-node"
HASH_LABEL = "pod-template-hash"
REVISION = "deployment.kubernetes.io/revision"
REVISION_HASH = "controller-revision-hash"
DAEMON_TOLERATIONS = (
    ("node.kubernetes.io/not-ready", "NoExecute"),
    ("node.kubernetes.io/unreachable", "NoExecute"),
    ("node.kubernetes.io/disk-pressure", "NoSchedule"),
    ("node.kubernetes.io/memory-pressure", "NoSchedule"),
    ("node.kubernetes.io/pid-pressure", "NoSchedule"),
    ("node.kubernetes.io/unschedulable", "NoSchedule"),
    ("node.kubernetes.io/network-unavailable", "NoSchedule"),
)
_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"  # the real SafeEncodeString alphabet
_CONDITIONS = ("PodReadyToStartContainers", "Initialized", "Ready", "ContainersReady", "PodScheduled")


def template_hash(template: Any) -> str:
    """A stable short hash of a pod template, spelled as the real ``pod-template-hash`` is."""
    digest = int.from_bytes(hashlib.sha256(repr(template).encode()).digest()[:8], "big")
    out = []
    for _ in range(10):
        digest, rest = divmod(digest, len(_ALPHABET))
        out.append(_ALPHABET[rest])
    return "".join(out)


def controller_of(obj: dict[str, Any]) -> dict[str, Any] | None:
    """The ownerReference with ``controller: true``, if any."""
    return next((r for r in obj["metadata"].get("ownerReferences") or [] if r.get("controller")), None)


def owner_ref(owner: dict[str, Any], api_version: str, kind: str) -> dict[str, Any]:
    meta = owner["metadata"]
    return {
        "apiVersion": api_version,
        "kind": kind,
        "name": meta["name"],
        "uid": meta["uid"],
        "controller": True,
        "blockOwnerDeletion": True,
    }


def is_ready(pod: dict[str, Any]) -> bool:
    status = pod.get("status") or {}
    return status.get("phase") == "Running" and any(
        c.get("type") == "Ready" and c.get("status") == "True" for c in status.get("conditions") or []
    )


def claims_of(pod: dict[str, Any]) -> list[str]:
    vols = (pod.get("spec") or {}).get("volumes") or []
    return [v["persistentVolumeClaim"]["claimName"] for v in vols if v.get("persistentVolumeClaim")]


def init_container_statuses(spec: dict[str, Any], finished: str | None) -> dict[str, Any]:
    """``initContainerStatuses`` as the kubelet reports them: each waiting (``PodInitializing``)
    before the pod starts (``finished`` None), then terminated ``Completed`` with exit code 0 (ready,
    not started, as the prober manager marks a successful init container) — a sidecar
    (``restartPolicy: Always``) running instead. Empty when the pod has no init containers."""
    statuses = []
    for c in spec.get("initContainers") or []:
        sidecar = c.get("restartPolicy") == "Always"
        state: dict[str, Any]
        if finished is None:
            state = {"waiting": {"reason": "PodInitializing"}}
        elif sidecar:
            state = {"running": {"startedAt": finished}}
        else:
            state = {
                "terminated": {
                    "exitCode": 0,
                    "reason": "Completed",
                    "startedAt": finished,
                    "finishedAt": finished,
                }
            }
        statuses.append(
            {
                "name": c["name"],
                "image": c.get("image", ""),
                "imageID": "",
                "ready": finished is not None,
                "started": finished is not None and sidecar,
                "restartCount": 0,
                "state": state,
            }
        )
    return {"initContainerStatuses": statuses} if statuses else {}


def _daemon_pod_spec(spec: dict[str, Any]) -> None:
    """What the DaemonSet controller adds to its pods: required node affinity for its node
    (``ReplaceDaemonSetPodNodeNameNodeAffinity``) and the daemon tolerations
    (``AddOrUpdateDaemonPodTolerations``)."""
    affinity = spec.setdefault("affinity", {})
    node_affinity = affinity.setdefault("nodeAffinity", {})
    node_affinity["requiredDuringSchedulingIgnoredDuringExecution"] = {
        "nodeSelectorTerms": [{"matchFields": [{"key": "metadata.name", "operator": "In", "values": [NODE]}]}]
    }
    tolerations = spec.setdefault("tolerations", [])
    for key, effect in DAEMON_TOLERATIONS:
        if spec.get("hostNetwork") is not True and key == "node.kubernetes.io/network-unavailable":
            continue
        if not any(t.get("key") == key and t.get("effect") == effect for t in tolerations):
            tolerations.append({"key": key, "operator": "Exists", "effect": effect})


class Replicator:
    """Creates, deletes and "runs" the pods of workloads through the server's ``Objects``."""

    def __init__(self, objects: Objects, store: ObjectStore) -> None:
        self.objects = objects
        self.store = store
        self._ips = itertools.count(10)

    def owned(self, resource: str, namespace: str, owner_uid: str) -> list[dict[str, Any]]:
        """Objects of ``resource`` whose controller is ``owner_uid`` (not being deleted)."""
        return [
            o
            for o in self.store.items(resource, namespace)
            if (controller_of(o) or {}).get("uid") == owner_uid and not o["metadata"].get("deletionTimestamp")
        ]

    # -- Deployments ---------------------------------------------------------------------------
    def sync_deployment(self, deploy: dict[str, Any], replicas: int) -> list[dict[str, Any]]:
        """Ensure the current ReplicaSet (others scaled to zero); return the owned ReplicaSets."""
        meta, spec = deploy["metadata"], deploy.get("spec") or {}
        ns = meta["namespace"]
        template = clone(spec.get("template") or {})
        digest = template_hash(template)
        name = f"{meta['name']}-{digest}"
        owned = self.owned(RS, ns, meta["uid"])
        rt = self.objects.rt(RS)
        if not any(r["metadata"]["name"] == name for r in owned):
            revision = 1 + max(
                (int((r["metadata"].get("annotations") or {}).get(REVISION, 0)) for r in owned), default=0
            )
            tmeta = template.setdefault("metadata", {})
            tmeta["labels"] = {**(tmeta.get("labels") or {}), HASH_LABEL: digest}
            selector = clone(spec.get("selector") or {})
            selector["matchLabels"] = {**(selector.get("matchLabels") or {}), HASH_LABEL: digest}
            body = {
                "metadata": {
                    "name": name,
                    "labels": tmeta["labels"],
                    "annotations": {
                        REVISION: str(revision),
                        "deployment.kubernetes.io/desired-replicas": str(replicas),
                        "deployment.kubernetes.io/max-replicas": str(replicas + 1),
                    },
                    "ownerReferences": [owner_ref(deploy, "apps/v1", "Deployment")],
                },
                "spec": {"replicas": replicas, "selector": selector, "template": template},
            }
            self.objects.create(rt, ns, body)
        for rs in self.owned(RS, ns, meta["uid"]):
            wanted = replicas if rs["metadata"]["name"] == name else 0
            if (rs.get("spec") or {}).get("replicas") != wanted:
                new = clone(rs)
                new["metadata"].pop("resourceVersion", None)
                new["spec"]["replicas"] = wanted
                self.objects.write(rt, rs, new)
        return self.owned(RS, ns, meta["uid"])

    # -- ReplicaSets ---------------------------------------------------------------------------
    def sync_replicaset(self, rs: dict[str, Any], replicas: int) -> list[dict[str, Any]]:
        """Create or delete pods until ``replicas`` exist; run them; return them."""
        meta, spec = rs["metadata"], rs.get("spec") or {}
        ns = meta["namespace"]
        pods = self.owned(PODS, ns, meta["uid"])
        template = spec.get("template") or {}
        for _ in range(replicas - len(pods)):
            body = self._pod_body(template, f"{meta['name']}-{random_suffix()}")
            body["metadata"]["ownerReferences"] = [owner_ref(rs, "apps/v1", "ReplicaSet")]
            self.objects.create(self.objects.rt(PODS), ns, body)
        surplus = sorted(pods, key=lambda p: (is_ready(p), p["metadata"]["creationTimestamp"]))
        for pod in surplus[: max(0, len(pods) - replicas)]:
            self.objects.delete(self.objects.rt(PODS), ns, pod["metadata"]["name"])
        for pod in self.owned(PODS, ns, meta["uid"]):
            self.run(pod)
        return self.owned(PODS, ns, meta["uid"])

    # -- StatefulSets --------------------------------------------------------------------------
    def sync_statefulset(self, sts: dict[str, Any], replicas: int, revision: str) -> list[dict[str, Any]]:
        """Ordered pods ``<sts>-<i>`` with their claims; scale-down removes the highest first."""
        meta, spec = sts["metadata"], sts.get("spec") or {}
        ns, name = meta["namespace"], meta["name"]
        ordered = spec.get("podManagementPolicy", "OrderedReady") == "OrderedReady"
        pods = {p["metadata"]["name"]: p for p in self.owned(PODS, ns, meta["uid"])}
        for pod_name in sorted(pods, key=lambda n: -int(n.rsplit("-", 1)[1])):
            if int(pod_name.rsplit("-", 1)[1]) >= replicas:
                self.objects.delete(self.objects.rt(PODS), ns, pod_name)
        for ordinal in range(replicas):
            pod_name = f"{name}-{ordinal}"
            pod = self.store.get(PODS, ns, pod_name)
            if pod is None:
                body = self._statefulset_pod(sts, ordinal, revision)
                self.objects.create(self.objects.rt(PODS), ns, body)
                pod = self.store.get(PODS, ns, pod_name)
            if pod is not None:
                pod = self.run(pod)
            if ordered and (pod is None or not is_ready(pod)):
                break
        return self.owned(PODS, ns, meta["uid"])

    def _statefulset_pod(self, sts: dict[str, Any], ordinal: int, revision: str) -> dict[str, Any]:
        meta, spec = sts["metadata"], sts.get("spec") or {}
        name = f"{meta['name']}-{ordinal}"
        body = self._pod_body(spec.get("template") or {}, name)
        body["metadata"]["labels"].update(
            {
                "apps.kubernetes.io/pod-index": str(ordinal),
                "controller-revision-hash": revision,
                "statefulset.kubernetes.io/pod-name": name,
            }
        )
        body["metadata"]["ownerReferences"] = [owner_ref(sts, "apps/v1", "StatefulSet")]
        pod_spec = body["spec"]
        pod_spec["hostname"] = name
        if spec.get("serviceName"):
            pod_spec["subdomain"] = spec["serviceName"]
        claims = {}
        for template in spec.get("volumeClaimTemplates") or []:
            tname = (template.get("metadata") or {}).get("name")
            claims[tname] = {"name": tname, "persistentVolumeClaim": {"claimName": f"{tname}-{name}"}}
        volumes = [v for v in pod_spec.get("volumes") or [] if v.get("name") not in claims]
        pod_spec["volumes"] = list(claims.values()) + volumes  # claims first, as updateStorage puts them
        if not pod_spec["volumes"]:
            del pod_spec["volumes"]
        return body

    # -- DaemonSets ----------------------------------------------------------------------------
    def sync_daemonset(self, ds: dict[str, Any], schedulable: bool) -> list[dict[str, Any]]:
        """One pod ``<ds>-xxxxx`` on the node when ``schedulable``, none otherwise; a pod of an
        older template is replaced (all at once: no rolling pace). Returns the pods."""
        meta, spec = ds["metadata"], ds.get("spec") or {}
        ns = meta["namespace"]
        template = spec.get("template") or {}
        digest = template_hash(template)
        rt = self.objects.rt(PODS)
        pods = self.owned(PODS, ns, meta["uid"])
        for pod in pods:
            if not schedulable or (pod["metadata"].get("labels") or {}).get(REVISION_HASH) != digest:
                self.objects.delete(rt, ns, pod["metadata"]["name"])
        if schedulable and not self.owned(PODS, ns, meta["uid"]):
            body = self._pod_body(template, f"{meta['name']}-{random_suffix()}")
            del body["spec"]["nodeName"]  # the scheduler binds it, led by the node affinity below
            body["metadata"]["labels"].update(
                {REVISION_HASH: digest, "pod-template-generation": str(meta.get("generation", 1))}
            )
            body["metadata"]["ownerReferences"] = [owner_ref(ds, "apps/v1", "DaemonSet")]
            _daemon_pod_spec(body["spec"])
            self.objects.create(rt, ns, body)
        for pod in self.owned(PODS, ns, meta["uid"]):
            self.run(pod)
        return self.owned(PODS, ns, meta["uid"])

    @staticmethod
    def _pod_body(template: dict[str, Any], name: str) -> dict[str, Any]:
        tmeta = template.get("metadata") or {}
        body: dict[str, Any] = {
            "metadata": {"name": name, "labels": dict(tmeta.get("labels") or {})},
            "spec": {**clone(template.get("spec") or {}), "nodeName": NODE},
        }
        if tmeta.get("annotations"):
            body["metadata"]["annotations"] = dict(tmeta["annotations"])
        return body

    # -- the kubelet's view --------------------------------------------------------------------
    def run(self, pod: dict[str, Any]) -> dict[str, Any]:
        """Schedule the pod and report it as a kubelet would: Running and Ready once its claims bind."""
        meta = pod["metadata"]
        ns = meta["namespace"]
        rt = self.objects.rt(PODS)
        phase = (pod.get("status") or {}).get("phase")
        if phase not in (None, "Pending") or meta.get("deletionTimestamp"):
            return pod
        if not pod["spec"].get("nodeName"):
            new = clone(pod)
            new["metadata"].pop("resourceVersion", None)
            new["spec"]["nodeName"] = NODE
            self.objects.write(rt, pod, new, subresource="binding")  # the scheduler binds, never updates
            pod = self.store.get(PODS, ns, meta["name"]) or new
        unbound = [c for c in claims_of(pod) if not self._bound(ns, c)]
        status = self._waiting_status(pod, unbound) if unbound else self._running_status(pod)
        if status != pod.get("status"):
            self.objects.write(rt, pod, {**clone(pod), "status": status}, subresource="status")
        return self.store.get(PODS, ns, meta["name"]) or pod

    def _bound(self, namespace: str, claim: str) -> bool:
        pvc = self.store.get(PVC, namespace, claim)
        return pvc is not None and (pvc.get("status") or {}).get("phase") == "Bound"

    def _waiting_status(self, pod: dict[str, Any], unbound: list[str]) -> dict[str, Any]:
        old = pod.get("status") or {}
        stamp = old.get("startTime") or now()
        # the kubelet's default waiting reason: PodInitializing while there are init containers
        waiting = "PodInitializing" if pod["spec"].get("initContainers") else "ContainerCreating"
        return {
            "phase": "Pending",
            "conditions": [
                {"type": "PodScheduled", "status": "True", "lastProbeTime": None, "lastTransitionTime": stamp}
            ],
            "hostIP": "10.0.0.1",
            "startTime": stamp,
            "qosClass": pod_qos(pod["spec"]),
            **init_container_statuses(pod["spec"], None),
            "containerStatuses": [
                {
                    "name": c["name"],
                    "image": c.get("image", ""),
                    "imageID": "",
                    "ready": False,
                    "started": False,
                    "restartCount": 0,
                    "state": {"waiting": {"reason": waiting}},
                }
                for c in pod["spec"].get("containers") or []
            ],
        }

    def _running_status(self, pod: dict[str, Any]) -> dict[str, Any]:
        stamp = now()
        n = next(self._ips)
        ip = f"10.244.{n // 250 % 250}.{n % 250 + 2}"
        return {
            "phase": "Running",
            "conditions": [
                {"type": t, "status": "True", "lastProbeTime": None, "lastTransitionTime": stamp}
                for t in _CONDITIONS
            ],
            "hostIP": "10.0.0.1",
            "hostIPs": [{"ip": "10.0.0.1"}],
            "podIP": ip,
            "podIPs": [{"ip": ip}],
            "startTime": (pod.get("status") or {}).get("startTime") or stamp,
            "qosClass": pod_qos(pod["spec"]),
            **init_container_statuses(pod["spec"], stamp),
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
                for c in pod["spec"].get("containers") or []
            ],
        }
