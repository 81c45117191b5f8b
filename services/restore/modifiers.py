"""Resource modifiers in Velero's YAML format, so a team brings the rules it already has.

The format (Velero ``internal/resourcemodifiers``, docs ``restore-resource-modifiers.md``)::

    version: v1
    resourceModifierRules:
    - conditions:
        groupResource: persistentvolumeclaims     # glob, '.'-separated: "*.apps", "*", "*.*"
        resourceNameRegex: "^mysql.*$"            # searched in the name
        namespaces: [bar, foo]                    # the ORIGINAL namespace (before mapping)
        labelSelector: {matchLabels: {foo: bar}}  # matchLabels and matchExpressions
        matches: [{path: /spec/storageClassName, value: premium}]   # all must hold
      patches:          # RFC 6902; a failing `test` leaves the object as it was (rule skipped)
      - {operation: replace, path: /spec/storageClassName, value: standard}
      mergePatches:     # RFC 7386, YAML or JSON text
      - patchData: '{"metadata": {"annotations": {"foo": null}}}'
      strategicPatches: # Kubernetes strategic merge (lists merged by their merge key)
      - patchData: '{"spec": {"template": {"spec": {"containers": [{"name": "web", "image": "x"}]}}}}'

Velero's semantics are kept where a team would notice a difference: conditions are evaluated on the
object as it was *before* any rule ran; rules apply in order, patches in order; a rule applies only
one kind of patch (JSON patches, else merge patches, else strategic patches — the others are reported
as ignored); JSON patch values are strings whose JSON meaning Velero infers (``"true"``, ``"3"``,
``"[...]"`` are JSON; ``'"3"'`` is the string 3). Any other patch error fails the object with the
message, as Velero's restore does. Parsing refuses unknown fields, like Velero's ``UnmarshalStrict``.
"""

from __future__ import annotations

import copy
import json
import re
from dataclasses import dataclass, field
from functools import cache
from typing import Any

import jsonpatch
import jsonpointer
import yaml

from services.restore.merging import merge_patch, strategic_merge
from shared.kube.objects import Manifest, Obj

SUPPORTED_VERSION = "v1"


class ModifierError(ValueError):
    """The modifier document is not valid; the message names the rule and field."""


@dataclass(frozen=True)
class Conditions:
    group_resource: str
    name_regex: str = ""
    namespaces: tuple[str, ...] = ()
    label_selector: Obj | None = None
    matches: tuple[tuple[str, Any], ...] = ()


@dataclass(frozen=True)
class Rule:
    conditions: Conditions
    patches: tuple[Obj, ...] = ()
    merge_patches: tuple[Obj, ...] = ()
    strategic_patches: tuple[Obj, ...] = ()
    index: int = 0


@dataclass
class Outcome:
    """What the rules did to one object: the rules applied, and notes (skips, ignored kinds)."""

    applied: list[int] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    error: str = ""


def _check_keys(data: Any, allowed: set[str], where: str) -> Obj:
    if not isinstance(data, dict):
        raise ModifierError(f"{where}: expected a mapping, got {type(data).__name__}")
    unknown = set(data) - allowed
    if unknown:
        raise ModifierError(f"{where}: unknown field(s) {sorted(unknown)}")
    return data


def parse(text: str) -> list[Rule]:
    """Parse and validate a modifier document; an empty text means no rules."""
    if not text.strip():
        return []
    try:
        doc = yaml.safe_load(text)
    except yaml.YAMLError as e:
        raise ModifierError(f"resource modifiers are not valid YAML: {e}") from e
    doc = _check_keys(doc, {"version", "resourceModifierRules"}, "resource modifiers")
    if doc.get("version") != SUPPORTED_VERSION:
        raise ModifierError(f"unsupported resource modifiers version {doc.get('version')!r}, expected 'v1'")
    rules = []
    for i, raw in enumerate(doc.get("resourceModifierRules") or []):
        where = f"resourceModifierRules[{i}]"
        raw = _check_keys(raw, {"conditions", "patches", "mergePatches", "strategicPatches"}, where)
        cond = _check_keys(
            raw.get("conditions") or {},
            {"groupResource", "resourceNameRegex", "namespaces", "labelSelector", "matches"},
            f"{where}.conditions",
        )
        if not cond.get("groupResource"):
            raise ModifierError(f"{where}.conditions.groupResource is required")
        if cond.get("resourceNameRegex"):
            try:
                re.compile(cond["resourceNameRegex"])
            except re.error as e:
                raise ModifierError(f"{where}.conditions.resourceNameRegex: {e}") from e
        matches = []
        for j, match in enumerate(cond.get("matches") or []):
            match = _check_keys(match, {"path", "value"}, f"{where}.conditions.matches[{j}]")
            if not match.get("path"):
                raise ModifierError(f"{where}.conditions.matches[{j}].path is required")
            matches.append((match["path"], match.get("value", "")))
        patches = tuple(raw.get("patches") or [])
        for j, patch in enumerate(patches):
            _check_keys(patch, {"operation", "from", "path", "value"}, f"{where}.patches[{j}]")
            if patch.get("operation") not in ("add", "remove", "replace", "move", "copy", "test"):
                raise ModifierError(
                    f"{where}.patches[{j}].operation {patch.get('operation')!r} is not JSON Patch"
                )
        for name in ("mergePatches", "strategicPatches"):
            for j, patch in enumerate(raw.get(name) or []):
                _check_keys(patch, {"patchData"}, f"{where}.{name}[{j}]")
                _patch_data(patch, f"{where}.{name}[{j}]")
        if not (patches or raw.get("mergePatches") or raw.get("strategicPatches")):
            raise ModifierError(f"{where}: no patch data found")
        rules.append(
            Rule(
                Conditions(
                    cond["groupResource"],
                    cond.get("resourceNameRegex") or "",
                    tuple(cond.get("namespaces") or ()),
                    cond.get("labelSelector"),
                    tuple(matches),
                ),
                patches,
                tuple(raw.get("mergePatches") or ()),
                tuple(raw.get("strategicPatches") or ()),
                i,
            )
        )
    return rules


