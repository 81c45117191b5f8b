"""Comparing an object as a snapshot holds it with the object a cluster holds now.

Used by the restore step (is a live object already the snapshot's version? what does a dry run or an
update change?) and by the verify step (is the target what the snapshot says?). One definition, so
the two steps can never disagree about "equal".

The comparison has two directions:

- **snapshot → target**: every field the snapshot's document sets must have the same value in the
  live object ("spec.replicas: 2 in the target, 3 in the snapshot");
- **target → snapshot**: a field only the live object has is a difference *when it is someone's
  content*, never when it is the server's default (a Service's cluster IP, a Deployment's
  ``strategy``, a pod's ``dnsPolicy``). Two sources say whose a field is:

  1. maps whose every key is user content: ``data``, ``binaryData`` and ``stringData`` of
     ConfigMaps and Secrets, and ``metadata.labels`` / ``metadata.annotations``, where keys under the
     prefixes Kubernetes reserves for its own components (``kubernetes.io/``, ``*.k8s.io/``,
     ``kubectl.kubernetes.io/last-applied-configuration``, ``deployment.kubernetes.io/revision``,
     ``pv.kubernetes.io/*``, ...; ``app.kubernetes.io/`` is the user's) and Ferry's own
     (``ferry.dev/``) are left out; and, as user content too, a selector's ``matchLabels`` (when the
     snapshot has a selector), a pod template's labels and annotations and a Service's selector,
     leaving out also the keys the server writes there (``controller-uid``, ``job-name``,
     ``pod-template-hash``). These are two-way always;
  2. ``metadata.managedFields``, when the live object has them: a field owned by a writer other than
     Ferry and the control plane's own components (``kube-controller-manager``, ...). On a real API
     server an *Apply* entry owns exactly what its author applied, but an *Update* entry of the
     writer that **created** the object also owns every default the server filled in (defaulting
     runs when the request is decoded, before ownership is computed: ``kubectl create`` owns a
     Deployment's ``strategy`` and ``revisionHistoryLimit``). No field says which entry created the
     object, so an Update entry counts only when it owns nothing the snapshot also sets: a writer
     that only added fields (``kubectl edit`` adding a ``nodeSelector``) is seen, a creator is not.

  ``status`` and the metadata the server owns (uid, resourceVersion, managedFields, ...) are never
  compared, and neither are the labels Ferry stamps on what it restores (an object restored by an
  earlier request is not "different").

``target_only`` gives the target-only fields as paths, so that an update can remove exactly those.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from typing import Any

Obj = dict[str, Any]
Path = tuple[str | int, ...]  # keys of maps, indexes of lists

REQUEST_LABEL = "ferry.dev/request"
SNAPSHOT_LABEL = "ferry.dev/snapshot"
# shared.contracts.migrations.PLAN_LABEL: the staged migration an object belongs to
PLAN_LABEL = "ferry.dev/migration"
FERRY_LABELS = (REQUEST_LABEL, SNAPSHOT_LABEL, PLAN_LABEL)
FERRY_DOMAIN = "ferry.dev"
FERRY_MANAGER_PREFIX = "ferry"  # shared.kube.cluster.FIELD_MANAGER and any ferry-* manager
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
# Writers that are the control plane itself: what they set is never the user's content.
SYSTEM_MANAGERS = frozenset(
    {
        "kube-apiserver",
        "kube-controller-manager",
        "kube-scheduler",
        "kubelet",
        "kube-proxy",
        "cloud-controller-manager",
    }
)
RESERVED_DOMAINS = ("kubernetes.io", "k8s.io")  # and their subdomains (labels docs: reserved prefixes)
USER_DOMAINS = ("app.kubernetes.io",)  # the recommended labels: set by people and their tools
CONTENT_MAPS = {("v1", "ConfigMap"): ("data", "binaryData"), ("v1", "Secret"): ("data", "stringData")}
SERVER_FILLED_SECRETS = {"kubernetes.io/service-account-token"}  # the token controller fills ``data``
METADATA_MAPS = ("labels", "annotations")
# Maps inside an object that are wholly someone's content, like its own labels: a selector's labels,
# a pod template's labels and annotations (two-way when the snapshot has the map). The server puts
# only its own keys there — a Job's ``controller-uid`` and ``job-name``, a ReplicaSet's
# ``pod-template-hash`` — left out like the reserved prefixes.
NESTED_LABEL_MAPS: tuple[Path, ...] = (
    ("spec", "selector", "matchLabels"),
    ("spec", "template", "metadata", "labels"),
    ("spec", "template", "metadata", "annotations"),
    ("spec", "jobTemplate", "metadata", "labels"),
    ("spec", "jobTemplate", "metadata", "annotations"),
    ("spec", "jobTemplate", "spec", "template", "metadata", "labels"),
    ("spec", "jobTemplate", "spec", "template", "metadata", "annotations"),
)
SERVICE_SELECTOR: Path = ("spec", "selector")  # a Service's is a plain map
SERVER_LABELS = frozenset(
    {"controller-uid", "job-name", "pod-template-hash", "controller-revision-hash", "pod-template-generation"}
)
_MISSING = object()


def _show(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def show_path(path: Path) -> str:
    """``("spec", "ports", 0, "port")`` → ``spec.ports[0].port``."""
    text = ""
    for part in path:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else part)
    return text


def differences(desired: Any, live: Any) -> list[str]:
    """How ``live`` differs from ``desired``, one line per field, for a person to read.

    First the fields ``desired`` sets whose value differs ("spec.replicas: 2 in the target, 3 in the
    snapshot"), then the fields only ``live`` has that are someone's content ("data.extra: only in
    the target"; see the module docstring for which).
    """
    found = _one_way(desired, live, ())
    if isinstance(desired, dict) and isinstance(live, dict):
        found += [f"{show_path(p)}: only in the target" for p in target_only(desired, live)]
    return found


def _one_way(desired: Any, live: Any, path: Path) -> list[str]:
    if isinstance(desired, dict) and isinstance(live, dict):
        found = []
        for key, value in desired.items():
            if not path and key in IGNORED_FIELDS:
                continue
            if path == ("metadata",) and key in IGNORED_METADATA:
                continue
            sub = (*path, key)
            if key not in live:
                found.append(f"{show_path(sub)}: absent in the target, {_show(value)} in the snapshot")
            else:
                found.extend(_one_way(value, live[key], sub))
        return found
    if isinstance(desired, list) and isinstance(live, list):
        if len(desired) != len(live):
            return [f"{show_path(path)}: {len(live)} item(s) in the target, {len(desired)} in the snapshot"]
        found = []
        for i, (d, v) in enumerate(zip(desired, live, strict=True)):
            found.extend(_one_way(d, v, (*path, i)))
        return found
    if desired != live:
        return [f"{show_path(path)}: {_show(live)} in the target, {_show(desired)} in the snapshot"]
    return []


def target_only(desired: Obj, live: Obj) -> list[Path]:
    """Paths of the fields only ``live`` has that are someone's content, not the server's (sorted).

    A path never crosses into an element of a list the snapshot also has (the list as a whole is
    compared, and written, by ``desired``'s version); a list the snapshot lacks is one path.
    """
    found: set[Path] = set()
    meta_desired = desired.get("metadata") or {}
    for name in METADATA_MAPS:
        found |= _extra_keys(
            ("metadata", name), meta_desired.get(name), (live.get("metadata") or {}).get(name), labels=True
        )
    maps = CONTENT_MAPS.get((str(live.get("apiVersion")), str(live.get("kind"))), ())
    if live.get("type") in SERVER_FILLED_SECRETS:
        maps = ()
    for name in maps:
        have = desired.get(name)
        if live.get("kind") == "Secret" and name == "data":  # stringData is written into data
            have = {**(desired.get("stringData") or {}), **(have or {})}
        found |= _extra_keys((name,), have, live.get(name))
    nested = [*NESTED_LABEL_MAPS, *([SERVICE_SELECTOR] if live.get("kind") == "Service" else [])]
    for path in nested:
        have = _at(desired, path)
        # A selector the snapshot lacks is the server's (a Job's); labels and annotations are the
        # user's whether or not the snapshot has any.
        if isinstance(have, dict) or path[-1] in METADATA_MAPS:
            found |= _extra_keys(path, have, _at(live, path), labels=True)
    found |= set(_owned_by_others(desired, live))
    return sorted(found, key=lambda p: tuple(str(part) for part in p))


def _at(obj: Any, path: Path) -> Any:
    for key in path:
        if not isinstance(obj, dict):
            return None
        obj = obj.get(key)
    return obj


def _extra_keys(path: Path, desired: Any, live: Any, *, labels: bool = False) -> set[Path]:
    """Keys only ``live``'s map has; of a label, annotation or selector map, the user's keys only."""
    if not isinstance(live, dict):
        return set()
    have = desired if isinstance(desired, dict) else {}
    if labels:
        return {(*path, k) for k in live if k not in have and is_users_key(k) and k not in SERVER_LABELS}
    return {(*path, k) for k in live if k not in have}


def is_users_key(key: str) -> bool:
    """Is a label or annotation key the user's (not Ferry's, not reserved for Kubernetes' components)?"""
    domain = key.split("/", 1)[0] if "/" in key else ""
    if domain == FERRY_DOMAIN or domain.endswith("." + FERRY_DOMAIN):
        return False
    if domain in USER_DOMAINS:
        return True
    return not any(domain == d or domain.endswith("." + d) for d in RESERVED_DOMAINS)


def is_users_manager(entry: Any) -> bool:
    """Is a managedFields entry a writer's other than Ferry and the control plane, on the object itself?"""
    if not isinstance(entry, dict) or entry.get("subresource") or entry.get("fieldsType") != "FieldsV1":
        return False
    manager = str(entry.get("manager") or "")
    return not manager.startswith(FERRY_MANAGER_PREFIX) and manager not in SYSTEM_MANAGERS


def _owned_by_others(desired: Obj, live: Obj) -> Iterator[Path]:
    for entry in (live.get("metadata") or {}).get("managedFields") or []:
        if not is_users_manager(entry) or not isinstance(entry.get("fieldsV1"), dict):
            continue
        fields = {k: v for k, v in entry["fieldsV1"].items() if k not in ("f:metadata", "f:status")}
        owned = list(_owned(fields, desired, live, ()))
        if entry.get("operation") != "Apply" and any(present for _, present in owned):
            continue  # maybe the entry of the object's creator: it owns the server's defaults too
        yield from (path for path, present in owned if not present)


def _owned(fields: Obj, desired: Any, live: Any, path: Path) -> Iterator[tuple[Path, bool]]:
    """Each field of ``fields`` (a FieldsV1 set) that ``live`` has: its path, and whether ``desired``
    sets it. Descends to the leaves, except into a list ``desired`` lacks (then the list is one)."""
    for key, children in fields.items():
        if key == ".":
            continue
        found = _child(key, desired, live)
        if found is None:
            continue
        part, d, v = found
        sub = (*path, part)
        if isinstance(part, int) and d is _MISSING:
            continue  # an element of a list the snapshot has: the list is compared as a whole
        if len(path) >= 1 and path[-1] in METADATA_MAPS and isinstance(part, str) and not is_users_key(part):
            continue
        leaf = not isinstance(children, dict) or not (children.keys() - {"."})
        if leaf or (d is _MISSING and isinstance(v, list)):
            yield sub, d is not _MISSING
        else:
            yield from _owned(children, d, v, sub)


def _child(key: str, desired: Any, live: Any) -> tuple[str | int, Any, Any] | None:
    """The member a FieldsV1 key names: (its path part, its value in desired or _MISSING, in live)."""
    kind, _, name = key.partition(":")
    if kind == "f":
        if not isinstance(live, dict) or name not in live:
            return None
        return name, desired.get(name, _MISSING) if isinstance(desired, dict) else _MISSING, live[name]
    if not isinstance(live, list):
        return None
    try:
        wanted = json.loads(name) if kind in ("k", "v") else int(name)
    except ValueError:
        return None
    index = next((n for n, item in enumerate(live) if _matches(kind, wanted, n, item)), None)
    if index is None:
        return None
    mine = (
        [item for n, item in enumerate(desired) if _matches(kind, wanted, n, item)]
        if isinstance(desired, list)
        else []
    )
    return index, mine[0] if mine else _MISSING, live[index]


def _matches(kind: str, wanted: Any, index: int, item: Any) -> bool:
    if kind == "k":
        return (
            isinstance(item, dict)
            and isinstance(wanted, dict)
            and all(item.get(k) == v for k, v in wanted.items())
        )
    if kind == "v":
        return bool(item == wanted)
    return isinstance(wanted, int) and index == wanted


def without_ferry_labels(obj: Obj) -> Obj:
    """``obj`` minus the labels Ferry adds: an object restored by an earlier request is not "different"."""
    labels = (obj.get("metadata") or {}).get("labels") or {}
    if not any(k in labels for k in FERRY_LABELS):
        return obj
    meta = {**obj["metadata"], "labels": {k: v for k, v in labels.items() if k not in FERRY_LABELS}}
    if not meta["labels"]:
        del meta["labels"]
    return {**obj, "metadata": meta}


SENSITIVE_ANNOTATION = "ferry.dev/sensitive"  # "true" on any object: its values are a Secret's
VALUE_MAPS = ("data", "stringData", "binaryData")
LAST_APPLIED = "kubectl.kubernetes.io/last-applied-configuration"


def is_sensitive(obj: Obj) -> bool:
    """A Secret, or an object its owner marks ``ferry.dev/sensitive: "true"`` (say, a ConfigMap of keys)."""
    if obj.get("kind") == "Secret" and obj.get("apiVersion") == "v1":
        return True
    annotations = (obj.get("metadata") or {}).get("annotations") or {}
    return isinstance(annotations, dict) and str(annotations.get(SENSITIVE_ANNOTATION, "")).lower() == "true"


def _digest(value: Any) -> str:
    return "sha256:" + hashlib.sha256(str(value).encode()).hexdigest()


def digested(obj: Obj) -> Obj:
    """``obj`` with each value of a sensitive object (``is_sensitive``: a Secret, or marked so) replaced
    by its SHA-256: its ``data``, ``stringData`` and ``binaryData``, and the ``last-applied-configuration``
    annotation ``kubectl apply`` leaves (it repeats them).

    Documents that describe an application (the inventory, the restore's rendered objects and its
    expectation) are stored with the request, where these values must not be. Comparing digests proves
    the same thing without them.
    """
    if not is_sensitive(obj):
        return obj
    out = dict(obj)
    for key in VALUE_MAPS:
        values = obj.get(key)
        if isinstance(values, dict):
            out[key] = {k: _digest(v) for k, v in values.items()}
    meta = obj.get("metadata") or {}
    annotations = meta.get("annotations")
    if isinstance(annotations, dict) and LAST_APPLIED in annotations:
        out["metadata"] = {
            **meta,
            "annotations": {**annotations, LAST_APPLIED: _digest(annotations[LAST_APPLIED])},
        }
    return out
