"""When is a restored object *up*: the checks the restore step waits on before it reports.

"Created" is not "working": a Deployment whose pods crash-loop, a PVC that never binds, a Job that
fails were all accepted by the API. The restore step waits (bounded by a timeout) until every
restored workload is available, every claim bound and every Job done, and reports each that is not
with what its status says — Velero reports success as soon as the API accepted the objects.
"""

from __future__ import annotations

from shared.kube.objects import Obj, dig

WAITED_KINDS = {
    "Deployment",
    "StatefulSet",
    "DaemonSet",
    "ReplicaSet",
    "Job",
    "PersistentVolumeClaim",
    "CustomResourceDefinition",
}


def _condition(obj: Obj, kind: str) -> Obj | None:
    for condition in dig(obj, "status", "conditions") or []:
        if condition.get("type") == kind:
            return dict(condition)
    return None


def _replicas(obj: Obj) -> int:
    replicas = dig(obj, "spec", "replicas")
    return 1 if replicas is None else int(replicas)


def ready(obj: Obj) -> tuple[bool, str]:
    """(True, "") when ``obj`` is up; else (False, what its status says)."""
    kind, status = obj.get("kind"), obj.get("status") or {}
    generation = dig(obj, "metadata", "generation")
    observed = status.get("observedGeneration")
    if kind in ("Deployment", "StatefulSet", "DaemonSet", "ReplicaSet") and (
        generation is not None and observed is not None and observed < generation
    ):
        return False, f"controller has not observed generation {generation} yet"
    if kind == "Deployment":
        want, have = _replicas(obj), int(status.get("availableReplicas") or 0)
        if have >= want:
            return True, ""
        failing = _condition(obj, "Progressing")
        extra = f"; {failing.get('message')}" if failing and failing.get("status") == "False" else ""
        return False, f"{have}/{want} replicas available{extra}"
    if kind in ("StatefulSet", "ReplicaSet"):
        want, have = _replicas(obj), int(status.get("readyReplicas") or 0)
        return (True, "") if have >= want else (False, f"{have}/{want} replicas ready")
    if kind == "DaemonSet":
        want, have = int(status.get("desiredNumberScheduled") or 0), int(status.get("numberAvailable") or 0)
        return (True, "") if have >= want else (False, f"{have}/{want} pods available")
    if kind == "Job":
        if (c := _condition(obj, "Complete")) and c.get("status") == "True":
            return True, ""
        if (c := _condition(obj, "Failed")) and c.get("status") == "True":
            return False, f"failed: {c.get('message') or c.get('reason')}"
        if dig(obj, "spec", "suspend"):
            return True, ""  # a suspended Job is done being restored; it runs when resumed
        return False, f"{status.get('succeeded') or 0} pod(s) succeeded, {status.get('active') or 0} active"
    if kind == "PersistentVolumeClaim":
        phase = status.get("phase") or "Pending"
        return (True, "") if phase == "Bound" else (False, f"claim is {phase}")
    if kind == "CustomResourceDefinition":
        if (c := _condition(obj, "Established")) and c.get("status") == "True":
            return True, ""
        return False, "not established yet"
    return True, ""
