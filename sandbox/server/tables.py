"""Server-side printing: ``Table`` answers for kubectl's ``get`` (``Accept: ...;as=Table;...``).

kubectl asks for ``meta.k8s.io/v1`` Tables and prints their columns; without them it falls back to
``NAME AGE``. The columns follow the real printers for the kinds people look at (pods, workloads,
services, claims, volumes, namespaces, config) and a CRD's ``additionalPrinterColumns``. Rows carry
the object's metadata as ``PartialObjectMetadata`` (or the whole object with
``includeObject=Object``), which kubectl needs to label rows by kind.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Any

from sandbox.types import ResourceType

Column = tuple[str, str, Callable[[dict[str, Any]], Any]]  # (name, type, cell)

NAME_DOC = "Name must be unique within a namespace."
AGE_DOC = "CreationTimestamp is a timestamp representing the server time when this object was created."


def wants_table(accept: str) -> bool:
    return "as=Table" in accept


def age(stamp: str | None) -> str:
    """kubectl's HumanDuration of the time since ``stamp``."""
    if not stamp:
        return "<unknown>"
    then = dt.datetime.strptime(stamp, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=dt.UTC)
    seconds = max(0, int((dt.datetime.now(dt.UTC) - then).total_seconds()))
    minutes, hours, days = seconds // 60, seconds // 3600, seconds // 86400
    if seconds < 120:
        return f"{seconds}s"
    if minutes < 10:
        return f"{minutes}m{seconds % 60}s" if seconds % 60 else f"{minutes}m"
    if hours < 3:
        return f"{minutes}m"
    if hours < 8:
        return f"{hours}h{minutes % 60}m" if minutes % 60 else f"{hours}h"
    if hours < 48:
        return f"{hours}h"
    if days < 8:
        return f"{days}d{hours % 24}h" if hours % 24 else f"{days}d"
    return f"{days}d" if days < 730 else f"{days // 365}y"


def _dig(obj: dict[str, Any], path: str) -> Any:
    cur: Any = obj
    for part in path.strip(".").split("."):
        if not isinstance(cur, dict):
            return None
        cur = cur.get(part)
    return cur


def _s(obj: dict[str, Any], path: str, default: Any = "") -> Any:
    value = _dig(obj, path)
    return default if value is None else value


def _ready(status: dict[str, Any], spec: dict[str, Any]) -> str:
    return f"{status.get('readyReplicas', 0)}/{spec.get('replicas', 1)}"


def _pod_status(o: dict[str, Any]) -> str:
    if o["metadata"].get("deletionTimestamp"):
        return "Terminating"
    for cs in _s(o, "status.containerStatuses", []):
        terminated = (cs.get("state") or {}).get("terminated")
        if terminated and o.get("status", {}).get("phase") in ("Succeeded", "Failed"):
            return str(terminated.get("reason") or o["status"]["phase"])
    return str(_s(o, "status.phase", "Pending"))


def _ports(o: dict[str, Any]) -> str:
    ports = _s(o, "spec.ports", [])
    return ",".join(f"{p.get('port')}/{p.get('protocol', 'TCP')}" for p in ports) or "<none>"


def _job_status(o: dict[str, Any]) -> str:
    for c in _s(o, "status.conditions", []):
        if c.get("status") == "True" and c.get("type") in ("Complete", "Failed", "Suspended"):
            return str(c["type"])
    return "Running"


