"""Kubernetes quantities (``100m``, ``1.5Gi``, ``1e3``, ``2``) as exact fractions, as ``Quantity.Cmp``
compares them: ``1`` equals ``1000m`` and ``1Gi`` equals ``1024Mi``. One parser for the sandbox's
QoS classes, claim sizes and update validation."""

from __future__ import annotations

import re
from fractions import Fraction
from typing import Any

_SUFFIXES = {
    "": Fraction(1),
    "n": Fraction(1, 10**9),
    "u": Fraction(1, 10**6),
    "m": Fraction(1, 1000),
    "k": Fraction(10**3),
    "M": Fraction(10**6),
    "G": Fraction(10**9),
    "T": Fraction(10**12),
    "P": Fraction(10**15),
    "E": Fraction(10**18),
    "Ki": Fraction(2**10),
    "Mi": Fraction(2**20),
    "Gi": Fraction(2**30),
    "Ti": Fraction(2**40),
    "Pi": Fraction(2**50),
    "Ei": Fraction(2**60),
}
_QUANTITY = re.compile(r"([+-]?(?:[0-9]+\.?[0-9]*|\.[0-9]+))(?:([eE][+-]?[0-9]+)|([a-zA-Z]*))")


def quantity(value: Any) -> Fraction:
    """The exact value of a Kubernetes quantity (``100m``, ``1.5Gi``, ``1e3``, ``2``)."""
    if isinstance(value, int | float):
        return Fraction(value)
    m = _QUANTITY.fullmatch(str(value).strip())
    if not m or (m.group(3) or "") not in _SUFFIXES:
        raise ValueError(f"invalid quantity {value!r}")
    number = Fraction(m.group(1))
    if m.group(2):
        return number * Fraction(10) ** int(m.group(2)[1:])
    return number * _SUFFIXES[m.group(3) or ""]
