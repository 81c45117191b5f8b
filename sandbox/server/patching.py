"""The four PATCH flavours, chosen by Content-Type as kube-apiserver chooses them.

- ``application/merge-patch+json``: RFC 7386 (null deletes a key, lists are replaced);
- ``application/json-patch+json``: RFC 6902 via ``jsonpatch``; an object body is rejected with the
  apiserver's own message (kubernetes-asyncio's CustomObjectsApi sends exactly that by mistake);
- ``application/strategic-merge-patch+json``: built-in kinds only (custom resources answer 415);
  a list merges as the kind's OpenAPI declares for its path (``merge_keys.json``, made by
  ``sandbox/tools/merge_keys.py`` from the Kubernetes OpenAPI: containers by name, a container's
  ports by containerPort and a Service's by port, finalizers as a set, tolerations replaced), a map
  declared ``replace`` is replaced, and ``$patch``/``$retainKeys``/``$deleteFromPrimitiveList``/
  ``$setElementOrder`` directives are understood. The table is the sandbox's own, never Ferry's:
  a key both got wrong would keep the tests green;
- ``application/apply-patch+yaml``: server-side apply, simplified: no managedFields conflict
  detection; the applied configuration is merged (strategically for built-ins) into the live
  object, fields this manager applied last time and dropped now are removed, and a missing object is
  created.
"""

from __future__ import annotations

import json
from importlib import resources
from typing import Any

import jsonpatch
import yaml

from sandbox.server import errors
from sandbox.types import ResourceType

MERGE = "application/merge-patch+json"
JSON = "application/json-patch+json"
STRATEGIC = "application/strategic-merge-patch+json"
APPLY = "application/apply-patch+yaml"
APPLY_CBOR = "application/apply-patch+cbor"

Rule = tuple[str | None, str]  # (merge key or None for a list of scalars, patch strategy)


def _load_rules() -> dict[str, dict[str, Rule]]:
    """``apiVersion/Kind`` -> {json path -> rule}; list items add no path segment."""
    document = json.loads((resources.files("sandbox.server") / "merge_keys.json").read_text())
    kinds: dict[str, dict[str, list[Any]]] = document["kinds"]
    return {kind: {path: (rule[0], rule[1]) for path, rule in paths.items()} for kind, paths in kinds.items()}


RULES = _load_rules()


def rules_for(rt: ResourceType) -> dict[str, Rule]:
    """The strategic-merge rules of ``rt``'s fields (none for a kind the OpenAPI does not declare)."""
    return RULES.get(f"{rt.group_version}/{rt.kind}", {})


def accepted(rt: ResourceType) -> list[str]:
    types = [JSON, MERGE]
    if rt.strategic:
        types.append(STRATEGIC)
    types.append(APPLY)
    return types


def parse_body(content_type: str, raw: bytes) -> Any:
    try:
        if content_type == APPLY:
            return yaml.safe_load(raw.decode() or "{}")
        return json.loads(raw or b"null")
    except Exception as e:  # noqa: BLE001 — any decoding failure is the client's
        raise errors.bad_request(f"error decoding patch: {e}") from e


def merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7386."""
    if not isinstance(patch, dict):
        return patch
    result = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = merge_patch(result.get(key), value)
    return result


def json_patch(target: dict[str, Any], patch: Any) -> dict[str, Any]:
    if not isinstance(patch, list):
        raise errors.bad_request("json: cannot unmarshal object into Go value of type jsonpatch.Patch")
    try:
        result: dict[str, Any] = jsonpatch.JsonPatch(patch).apply(target)
        return result
    except jsonpatch.JsonPatchTestFailed as e:
        raise errors.ApiError(
            422, "Invalid", f"the server rejected our request due to an error in our request: {e}"
        ) from e
    except (jsonpatch.JsonPatchException, jsonpatch.JsonPointerException) as e:
        raise errors.ApiError(
            422, "Invalid", f"the server rejected our request due to an error in our request: {e}"
        ) from e
    except Exception as e:  # noqa: BLE001
        raise errors.bad_request(f"invalid JSON patch: {e}") from e


def strategic_merge(rt: ResourceType, target: Any, patch: Any) -> Any:
    """A strategic merge patch of ``target`` (a whole object of kind ``rt``) by ``patch``."""
    return _merge_map(rules_for(rt), "", target, patch)


def _merge_map(rules: dict[str, Rule], path: str, target: Any, patch: Any) -> Any:
    if not isinstance(patch, dict):
        return patch
    if patch.get("$patch") == "replace":
        return {k: v for k, v in patch.items() if k != "$patch"}
    if patch.get("$patch") == "delete":
        return None
    result = dict(target) if isinstance(target, dict) else {}
    retain = patch.get("$retainKeys")
    for key, value in patch.items():
        if key.startswith("$setElementOrder/") or key in ("$retainKeys", "$patch"):
            continue
        if key.startswith("$deleteFromPrimitiveList/"):
            field = key.split("/", 1)[1]
            result[field] = [v for v in result.get(field) or [] if v not in value]
            continue
        here = f"{path}.{key}" if path else key
        if value is None:
            result.pop(key, None)
        elif isinstance(value, list):
            result[key] = _merge_list(rules, here, result.get(key), value)
        elif isinstance(value, dict):
            replace = here in rules and rules[here][1] == "replace"
            merged = _merge_map(rules, here, None if replace else result.get(key), value)
            if merged is None:
                result.pop(key, None)
            else:
                result[key] = merged
        else:
            result[key] = value
    if retain is not None:
        result = {k: v for k, v in result.items() if k in retain}
    return result


def _merge_list(rules: dict[str, Rule], path: str, live: Any, patch: list[Any]) -> list[Any]:
    current: list[Any] = live if isinstance(live, list) else []
    key, strategy = rules.get(path, (None, "replace"))
    if "merge" not in strategy.split(","):
        return [i for i in patch if not (isinstance(i, dict) and i.get("$patch") == "replace")]
    if key is None:  # a set of scalars (finalizers)
        return current + [v for v in patch if v not in current]
    if not all(isinstance(i, dict) for i in patch):
        return [i for i in patch if not (isinstance(i, dict) and i.get("$patch") == "replace")]
    if any(i.get("$patch") == "replace" for i in patch):
        return [i for i in patch if i.get("$patch") != "replace"]
    result = [dict(i) if isinstance(i, dict) else i for i in current]
    for item in patch:
        idx = next(
            (n for n, c in enumerate(result) if isinstance(c, dict) and c.get(key) == item.get(key)), None
        )
        if item.get("$patch") == "delete":
            if idx is not None:
                result.pop(idx)
        elif idx is None:
            result.append(_merge_map(rules, path, {}, item))
        else:
            result[idx] = _merge_map(rules, path, result[idx], item)
    return result


def _removed_paths(previous: Any, current: Any) -> Any:
    """A merge patch that nulls what ``previous`` had and ``current`` lacks (maps only)."""
    if not isinstance(previous, dict):
        return None
    out: dict[str, Any] = {}
    cur = current if isinstance(current, dict) else {}
    for key, value in previous.items():
        if key not in cur:
            out[key] = None
        elif isinstance(value, dict):
            sub = _removed_paths(value, cur[key])
            if sub:
                out[key] = sub
    return out


def apply(
    rt: ResourceType, live: dict[str, Any], applied: dict[str, Any], previous: dict[str, Any] | None
) -> dict[str, Any]:
    """Server-side apply, simplified (see the module docstring)."""
    base = live
    if previous is not None:
        removal = _removed_paths(previous, applied)
        if removal:
            removal.pop("apiVersion", None)
            removal.pop("kind", None)
            base = merge_patch(base, removal)
    if rt.strategic:
        merged: dict[str, Any] = strategic_merge(rt, base, applied)
    else:
        merged = merge_patch(base, applied)
    return merged
