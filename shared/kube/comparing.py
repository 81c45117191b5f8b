"""Comparing an object as a snapshot holds it with the object a cluster holds now.

Used by the restore step (is a live object already the snapshot's version? what does a dry run
change?) and by the verify step (is the target what the snapshot says?). One definition, so the two
steps can never disagree about "equal".

The comparison is one of *intent*: every field the snapshot's document sets must have the same value
in the live object; fields only the live object has are the server's defaults and are not
differences (a Service's cluster IP, a Deployment's strategy). Metadata the server owns (uid,
resourceVersion, managedFields, ...) and ``status`` are never compared, and neither are the labels
Ferry stamps on what it restores (an object restored by an earlier request is not "different").
"""

from __future__ import annotations

import hashlib
from typing import Any

Obj = dict[str, Any]

REQUEST_LABEL = "ferry.dev/request"
SNAPSHOT_LABEL = "ferry.dev/snapshot"
FERRY_LABELS = (REQUEST_LABEL, SNAPSHOT_LABEL)
IGNORED_FIELDS = {"status"}
IGNORED_METADATA = {
    "uid",
    "resourceVersion",
    "generation",
    "creationTimestamp",
    "managedFields",
    "selfLink",
    "ownerReferences",
    "finalizers",
}


def _show(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def differences(desired: Any, live: Any, path: str = "") -> list[str]:
    """Fields of ``desired`` whose value differs in ``live`` ("spec.replicas: 3 -> 2")."""
    if isinstance(desired, dict) and isinstance(live, dict):
        found = []
        for key, value in desired.items():
            sub = f"{path}.{key}" if path else key
            if not path and key in IGNORED_FIELDS:
                continue
            if path == "metadata" and key in IGNORED_METADATA:
                continue
            if key not in live:
                found.append(f"{sub}: absent in the target, {_show(value)} in the snapshot")
            else:
                found.extend(differences(value, live[key], sub))
        return found
    if isinstance(desired, list) and isinstance(live, list):
        if len(desired) != len(live):
            return [f"{path}: {len(live)} item(s) in the target, {len(desired)} in the snapshot"]
        found = []
        for i, (d, v) in enumerate(zip(desired, live, strict=True)):
            found.extend(differences(d, v, f"{path}[{i}]"))
        return found
    if desired != live:
        return [f"{path}: {_show(live)} in the target, {_show(desired)} in the snapshot"]
    return []


def without_ferry_labels(obj: Obj) -> Obj:
    """``obj`` minus the labels Ferry adds: an object restored by an earlier request is not "different"."""
    labels = (obj.get("metadata") or {}).get("labels") or {}
    if not any(k in labels for k in FERRY_LABELS):
        return obj
    meta = {**obj["metadata"], "labels": {k: v for k, v in labels.items() if k not in FERRY_LABELS}}
    if not meta["labels"]:
        del meta["labels"]
    return {**obj, "metadata": meta}


def digested(obj: Obj) -> Obj:
    """``obj`` with each value of a Secret's ``data`` and ``stringData`` replaced by its SHA-256.

    Documents that describe a target (the restore's expectation) are stored with the request; a
    Secret's values must not be. Comparing digests proves the same thing without them.
    """
    if obj.get("kind") != "Secret" or obj.get("apiVersion") != "v1":
        return obj
    out = dict(obj)
    for key in ("data", "stringData"):
        values = obj.get(key)
        if isinstance(values, dict):
            out[key] = {k: "sha256:" + hashlib.sha256(str(v).encode()).hexdigest() for k, v in values.items()}
    return out
