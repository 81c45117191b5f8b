"""Conversion between the served versions of a kind that the sandbox stores in one version.

Only HorizontalPodAutoscalers have two built-in versions: stored as ``autoscaling/v2`` (as
kube-apiserver 1.32 stores them), served as v2 and as ``autoscaling/v1``, converted as
``pkg/apis/autoscaling/v1/conversion.go`` converts them: v1's ``targetCPUUtilizationPercentage`` is
v2's CPU ``Utilization`` metric (80 % when a v1 object names none), and what v1 cannot say (other
metrics, current metrics, conditions) travels in the ``autoscaling.alpha.kubernetes.io/*``
annotations, so that a v1 read-modify-write keeps it. v2's ``behavior`` has no v1 form and is lost
by a v1 write, as for real. Objects of every other kind are returned as they are.
"""

from __future__ import annotations

import json
from typing import Any

from sandbox.server.storage import clone
from sandbox.types import ResourceType

HPA = "horizontalpodautoscalers.autoscaling"
STORAGE_VERSIONS = {HPA: "v2"}
METRICS_ANNOTATION = "autoscaling.alpha.kubernetes.io/metrics"
CURRENT_METRICS_ANNOTATION = "autoscaling.alpha.kubernetes.io/current-metrics"
CONDITIONS_ANNOTATION = "autoscaling.alpha.kubernetes.io/conditions"
DEFAULT_CPU_UTILIZATION = 80


def _converted(rt: ResourceType) -> bool:
    return rt.resource in STORAGE_VERSIONS and rt.version != STORAGE_VERSIONS[rt.resource]


def to_storage(rt: ResourceType, obj: dict[str, Any]) -> dict[str, Any]:
    """``obj``, written in ``rt``'s version, in the stored version (``obj`` itself when the same)."""
    if not _converted(rt):
        return obj
    out = _hpa_from_v1(obj)
    out["apiVersion"] = f"{rt.group}/{STORAGE_VERSIONS[rt.resource]}"
    return out


def to_version(rt: ResourceType, stored: dict[str, Any]) -> dict[str, Any]:
    """A copy of a stored object in ``rt``'s version."""
    if not _converted(rt):
        return clone(stored)  # type: ignore[no-any-return]
    out = _hpa_to_v1(stored)
    out["apiVersion"] = rt.group_version
    return out


