"""What of a snapshot a restore takes: the request's scope applied to the captured objects.

A snapshot holds more than one restore may need. The request's namespaces, include/exclude resource
types and label selector (``source``) apply at restore as they did at capture, and
``restore.resources`` / ``restore.volume_paths`` narrow it to named objects and single paths of
volumes. Restoring everything when one object was asked for would be a safety bug, so:

- an entry of ``restore.resources`` or ``restore.volume_paths`` that names nothing in the snapshot,
  and a selection that leaves nothing, are errors that say what the snapshot holds instead;
- the Namespace of a selected object is taken with it (it must exist to hold it), as Velero does;
  so is the claim of a selected volume path;
- what is left out is counted, not reported object by object, and the verify step checks only
  what was selected;
- a **stage** of a staged migration (``request.stage``) takes only the PersistentVolumeClaims (and
  their Namespaces): it pre-seeds the target's volumes while the source keeps serving, and starting
  the application there too would run it in two clusters at once.

Types are named as kubectl and Velero name them: the kind (``deployment``), the plural
(``deployments``) or the group-resource (``deployments.apps``), case-insensitively.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

from shared.contracts.errors import PermanentError
from shared.contracts.requests import MobilityRequest
from shared.kube import selecting
from shared.kube.objects import Manifest


def names_of(item: Manifest) -> set[str]:
    """The names a type goes by: kind, plural, group-resource."""
    return {item.kind.lower(), item.resource.lower(), item.gr.lower()}


def _typed(item: Manifest, wanted: list[str]) -> bool:
    lowered = {w.lower() for w in wanted}
    return "*" in lowered or bool(lowered & names_of(item))


@dataclass
class Selection:
    items: list[Manifest] = field(default_factory=list)
    left_out: int = 0
    paths: dict[tuple[str, str], str] = field(default_factory=dict)  # (namespace, claim) -> path


def _named(entry: str, item: Manifest) -> bool:
    parts = entry.split("/")
    if len(parts) == 2:
        kind, name, namespace = parts[0], parts[1], None
    elif len(parts) == 3:
        kind, namespace, name = parts
    else:
        return False
    return _typed(item, [kind]) and item.name == name and (namespace is None or item.namespace == namespace)


def _volume_paths(entries: list[str], captured: list[Manifest]) -> dict[tuple[str, str], str]:
    claims = {(m.namespace, m.name) for m in captured if m.kind == "PersistentVolumeClaim"}
    paths: dict[tuple[str, str], str] = {}
    for entry in entries:
        where, sep, path = entry.partition(":")
        namespace, _, claim = where.partition("/")
        if not sep or not namespace or not claim or not path.strip("/"):
            raise PermanentError(f"restore.volume_paths: {entry[:100]!r} is not <namespace>/<claim>:<path>")
        if (namespace, claim) not in claims:
            known = ", ".join(sorted(f"{n}/{c}" for n, c in claims)) or "none"
            raise PermanentError(
                f"restore.volume_paths: the snapshot has no claim {namespace}/{claim} (it has: {known})"
            )
        if (namespace, claim) in paths:
            raise PermanentError(
                f"restore.volume_paths: one path per claim ({namespace}/{claim} is named twice)"
            )
        paths[(namespace, claim)] = path.strip("/")
    return paths


def _claim(item: Manifest) -> bool:
    return item.kind == "PersistentVolumeClaim" and item.group == ""


def _outside(item: Manifest, namespaces: set[str]) -> bool:
    """A namespaced object (or a Namespace) not in the request's namespaces; cluster-scoped ones are in."""
    if item.kind == "Namespace":
        return item.name not in namespaces
    return bool(item.namespace) and item.namespace not in namespaces


def _holds(captured: list[Manifest]) -> str:
    counts = Counter(item.gr for item in captured)
    return ", ".join(f"{gr}={n}" for gr, n in sorted(counts.items())[:12]) or "nothing"


def select(captured: list[Manifest], request: MobilityRequest) -> Selection:
    """The captured objects this request restores; raises PermanentError for an empty or wrong selection."""
    source, scope = request.source, request.restore
    try:
        selector = selecting.parse(source.selector)
    except selecting.SelectorError as e:
        raise PermanentError(f"source.selector: {e}") from e
    paths = _volume_paths(scope.volume_paths, captured)
    for entry in scope.resources:
        if not any(_named(entry, item) for item in captured):
            raise PermanentError(
                f"restore.resources: the snapshot has no {entry[:100]!r} (it holds: {_holds(captured)})"
            )
    namespaces = set(source.namespaces)
    chosen: list[Manifest] = []
    for item in captured:
        if (item.namespace, item.name) in paths and item.kind == "PersistentVolumeClaim":
            chosen.append(item)  # the claim of a volume path comes with it
            continue
        if namespaces and _outside(item, namespaces):
            continue
        if source.include_resources and not _typed(item, source.include_resources):
            continue
        if source.exclude_resources and _typed(item, source.exclude_resources):
            continue
        if selector and not selecting.matches(selector, item.metadata.get("labels") or {}):
            continue
        if scope.resources and not any(_named(entry, item) for entry in scope.resources):
            continue
        if paths and not scope.resources:
            continue  # only volume paths were asked for: their claims (and namespaces), nothing else
        if request.stage and not _claim(item):
            continue  # a stage pre-seeds volumes; the workloads come with the cutover
        chosen.append(item)
    if not [item for item in chosen if item.kind != "Namespace"]:
        fields = {
            "namespaces": source.namespaces,
            "include_resources": source.include_resources,
            "exclude_resources": source.exclude_resources,
            "selector": source.selector,
            "resources": scope.resources,
        }
        asked = [f"{name} {value}" for name, value in fields.items() if value]
        asked += ["stage (PersistentVolumeClaims only)"] if request.stage else []
        raise PermanentError(
            f"nothing to restore: no object of the snapshot matches {'; '.join(asked) or 'the request'} "
            f"(it holds: {_holds(captured)})"
        )
    wanted_namespaces = {item.namespace for item in chosen if item.namespace}
    picked = {id(item) for item in chosen}
    for item in captured:  # the namespaces of what was chosen, which must exist to hold it
        if item.kind == "Namespace" and item.name in wanted_namespaces and id(item) not in picked:
            chosen.append(item)
            picked.add(id(item))
    order = {id(item): i for i, item in enumerate(captured)}
    chosen.sort(key=lambda item: order[id(item)])
    return Selection(items=chosen, left_out=len(captured) - len(chosen), paths=paths)
