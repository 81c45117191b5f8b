"""A Pod's QoS class, as ``pkg/apis/core/helper/qos/qos.go`` (``ComputePodQOS``) of Kubernetes 1.32.

Requests and limits of cpu and memory only (other resources do not count), summed over containers
and initContainers, zero quantities ignored: none at all is BestEffort; every container limiting
both cpu and memory, with the summed requests equal to the summed limits, is Guaranteed; anything
else Burstable. Pod-level resources (alpha in 1.32) are not modelled. Quantities are compared as
exact fractions, so ``1`` and ``1000m`` or ``1Gi`` and ``1024Mi`` are equal, as ``Quantity.Cmp`` says.
"""

from __future__ import annotations

from fractions import Fraction
from typing import Any

from sandbox.server.quantities import quantity

QOS_RESOURCES = ("cpu", "memory")


def pod_qos(spec: dict[str, Any]) -> str:
    """``Guaranteed``, ``Burstable`` or ``BestEffort`` for a PodSpec (after defaulting)."""
    requests: dict[str, Fraction] = {}
    limits: dict[str, Fraction] = {}
    guaranteed = True
    for c in [*(spec.get("containers") or []), *(spec.get("initContainers") or [])]:
        resources = c.get("resources") or {}
        for name, value in (resources.get("requests") or {}).items():
            amount = _amount(value)
            if name in QOS_RESOURCES and amount > 0:
                requests[name] = requests.get(name, Fraction(0)) + amount
        found = set()
        for name, value in (resources.get("limits") or {}).items():
            amount = _amount(value)
            if name in QOS_RESOURCES and amount > 0:
                found.add(name)
                limits[name] = limits.get(name, Fraction(0)) + amount
        if not found >= set(QOS_RESOURCES):
            guaranteed = False
    if not requests and not limits:
        return "BestEffort"
    if guaranteed and all(limits.get(name) == value for name, value in requests.items()):
        if len(requests) == len(limits):
            return "Guaranteed"
    return "Burstable"


def _amount(value: Any) -> Fraction:
    try:
        return quantity(value)
    except (ValueError, ZeroDivisionError):
        return Fraction(0)  # validation (not modelled) would have refused it