def _encode(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"))


def _compact(d: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in d.items() if v is not None}


# -- v2 -> v1 -----------------------------------------------------------------------------------
def _metric_to_v1(m: dict[str, Any]) -> dict[str, Any]:
    kind = m.get("type")
    out: dict[str, Any] = {"type": kind}
    if isinstance(m.get("resource"), dict) or isinstance(m.get("containerResource"), dict):
        key = "resource" if isinstance(m.get("resource"), dict) else "containerResource"
        src, target = m[key], m[key].get("target") or {}
        out[key] = _compact(
            {
                "name": src.get("name"),
                "targetAverageUtilization": target.get("averageUtilization"),
                "targetAverageValue": target.get("averageValue"),
                "container": src.get("container"),
            }
        )
    if isinstance(m.get("pods"), dict):
        src = m["pods"]
        out["pods"] = _compact(
            {
                "metricName": (src.get("metric") or {}).get("name"),
                "targetAverageValue": (src.get("target") or {}).get("averageValue") or "0",
                "selector": (src.get("metric") or {}).get("selector"),
            }
        )
    if isinstance(m.get("object"), dict):
        src, target = m["object"], m["object"].get("target") or {}
        out["object"] = _compact(
            {
                "target": src.get("describedObject") or {},
                "metricName": (src.get("metric") or {}).get("name"),
                "targetValue": target.get("value") or "0",
                "selector": (src.get("metric") or {}).get("selector"),
                "averageValue": target.get("averageValue"),
            }
        )
    if isinstance(m.get("external"), dict):
        src, target = m["external"], m["external"].get("target") or {}
        out["external"] = _compact(
            {
                "metricName": (src.get("metric") or {}).get("name"),
                "metricSelector": (src.get("metric") or {}).get("selector"),
                "targetValue": target.get("value"),
                "targetAverageValue": target.get("averageValue"),
            }
        )
    return out


def _status_metric_to_v1(m: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {"type": m.get("type")}
    for key in ("resource", "containerResource"):
        if isinstance(m.get(key), dict):
            current = m[key].get("current") or {}
            out[key] = _compact(
                {
                    "name": m[key].get("name"),
                    "currentAverageUtilization": current.get("averageUtilization"),
                    "currentAverageValue": current.get("averageValue") or "0",
                    "container": m[key].get("container"),
                }
            )
    for key in ("pods", "object", "external"):
        if isinstance(m.get(key), dict):
            src, current = m[key], m[key].get("current") or {}
            metric = src.get("metric") or {}
            out[key] = _compact(
                {
                    "target": src.get("describedObject") if key == "object" else None,
                    "metricName": metric.get("name"),
                    "metricSelector" if key == "external" else "selector": metric.get("selector"),
                    "currentValue": current.get("value") or "0" if key != "pods" else None,
                    "currentAverageValue": current.get("averageValue") or ("0" if key == "pods" else None),
                }
            )
    return out


def _is_cpu_utilization(m: dict[str, Any]) -> bool:
    resource = m.get("resource") or {}
    return (
        m.get("type") == "Resource"
        and resource.get("name") == "cpu"
        and (resource.get("target") or {}).get("averageUtilization") is not None
    )


def _hpa_to_v1(stored: dict[str, Any]) -> dict[str, Any]:
    obj = clone(stored)
    spec, status = obj.pop("spec", None) or {}, obj.pop("status", None)
    metrics = spec.get("metrics") or []
    v1_spec = _compact(
        {
            "scaleTargetRef": spec.get("scaleTargetRef"),
            "minReplicas": spec.get("minReplicas"),
            "maxReplicas": spec.get("maxReplicas"),
        }
    )
    for m in metrics:
        if m.get("type") == "Resource" and (m.get("resource") or {}).get("name") == "cpu":
            utilization = ((m["resource"].get("target")) or {}).get("averageUtilization")
            if utilization is not None:
                v1_spec["targetCPUUtilizationPercentage"] = utilization
            break
    annotations: dict[str, str] = {}
    others = [_metric_to_v1(m) for m in metrics if not _is_cpu_utilization(m)]
    if others:
        annotations[METRICS_ANNOTATION] = _encode(others)
    obj["spec"] = v1_spec
    if status is not None:
        current = status.get("currentMetrics") or []
        if current:
            annotations[CURRENT_METRICS_ANNOTATION] = _encode([_status_metric_to_v1(m) for m in current])
        if status.get("conditions"):
            annotations[CONDITIONS_ANNOTATION] = _encode(status["conditions"])
        v1_status = {
            k: status[k]
            for k in ("observedGeneration", "lastScaleTime", "currentReplicas", "desiredReplicas")
            if k in status
        }
        for m in current:
            resource = m.get("resource") or {}
            if m.get("type") == "Resource" and resource.get("name") == "cpu":
                utilization = (resource.get("current") or {}).get("averageUtilization")
                if utilization is not None:
                    v1_status["currentCPUUtilizationPercentage"] = utilization
        v1_status.setdefault("currentReplicas", 0)  # not omitempty in v1
        v1_status.setdefault("desiredReplicas", 0)
        obj["status"] = v1_status
    if annotations:
        meta = obj["metadata"]
        meta["annotations"] = {**(meta.get("annotations") or {}), **annotations}
    return obj  # type: ignore[no-any-return]


# -- v1 -> v2 -----------------------------------------------------------------------------------
def _target(**fields: Any) -> dict[str, Any]:
    return _compact(fields)


def _metric_from_v1(m: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {"type": m.get("type")}
    for key in ("resource", "containerResource"):
        if isinstance(m.get(key), dict):
            src = m[key]
            utilization = src.get("targetAverageUtilization")
            out[key] = _compact(
                {
                    "name": src.get("name"),
                    "target": _target(
                        type="AverageValue" if utilization is None else "Utilization",
                        averageUtilization=utilization,
                        averageValue=src.get("targetAverageValue"),
                    ),
                    "container": src.get("container"),
                }
            )
    if isinstance(m.get("pods"), dict):
        src = m["pods"]
        out["pods"] = {
            "metric": _compact({"name": src.get("metricName"), "selector": src.get("selector")}),
            "target": _target(type="AverageValue", averageValue=src.get("targetAverageValue")),
        }
    if isinstance(m.get("object"), dict):
        src = m["object"]
        average = src.get("averageValue")
        out["object"] = {
            "describedObject": src.get("target") or {},
            "metric": _compact({"name": src.get("metricName"), "selector": src.get("selector")}),
            "target": _target(
                type="Value" if average is None else "AverageValue",
                value=src.get("targetValue"),
                averageValue=average,
            ),
        }
    if isinstance(m.get("external"), dict):
        src = m["external"]
        value = src.get("targetValue")
        out["external"] = {
            "metric": _compact({"name": src.get("metricName"), "selector": src.get("metricSelector")}),
            "target": _target(
                type="AverageValue" if value is None else "Value",
                value=value,
                averageValue=src.get("targetAverageValue"),
            ),
        }
    return out


def _status_metric_from_v1(m: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {"type": m.get("type")}
    for key in ("resource", "containerResource"):
        if isinstance(m.get(key), dict):
            src = m[key]
            out[key] = _compact(
                {
                    "name": src.get("name"),
                    "current": _target(
                        averageValue=src.get("currentAverageValue") or "0",
                        averageUtilization=src.get("currentAverageUtilization"),
                    ),
                    "container": src.get("container"),
                }
            )
    for key in ("pods", "object", "external"):
        if isinstance(m.get(key), dict):
            src = m[key]
            selector = src.get("metricSelector" if key == "external" else "selector")
            entry: dict[str, Any] = {
                "metric": _compact({"name": src.get("metricName"), "selector": selector}),
                "current": _target(
                    value=None if key == "pods" else src.get("currentValue") or "0",
                    averageValue=src.get("currentAverageValue") or src.get("averageValue"),
                ),
            }
            if key == "object":
                entry["describedObject"] = src.get("target") or {}
            out[key] = entry
    return out


def _cpu(utilization: int, field: str) -> dict[str, Any]:
    inner: dict[str, Any] = {"averageUtilization": utilization}
    if field == "target":
        inner = {"type": "Utilization", **inner}
    return {"type": "Resource", "resource": {"name": "cpu", field: inner}}


def _hpa_from_v1(obj: dict[str, Any]) -> dict[str, Any]:
    out = clone(obj)
    spec, status = out.pop("spec", None) or {}, out.pop("status", None)
    annotations = dict(out["metadata"].get("annotations") or {})
    v2_spec = _compact(
        {
            "scaleTargetRef": spec.get("scaleTargetRef"),
            "minReplicas": spec.get("minReplicas"),
            "maxReplicas": spec.get("maxReplicas"),
        }
    )
    metrics = []
    if METRICS_ANNOTATION in annotations:
        metrics = [_metric_from_v1(m) for m in json.loads(annotations.pop(METRICS_ANNOTATION) or "[]")]
    if spec.get("targetCPUUtilizationPercentage") is not None:
        metrics.append(_cpu(spec["targetCPUUtilizationPercentage"], "target"))
    v2_spec["metrics"] = metrics or [_cpu(DEFAULT_CPU_UTILIZATION, "target")]
    out["spec"] = v2_spec
    v2_status: dict[str, Any] = {
        k: (status or {})[k]
        for k in ("observedGeneration", "lastScaleTime", "currentReplicas", "desiredReplicas")
        if k in (status or {})
    }
    if (status or {}).get("currentCPUUtilizationPercentage") is not None:
        v2_status["currentMetrics"] = [_cpu(status["currentCPUUtilizationPercentage"], "current")]  # type: ignore[index]
    if CURRENT_METRICS_ANNOTATION in annotations:
        encoded = json.loads(annotations.pop(CURRENT_METRICS_ANNOTATION) or "[]")
        v2_status["currentMetrics"] = [_status_metric_from_v1(m) for m in encoded]
    if CONDITIONS_ANNOTATION in annotations:
        v2_status["conditions"] = json.loads(annotations.pop(CONDITIONS_ANNOTATION) or "[]")
    if status is not None or v2_status:
        out["status"] = v2_status
    if annotations:
        out["metadata"]["annotations"] = annotations
    else:
        out["metadata"].pop("annotations", None)
    return out  # type: ignore[no-any-return]
