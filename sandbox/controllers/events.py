"""Events (core/v1) recorded by the sandbox controllers, as their real counterparts record them.

Tools read Events to explain why something is stuck (a claim waiting, a snapshot failing, a Job
over its backoff limit), so the controllers leave the same trail. Recording never fails a
reconcile: a namespace being deleted refuses new Events, and that is fine.
"""

from __future__ import annotations

import secrets
from typing import Any

from sandbox.server.errors import ApiError
from sandbox.server.objects import Objects, now


def record(
    objects: Objects,
    involved: dict[str, Any],
    reason: str,
    message: str,
    component: str,
    warning: bool = False,
) -> None:
    meta = involved["metadata"]
    namespace = meta.get("namespace") or "default"
    stamp = now()
    ref: dict[str, Any] = {
        "apiVersion": involved.get("apiVersion", ""),
        "kind": involved.get("kind", ""),
        "name": meta["name"],
        "uid": meta.get("uid", ""),
        "resourceVersion": meta.get("resourceVersion", ""),
    }
    if meta.get("namespace"):
        ref["namespace"] = meta["namespace"]
    body: dict[str, Any] = {
        "metadata": {"name": f"{meta['name']}.{secrets.token_hex(8)}"},
        "involvedObject": ref,
        "reason": reason,
        "message": message,
        "type": "Warning" if warning else "Normal",
        "source": {"component": component},
        "reportingComponent": component,
        "reportingInstance": "",
        "firstTimestamp": stamp,
        "lastTimestamp": stamp,
        "count": 1,
    }
    try:
        objects.create(objects.rt("events"), namespace, body, manager=component)
    except ApiError:
        pass