def _patch_data(patch: Obj, where: str) -> Obj:
    data = patch.get("patchData")
    if isinstance(data, str):
        try:
            data = yaml.safe_load(data)
        except yaml.YAMLError as e:
            raise ModifierError(f"{where}.patchData is not YAML or JSON: {e}") from e
    if not isinstance(data, dict):
        raise ModifierError(f"{where}.patchData must be an object")
    return data


@cache
def _glob(pattern: str) -> re.Pattern[str]:
    """gobwas/glob with '.' as separator: '*' stays within a dot-separated part, '**' crosses."""
    out, i = [], 0
    while i < len(pattern):
        c = pattern[i]
        if pattern.startswith("**", i):
            out.append(".*")
            i += 2
            continue
        if c == "*":
            out.append(r"[^.]*")
        elif c == "?":
            out.append(r"[^.]")
        elif c == "{":
            end = pattern.find("}", i)
            if end < 0:
                raise ModifierError(f"bad groupResource glob {pattern!r}")
            out.append("(?:" + "|".join(re.escape(p) for p in pattern[i + 1 : end].split(",")) + ")")
            i = end + 1
            continue
        else:
            out.append(re.escape(c))
        i += 1
    return re.compile("^" + "".join(out) + "$")


def selector_matches(selector: Obj, labels: dict[str, str]) -> bool:
    for key, value in (selector.get("matchLabels") or {}).items():
        if labels.get(key) != str(value):
            return False
    for expr in selector.get("matchExpressions") or []:
        key, op, values = expr.get("key"), expr.get("operator"), [str(v) for v in expr.get("values") or []]
        present = key in labels
        if op == "In" and not (present and labels[key] in values):
            return False
        if op == "NotIn" and present and labels[key] in values:
            return False
        if op == "Exists" and not present:
            return False
        if op == "DoesNotExist" and present:
            return False
    return True


def json_value(value: Any) -> Any:
    """Velero's reading of a patch value (a string whose JSON meaning it infers)."""
    if not isinstance(value, str):
        return value
    if value == "":
        return ""
    if len(value) >= 2 and value.startswith('"') and value.endswith('"'):
        return value[1:-1]
    if value == "null":
        return None
    if value.lower() in ("true", "false"):
        return value.lower() == "true"
    if value.startswith(("{", "[")):
        try:
            return json.loads(value)
        except ValueError as e:
            raise ModifierError(f"patch value {value!r} is not valid JSON: {e}") from e
    try:
        number = float(value)
    except ValueError:
        return value
    return int(number) if number.is_integer() and "." not in value and "e" not in value.lower() else number


def _json_ops(patches: tuple[Obj, ...]) -> list[Obj]:
    ops = []
    for patch in patches:
        op: Obj = {"op": patch["operation"], "path": patch.get("path", "")}
        if patch.get("from"):
            op["from"] = patch["from"]
        if patch["operation"] in ("add", "replace", "test"):
            op["value"] = json_value(patch.get("value", ""))
        ops.append(op)
    return ops


def matches(rule: Rule, item: Manifest) -> bool:
    cond = rule.conditions
    if item.namespace and cond.namespaces and item.namespace not in cond.namespaces:
        return False
    if not _glob(cond.group_resource).match(item.gr):
        return False
    if cond.name_regex and not re.search(cond.name_regex, item.name):
        return False
    if cond.label_selector is not None and not selector_matches(
        cond.label_selector, item.metadata.get("labels") or {}
    ):
        return False
    if cond.matches:
        tests = [{"op": "test", "path": p, "value": json_value(v)} for p, v in cond.matches]
        try:
            jsonpatch.apply_patch(item.obj, tests)
        except (jsonpatch.JsonPatchException, jsonpointer.JsonPointerException):
            return False
    return True


def apply(rules: list[Rule], item: Manifest) -> Outcome:
    """Apply the matching rules to ``item`` in place. On error the object is left unchanged."""
    outcome = Outcome()
    if not rules:
        return outcome
    original = Manifest(copy.deepcopy(item.obj), item.resource, item.namespaced)
    doc = item.obj
    for rule in rules:
        if not matches(rule, original):
            continue
        where = f"resource modifier rule {rule.index}"
        given = {
            "patches": rule.patches,
            "mergePatches": rule.merge_patches,
            "strategicPatches": rule.strategic_patches,
        }
        kinds = [kind for kind, patches in given.items() if patches]
        if len(kinds) > 1:
            outcome.notes.append(
                f"{where}: only its {kinds[0]} apply; {', '.join(kinds[1:])} ignored (as Velero)"
            )
        try:
            if rule.patches:
                try:
                    doc = jsonpatch.apply_patch(doc, _json_ops(rule.patches))
                except jsonpatch.JsonPatchTestFailed as e:
                    outcome.notes.append(f"{where} skipped: its test did not hold ({e})")
                    continue
            elif rule.merge_patches:
                for patch in rule.merge_patches:
                    doc = merge_patch(doc, _patch_data(patch, where))
            else:
                for patch in rule.strategic_patches:
                    doc = strategic_merge(doc, _patch_data(patch, where))
        except (jsonpatch.JsonPatchException, jsonpointer.JsonPointerException, ModifierError) as e:
            outcome.error = f"{where} failed: {e}"
            return outcome
        outcome.applied.append(rule.index)
    if doc is not item.obj:
        item.obj.clear()
        item.obj.update(doc)
    return outcome
