"""Label selectors as ``kubectl -l`` takes them, matched against an object's labels.

The restore step applies the request's selector to a snapshot's documents, with no API server to
ask, so Ferry parses the selector itself, with the grammar of the API server's ``labels.Parse``:
``a=b``, ``a==b``, ``a!=b``, ``a in (x,y)``, ``a notin (x,y)``, ``a`` (exists) and ``!a`` (does
not exist), joined by commas. A selector that does not parse is an error naming the part.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

_SET = re.compile(r"^\s*(?P<key>[^\s!=(),]+)\s+(?P<op>in|notin)\s*\((?P<values>[^()]*)\)\s*$")
_EQ = re.compile(r"^\s*(?P<key>[^\s!=(),]+)\s*(?P<op>==|=|!=)\s*(?P<value>[^\s!=(),]*)\s*$")
_EXISTS = re.compile(r"^\s*(?P<neg>!?)\s*(?P<key>[^\s!=(),]+)\s*$")


class SelectorError(ValueError):
    """A label selector that does not parse; the message names the part."""


@dataclass(frozen=True)
class Requirement:
    key: str
    op: str  # in | notin | exists | !exists
    values: frozenset[str] = frozenset()

    def matches(self, labels: dict[str, str]) -> bool:
        if self.op == "exists":
            return self.key in labels
        if self.op == "!exists":
            return self.key not in labels
        if self.op == "in":
            return labels.get(self.key) in self.values
        return labels.get(self.key) not in self.values  # notin: an absent key matches, as in Kubernetes


def _parts(text: str) -> list[str]:
    """Split on the commas that are not inside parentheses."""
    parts, depth, current = [], 0, ""
    for char in text:
        if char == "(":
            depth += 1
        elif char == ")":
            depth -= 1
        if char == "," and depth == 0:
            parts.append(current)
            current = ""
        else:
            current += char
    parts.append(current)
    return parts


def parse(selector: str) -> list[Requirement]:
    requirements = []
    for part in _parts(selector):
        if not part.strip():
            if selector.strip():
                raise SelectorError(f"empty requirement in label selector {selector!r}")
            continue
        if m := _SET.match(part):
            values = frozenset(v.strip() for v in m["values"].split(",") if v.strip())
            requirements.append(Requirement(m["key"], m["op"], values))
        elif m := _EQ.match(part):
            requirements.append(
                Requirement(m["key"], "notin" if m["op"] == "!=" else "in", frozenset([m["value"]]))
            )
        elif m := _EXISTS.match(part):
            requirements.append(Requirement(m["key"], "!exists" if m["neg"] else "exists"))
        else:
            raise SelectorError(f"{part.strip()!r} is not a label selector requirement")
    return requirements


def matches(requirements: list[Requirement], labels: dict[str, str]) -> bool:
    return all(r.matches(labels) for r in requirements)


_OPERATORS = {"In": "in", "NotIn": "notin"}


def from_label_selector(selector: Mapping[str, Any]) -> str:
    """A ``LabelSelector`` object (a workload's ``spec.selector``: ``matchLabels`` and
    ``matchExpressions``) as the string a list call takes; "" for an empty one, which matches all."""
    parts = [f"{k}={v}" for k, v in sorted((selector.get("matchLabels") or {}).items())]
    for expression in selector.get("matchExpressions") or []:
        key, op = expression.get("key"), expression.get("operator")
        values = [str(v) for v in expression.get("values") or []]
        if not key:
            raise SelectorError(f"matchExpressions entry without a key: {expression!r}")
        if op in _OPERATORS and values:
            parts.append(f"{key} {_OPERATORS[op]} ({','.join(values)})")
        elif op == "Exists" and not values:
            parts.append(key)
        elif op == "DoesNotExist" and not values:
            parts.append(f"!{key}")
        else:
            raise SelectorError(
                f"matchExpressions entry {expression!r}: operator {op!r} with values {values}"
            )
    return ",".join(parts)
