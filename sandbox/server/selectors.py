"""Label and field selectors, parsed and matched as the apiserver does.

Label selectors: ``k=v``, ``k==v``, ``k!=v``, ``k in (a,b)``, ``k notin (a)``, ``k``, ``!k``, joined by
commas (commas inside parentheses do not split). Field selectors: ``=``, ``==``, ``!=`` on
``metadata.name``, ``metadata.namespace`` and the per-kind fields listed in the resource table; any
other field is rejected with 400, like a real server.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from sandbox.server.errors import bad_request
from sandbox.types import ResourceType

Matcher = Callable[[dict[str, Any]], bool]

_SET_RE = re.compile(r"^\s*([^\s!=()]+)\s+(in|notin)\s*\((.*)\)\s*$")


def _split(selector: str) -> list[str]:
    parts, depth, current = [], 0, ""
    for ch in selector:
        if ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
        if ch == "," and depth == 0:
            parts.append(current)
            current = ""
        else:
            current += ch
    parts.append(current)
    return [p.strip() for p in parts if p.strip()]


LabelTest = Callable[[dict[str, str]], bool]


def _has(key: str) -> LabelTest:
    return lambda labels: key in labels


def _lacks(key: str) -> LabelTest:
    return lambda labels: key not in labels


def _equals(key: str, value: str, want: bool) -> LabelTest:
    return lambda labels: (labels.get(key) == value) == want


def _within(key: str, values: set[str], want: bool) -> LabelTest:
    return lambda labels: (labels.get(key) in values) == want


def label_matcher(selector: str | None) -> Matcher:
    if not selector:
        return lambda obj: True
    tests: list[LabelTest] = []
    for req in _split(selector):
        m = _SET_RE.match(req)
        if m:
            values = {v.strip() for v in m.group(3).split(",") if v.strip()}
            tests.append(_within(m.group(1), values, m.group(2) == "in"))
        elif "!=" in req:
            key, value = (part.strip() for part in req.split("!=", 1))
            tests.append(_equals(key, value, False))
        elif "=" in req:
            key, value = (part.strip() for part in re.split(r"==?", req, maxsplit=1))
            tests.append(_equals(key, value, True))
        elif req.startswith("!"):
            tests.append(_lacks(req[1:].strip()))
        elif re.fullmatch(r"[A-Za-z0-9._/-]+", req):
            tests.append(_has(req))
        else:
            raise bad_request(f"unable to parse requirement: {req!r}")

    def match(obj: dict[str, Any]) -> bool:
        labels = obj.get("metadata", {}).get("labels") or {}
        return all(t(labels) for t in tests)

    return match


def _field_value(obj: dict[str, Any], path: str) -> str:
    cur: Any = obj
    for part in path.split("."):
        if not isinstance(cur, dict):
            return ""
        cur = cur.get(part)
    if cur is None:
        return ""
    if isinstance(cur, bool):
        return "true" if cur else "false"
    return str(cur)


def field_matcher(selector: str | None, rt: ResourceType) -> Matcher:
    if not selector:
        return lambda obj: True
    allowed = {"metadata.name", "metadata.namespace", *rt.field_selectors}
    tests: list[tuple[str, bool, str]] = []
    for req in _split(selector):
        m = re.fullmatch(r"([^!=]+)(!=|==|=)(.*)", req)
        if not m:
            raise bad_request(f"invalid selector: '{selector}'; can't understand '{req}'")
        field, op, value = m.group(1).strip(), m.group(2), m.group(3).strip()
        if field not in allowed:
            raise bad_request(f"field label not supported: {field}")
        tests.append((field, op != "!=", value))

    def match(obj: dict[str, Any]) -> bool:
        return all((_field_value(obj, f) == v) == eq for f, eq, v in tests)

    return match


def matcher(rt: ResourceType, labels: str | None, fields: str | None) -> Matcher:
    lm, fm = label_matcher(labels), field_matcher(fields, rt)
    return lambda obj: lm(obj) and fm(obj)