_BUILTIN: dict[str, list[Column]] = {
    "pods": [
        (
            "Ready",
            "string",
            lambda o: (
                f"{sum(1 for c in _s(o, 'status.containerStatuses', []) if c.get('ready'))}/{len(_s(o, 'spec.containers', []))}"
            ),
        ),
        ("Status", "string", _pod_status),
        (
            "Restarts",
            "string",
            lambda o: str(sum(c.get("restartCount", 0) for c in _s(o, "status.containerStatuses", []))),
        ),
    ],
    "deployments.apps": [
        ("Ready", "string", lambda o: _ready(o.get("status") or {}, o.get("spec") or {})),
        ("Up-to-date", "integer", lambda o: _s(o, "status.updatedReplicas", 0)),
        ("Available", "integer", lambda o: _s(o, "status.availableReplicas", 0)),
    ],
    "statefulsets.apps": [("Ready", "string", lambda o: _ready(o.get("status") or {}, o.get("spec") or {}))],
    "replicasets.apps": [
        ("Desired", "integer", lambda o: _s(o, "spec.replicas", 1)),
        ("Current", "integer", lambda o: _s(o, "status.replicas", 0)),
        ("Ready", "integer", lambda o: _s(o, "status.readyReplicas", 0)),
    ],
    "daemonsets.apps": [
        ("Desired", "integer", lambda o: _s(o, "status.desiredNumberScheduled", 0)),
        ("Current", "integer", lambda o: _s(o, "status.currentNumberScheduled", 0)),
        ("Ready", "integer", lambda o: _s(o, "status.numberReady", 0)),
    ],
    "jobs.batch": [
        ("Status", "string", _job_status),
        ("Completions", "string", lambda o: f"{_s(o, 'status.succeeded', 0)}/{_s(o, 'spec.completions', 1)}"),
    ],
    "cronjobs.batch": [
        ("Schedule", "string", lambda o: _s(o, "spec.schedule")),
        ("Suspend", "boolean", lambda o: "True" if _s(o, "spec.suspend", False) else "False"),
        ("Active", "integer", lambda o: len(_s(o, "status.active", []))),
    ],
    "services": [
        ("Type", "string", lambda o: _s(o, "spec.type", "ClusterIP")),
        ("Cluster-IP", "string", lambda o: _s(o, "spec.clusterIP", "<none>")),
        ("External-IP", "string", lambda o: "<none>"),
        ("Port(s)", "string", _ports),
    ],
    "persistentvolumeclaims": [
        ("Status", "string", lambda o: _s(o, "status.phase")),
        ("Volume", "string", lambda o: _s(o, "spec.volumeName")),
        ("Capacity", "string", lambda o: _s(o, "status.capacity.storage")),
        ("Access Modes", "string", lambda o: ",".join(_abbrev(m) for m in _s(o, "status.accessModes", []))),
        ("StorageClass", "string", lambda o: _s(o, "spec.storageClassName")),
    ],
    "persistentvolumes": [
        ("Capacity", "string", lambda o: _s(o, "spec.capacity.storage")),
        ("Access Modes", "string", lambda o: ",".join(_abbrev(m) for m in _s(o, "spec.accessModes", []))),
        ("Reclaim Policy", "string", lambda o: _s(o, "spec.persistentVolumeReclaimPolicy")),
        ("Status", "string", lambda o: _s(o, "status.phase")),
        (
            "Claim",
            "string",
            lambda o: f"{_s(o, 'spec.claimRef.namespace')}/{_s(o, 'spec.claimRef.name')}".strip("/"),
        ),
        ("StorageClass", "string", lambda o: _s(o, "spec.storageClassName")),
    ],
    "namespaces": [("Status", "string", lambda o: _s(o, "status.phase"))],
    "nodes": [
        (
            "Status",
            "string",
            lambda o: (
                "Ready"
                if any(
                    c.get("type") == "Ready" and c.get("status") == "True"
                    for c in _s(o, "status.conditions", [])
                )
                else "NotReady"
            ),
        ),
        ("Roles", "string", lambda o: "<none>"),
    ],
    "horizontalpodautoscalers.autoscaling": [
        (
            "Reference",
            "string",
            lambda o: f"{_s(o, 'spec.scaleTargetRef.kind')}/{_s(o, 'spec.scaleTargetRef.name')}",
        ),
        ("MinPods", "integer", lambda o: _s(o, "spec.minReplicas", 1)),
        ("MaxPods", "integer", lambda o: _s(o, "spec.maxReplicas", 0)),
        ("Replicas", "integer", lambda o: _s(o, "status.currentReplicas", 0)),
    ],
    "ingresses.networking.k8s.io": [
        ("Class", "string", lambda o: _s(o, "spec.ingressClassName", "<none>")),
        ("Hosts", "string", lambda o: ",".join(r.get("host", "*") for r in _s(o, "spec.rules", [])) or "*"),
        ("Address", "string", lambda o: ""),
        ("Ports", "string", lambda o: "80, 443" if _s(o, "spec.tls", []) else "80"),
    ],
    "configmaps": [("Data", "integer", lambda o: len(o.get("data") or {}) + len(o.get("binaryData") or {}))],
    "secrets": [
        ("Type", "string", lambda o: o.get("type", "")),
        ("Data", "integer", lambda o: len(o.get("data") or {})),
    ],
    "storageclasses.storage.k8s.io": [
        ("Provisioner", "string", lambda o: o.get("provisioner", "")),
        ("ReclaimPolicy", "string", lambda o: o.get("reclaimPolicy", "Delete")),
        ("VolumeBindingMode", "string", lambda o: o.get("volumeBindingMode", "Immediate")),
    ],
}


def _abbrev(mode: str) -> str:
    return {
        "ReadWriteOnce": "RWO",
        "ReadOnlyMany": "ROX",
        "ReadWriteMany": "RWX",
        "ReadWriteOncePod": "RWOP",
    }.get(mode, mode)


def _age_at(path: str) -> Callable[[dict[str, Any]], Any]:
    return lambda o: age(_dig(o, path))


def _value_at(path: str) -> Callable[[dict[str, Any]], Any]:
    return lambda o: _s(o, path)


def _columns(rt: ResourceType) -> list[Column]:
    if rt.crd and rt.printer_columns:
        return [
            (name, "string", _age_at(path)) if kind == "date" else (name, kind, _value_at(path))
            for name, kind, path in rt.printer_columns
        ]
    tail: list[Column] = [("Age", "string", _age_at("metadata.creationTimestamp"))]
    if rt.resource == "nodes":
        tail.append(("Version", "string", _value_at("status.nodeInfo.kubeletVersion")))
    return [*_BUILTIN.get(rt.resource, []), *tail]


def table(
    rt: ResourceType, objects: list[dict[str, Any]], list_meta: dict[str, Any], include: str = "Metadata"
) -> dict[str, Any]:
    columns = _columns(rt)
    definitions = [
        {"name": "Name", "type": "string", "format": "name", "description": NAME_DOC, "priority": 0}
    ]
    for name, kind, _cell in columns:
        doc = AGE_DOC if name == "Age" else name
        definitions.append({"name": name, "type": kind, "format": "", "description": doc, "priority": 0})
    rows = []
    for obj in objects:
        name = obj["metadata"]["name"]
        if (
            rt.resource == "storageclasses.storage.k8s.io"
            and (obj["metadata"].get("annotations") or {}).get("storageclass.kubernetes.io/is-default-class")
            == "true"
        ):
            name += " (default)"
        row: dict[str, Any] = {"cells": [name, *(cell(obj) for _, _, cell in columns)]}
        if include == "Object":
            row["object"] = obj
        elif include != "None":
            row["object"] = {
                "kind": "PartialObjectMetadata",
                "apiVersion": "meta.k8s.io/v1",
                "metadata": obj["metadata"],
            }
        rows.append(row)
    return {
        "kind": "Table",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": list_meta,
        "columnDefinitions": definitions,
        "rows": rows,
    }
