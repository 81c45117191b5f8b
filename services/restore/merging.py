"""JSON merge patch (RFC 7386) and Kubernetes strategic merge patch, on plain documents.

Both are needed twice: by resource modifiers (Velero's ``mergePatches`` / ``strategicPatches``) and
by nothing else that has the Go type tables at hand. Strategic merge here follows the Kubernetes
rules for the fields that matter in application manifests, keyed by *field name* instead of by Go
type (kubernetes-asyncio ships no patch metadata):

- maps merge recursively, ``null`` deletes a key (as in a merge patch);
- lists whose field has a merge key (``containers`` by ``name``, ``ports`` by ``containerPort``,
  ``volumeMounts`` by ``mountPath``, ...) merge element by element; an element with
  ``$patch: delete`` removes the matching one; ``$patch: replace`` in a map replaces it whole;
- every other list is replaced, as Kubernetes does for atomic lists and custom resources.
"""

from __future__ import annotations

import copy
from typing import Any

# field name -> merge key, from the Kubernetes API types' patchMergeKey tags.
MERGE_KEYS: dict[str, str] = {
    "containers": "name",
    "initContainers": "name",
    "ephemeralContainers": "name",
    "volumes": "name",
    "env": "name",
    "volumeMounts": "mountPath",
    "volumeDevices": "devicePath",
    "imagePullSecrets": "name",
    "hostAliases": "ip",
    "topologySpreadConstraints": "topologyKey",
    "conditions": "type",
    "resourceClaims": "name",
    "ownerReferences": "uid",
}
# ports: containers' ports merge by containerPort, a Service's by port.
PORT_KEYS = ("containerPort", "port")


def merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7386: returns the patched document (``target`` is not modified)."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    result = copy.deepcopy(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = merge_patch(result.get(key), value)
    return result


def _merge_key(field: str, items: list[Any]) -> str | None:
    if field == "ports":
        for key in PORT_KEYS:
            if all(isinstance(i, dict) and key in i for i in items if i.get("$patch") != "delete"):
                return key
        return None
    return MERGE_KEYS.get(field)


def _merge_list(field: str, original: list[Any], patch: list[Any]) -> list[Any]:
    key = _merge_key(field, [*original, *patch]) if patch else None
    if key is None or not all(isinstance(i, dict) for i in [*original, *patch]):
        return [strategic_merge(None, i) if isinstance(i, dict) else copy.deepcopy(i) for i in patch]
    result = copy.deepcopy(original)
    for item in patch:
        directive = item.get("$patch")
        position = next((n for n, old in enumerate(result) if old.get(key) == item.get(key)), None)
        if directive == "delete":
            if position is not None:
                result.pop(position)
            continue
        if directive == "replace":
            clean = {k: v for k, v in item.items() if k != "$patch"}
            if position is None:
                result.append(clean)
            else:
                result[position] = clean
            continue
        if position is None:
            result.append(strategic_merge(None, item))
        else:
            result[position] = strategic_merge(result[position], item)
    return result


def strategic_merge(target: Any, patch: Any) -> Any:
    """A strategic merge patch of ``target`` by ``patch``; returns a new document."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    if patch.get("$patch") == "replace":
        return {k: copy.deepcopy(v) for k, v in patch.items() if k != "$patch"}
    if patch.get("$patch") == "delete":
        return None
    result = copy.deepcopy(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if key.startswith("$"):
            continue
        if value is None:
            result.pop(key, None)
        elif isinstance(value, list):
            current = result.get(key)
            result[key] = _merge_list(key, current if isinstance(current, list) else [], value)
        elif isinstance(value, dict):
            merged = strategic_merge(result.get(key), value)
            if merged is None:
                result.pop(key, None)
            else:
                result[key] = merged
        else:
            result[key] = value
    return result
