"""Transforms a request asks for: namespace, storage-class and image-registry mapping, and labels.

Namespace mapping is applied *everywhere a namespace appears*, not only in ``metadata.namespace``:
that gap is what users file against Crane (crane #54, #732: RoleBinding and ClusterRoleBinding
subjects, NetworkPolicy namespace selectors). The places are listed here, one function each, so a
missing one is a one-line fix:

- ``metadata.namespace`` of every namespaced object, and the Namespace objects themselves (their
  name and their ``kubernetes.io/metadata.name`` label);
- RoleBinding / ClusterRoleBinding ``subjects[].namespace``;
- NetworkPolicy ``namespaceSelector`` terms on ``kubernetes.io/metadata.name`` (ingress and egress);
- PersistentVolume ``spec.claimRef.namespace``;
- webhook configurations' and APIServices' ``service.namespace``.

Storage classes are mapped in PVCs, PVs and StatefulSet volumeClaimTemplates (and the legacy beta
annotation); registries in the image of every container, init container and ephemeral container of
every pod template (CronJob job templates included). Every restored object gets the labels that
name the request and the snapshot (and a migrate's plan), so a rollback can find exactly what this
request wrote.

An object captured from a quiesced source (a cutover retried after a failed one, whose source
stayed down) is restored as it was *before* the quiesce (``unquiesced``): its saved replicas or
CronJob suspension back in its spec, Ferry's quiesce annotations gone. It runs first, before the
resource modifiers, whose conditions must see the application as its owners left it.

Namespaces also hide *inside values* (``rewrite_references``, on by default): a service's DNS name
``[<host>.]<service>.<namespace>.svc[.<cluster domain>]`` in container env values, args and
commands, ConfigMap data, an ExternalName Service's ``spec.externalName``, Ingress specs and
Service/Ingress annotations; ``namespaceSelector.matchNames`` and plain ``namespaces:`` string lists
in custom resources (Prometheus ServiceMonitors and the like); Helm's release-namespace annotation.
A DNS name is rewritten only when the service it names is part of the snapshot (``services``) and
its namespace is mapped; one that names a service outside the snapshot is left as it is, with a
note, since nothing this restore writes will answer it. The pattern matches whole names only
(DNS-1123 labels, no name character or further label on either side), so a mapping of ``shop``
never rewrites ``redis.shop.svc.example.org``, ``a.b.redis.shop.svc`` or ``redis.shop-old.svc``. Each rewrite is a note prefixed ``REWROTE``
("rewrote: <field path>: <old> -> <new>"), which the restore report lists apart from warnings.
"""

from __future__ import annotations

import dataclasses
import functools
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from shared.kube.objects import Manifest, Obj, containers_of, dig, pod_specs
from shared.runtime.quiescing import as_before_quiesce

NAME_LABEL = "kubernetes.io/metadata.name"
BETA_CLASS_ANNOTATION = "volume.beta.kubernetes.io/storage-class"
HELM_NAMESPACE_ANNOTATION = "meta.helm.sh/release-namespace"
REWROTE = "rewrote: "  # the prefix of the notes that are rewrites (ObjectResult.rewrites), not warnings


@dataclass(frozen=True)
class Transforms:
    namespace_map: dict[str, str] = field(default_factory=dict)
    storage_class_map: dict[str, str] = field(default_factory=dict)
    registry_map: dict[str, str] = field(default_factory=dict)
    labels: dict[str, str] = field(default_factory=dict)  # added to every restored object
    # (source namespace, name) of the snapshot's Services: the DNS names that may be rewritten
    services: frozenset[tuple[str, str]] = frozenset()
    rewrite_references: bool = True  # namespace references inside values, selectors, Helm annotations
    cluster_domain: str = "cluster.local"

    def namespace(self, name: str) -> str:
        return self.namespace_map.get(name, name) if name else name


def map_image(image: str, registry_map: dict[str, str]) -> str:
    """Rewrite the registry (or registry/path prefix) of ``image``; the longest matching key wins.

    ``nginx:1.25`` is ``docker.io/library/nginx:1.25`` for matching purposes, so a key of
    ``docker.io`` maps images written without a registry, as Kubernetes resolves them.
    """
    if not registry_map:
        return image
    first = image.split("/", 1)[0]
    explicit = "/" in image and ("." in first or ":" in first or first == "localhost")
    if explicit:
        full = image
    else:
        full = f"docker.io/{image}" if "/" in image else f"docker.io/library/{image}"
    for key in sorted(registry_map, key=len, reverse=True):
        prefix = key.rstrip("/")
        for candidate in (image, full) if explicit else (full,):
            if candidate == prefix or candidate.startswith(prefix + "/"):
                return registry_map[key].rstrip("/") + candidate[len(prefix) :]
    return image


def map_images(obj: Obj, registry_map: dict[str, str]) -> list[str]:
    changes = []
    for spec in pod_specs(obj):
        for container in containers_of(spec):
            image = container.get("image")
            if isinstance(image, str):
                mapped = map_image(image, registry_map)
                if mapped != image:
                    container["image"] = mapped
                    changes.append(f"{container.get('name')}: {image} -> {mapped}")
    return changes


def map_storage_classes(item: Manifest, classes: dict[str, str]) -> None:
    if not classes:
        return
    specs: list[Obj] = []
    if item.kind in ("PersistentVolumeClaim", "PersistentVolume"):
        specs.append(item.obj)
    if item.kind == "StatefulSet":
        specs.extend(t for t in dig(item.obj, "spec", "volumeClaimTemplates") or [] if isinstance(t, dict))
    for doc in specs:
        spec = doc.get("spec") or {}
        if spec.get("storageClassName") in classes:
            spec["storageClassName"] = classes[spec["storageClassName"]]
        annotations = dig(doc, "metadata", "annotations") or {}
        if annotations.get(BETA_CLASS_ANNOTATION) in classes:
            annotations[BETA_CLASS_ANNOTATION] = classes[annotations[BETA_CLASS_ANNOTATION]]


def _map_selector(selector: Obj | None, t: Transforms) -> None:
    if not isinstance(selector, dict):
        return
    labels = selector.get("matchLabels")
    if isinstance(labels, dict) and NAME_LABEL in labels:
        labels[NAME_LABEL] = t.namespace(labels[NAME_LABEL])
    for expression in selector.get("matchExpressions") or []:
        if expression.get("key") == NAME_LABEL and isinstance(expression.get("values"), list):
            expression["values"] = [t.namespace(v) for v in expression["values"]]


def map_namespaces(item: Manifest, t: Transforms) -> None:
    if not t.namespace_map:
        return
    obj, meta = item.obj, item.metadata
    if meta.get("namespace"):
        meta["namespace"] = t.namespace(meta["namespace"])
    kind = item.kind
    if kind == "Namespace":
        meta["name"] = t.namespace(meta.get("name", ""))
        labels = meta.get("labels")
        if isinstance(labels, dict) and NAME_LABEL in labels:
            labels[NAME_LABEL] = meta["name"]
    elif kind in ("RoleBinding", "ClusterRoleBinding"):
        for subject in obj.get("subjects") or []:
            if subject.get("namespace"):
                subject["namespace"] = t.namespace(subject["namespace"])
    elif kind == "NetworkPolicy":
        spec = obj.get("spec") or {}
        for rule in spec.get("ingress") or []:
            for peer in rule.get("from") or []:
                _map_selector(peer.get("namespaceSelector"), t)
        for rule in spec.get("egress") or []:
            for peer in rule.get("to") or []:
                _map_selector(peer.get("namespaceSelector"), t)
    elif kind == "PersistentVolume":
        claim = dig(obj, "spec", "claimRef")
        if isinstance(claim, dict) and claim.get("namespace"):
            claim["namespace"] = t.namespace(claim["namespace"])
    elif kind in ("ValidatingWebhookConfiguration", "MutatingWebhookConfiguration"):
        for hook in obj.get("webhooks") or []:
            service = dig(hook, "clientConfig", "service")
            if isinstance(service, dict) and service.get("namespace"):
                service["namespace"] = t.namespace(service["namespace"])
    elif kind == "APIService":
        service = dig(obj, "spec", "service")
        if isinstance(service, dict) and service.get("namespace"):
            service["namespace"] = t.namespace(service["namespace"])
    for spec in pod_specs(obj):  # pod affinity terms may name namespaces too
        for term_list in _affinity_terms(spec):
            for term in term_list:
                if isinstance(term.get("namespaces"), list):
                    term["namespaces"] = [t.namespace(n) for n in term["namespaces"]]


def _affinity_terms(spec: Obj) -> list[list[Obj]]:
    found = []
    for kind in ("podAffinity", "podAntiAffinity"):
        affinity = dig(spec, "affinity", kind) or {}
        required = affinity.get("requiredDuringSchedulingIgnoredDuringExecution") or []
        preferred = [
            w.get("podAffinityTerm") or {}
            for w in affinity.get("preferredDuringSchedulingIgnoredDuringExecution") or []
        ]
        found.extend([required, preferred])
    return found


def with_snapshot(t: Transforms, captured: Iterable[Manifest]) -> Transforms:
    """``t`` knowing the Services of the snapshot (``captured``, before any mapping)."""
    found = {(m.namespace, m.name) for m in captured if m.kind == "Service" and m.group == ""}
    return dataclasses.replace(t, services=t.services | frozenset(found))


_LABEL = r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?"  # a DNS-1123 label


@functools.lru_cache(maxsize=8)
def service_name_pattern(cluster_domain: str) -> re.Pattern[str]:
    """``[<host>.]<service>.<namespace>.svc[.<cluster domain>]`` as a whole name: no name character
    or dot before it, no name character or further label after it (a final root dot is allowed)."""
    domain = re.escape(cluster_domain.strip("."))
    return re.compile(
        rf"(?<![\w.-])(?:{_LABEL}\.)?(?P<service>{_LABEL})\.(?P<namespace>{_LABEL})"
        rf"\.svc(?:\.{domain})?(?![\w-]|\.\w)"
    )


class _Slot(NamedTuple):
    """A string inside a document: where it is (``holder[key]``), its path and how a person names it."""

    holder: Any  # the dict or list holding the value
    key: str | int
    path: str
    label: str


def _step(path: str, key: str | int) -> str:
    if isinstance(key, int):
        return f"{path}[{key}]"
    if re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", key):
        return f"{path}.{key}" if path else key
    return f'{path}["{key}"]'


def _strings(node: Any, path: str) -> Iterator[_Slot]:
    """Every string value under ``node`` (a dict or a list), depth first."""
    pairs = node.items() if isinstance(node, dict) else enumerate(node) if isinstance(node, list) else ()
    for key, value in pairs:
        where = _step(path, key)
        if isinstance(value, str):
            yield _Slot(node, key, where, where)
        else:
            yield from _strings(value, where)


def _pod_spec_paths(obj: Obj) -> list[tuple[str, Obj]]:
    """``pod_specs`` with the path of each."""
    paths = ("spec", "spec.template.spec", "spec.jobTemplate.spec.template.spec")
    by_id = {id(spec): spec for spec in pod_specs(obj)}
    found = []
    for path in paths:
        spec = dig(obj, *path.split("."))
        if isinstance(spec, dict) and id(spec) in by_id:
            found.append((path, spec))
    return found


def _value_slots(item: Manifest) -> Iterator[_Slot]:
    """The strings in which a service's DNS name is looked for."""
    obj = item.obj
    for spec_path, spec in _pod_spec_paths(obj):
        for group in ("initContainers", "containers", "ephemeralContainers"):
            for i, container in enumerate(spec.get(group) or []):
                if not isinstance(container, dict):
                    continue
                at, name = f"{spec_path}.{group}[{i}]", container.get("name", "?")
                for j, env in enumerate(container.get("env") or []):
                    if isinstance(env, dict) and isinstance(env.get("value"), str):
                        yield _Slot(env, "value", f"{at}.env[{j}].value", f"env {env.get('name')}")
                for part in ("command", "args"):
                    values = container.get(part)
                    for j, value in enumerate(values if isinstance(values, list) else []):
                        if isinstance(value, str):
                            yield _Slot(values, j, f"{at}.{part}[{j}]", f"container {name} {part}")
    if item.kind == "ConfigMap" and item.group == "" and isinstance(obj.get("data"), dict):
        for key, value in obj["data"].items():
            if isinstance(value, str):
                yield _Slot(obj["data"], key, _step("data", key), f"data {key}")
    if (item.kind, item.group) in (("Service", ""), ("Ingress", "networking.k8s.io")):
        annotations = dig(obj, "metadata", "annotations")
        if isinstance(annotations, dict):
            for key, value in annotations.items():
                if isinstance(value, str):
                    yield _Slot(annotations, key, _step("metadata.annotations", key), f"annotation {key}")
        body = obj.get("spec")
        if item.kind == "Ingress" and isinstance(body, dict):
            yield from _strings(body, "spec")
        elif isinstance(body, dict) and isinstance(body.get("externalName"), str):
            yield _Slot(body, "externalName", "spec.externalName", "spec.externalName")


def rewrite_service_names(item: Manifest, t: Transforms) -> None:
    """Rewrite the namespace of the snapshot's services' DNS names in ``item``'s values; note the
    names that point outside the snapshot."""
    pattern = service_name_pattern(t.cluster_domain)
    warned: set[str] = set()
    for slot in _value_slots(item):
        text: str = slot.holder[slot.key]

        def one(match: re.Match[str], slot: _Slot = slot) -> str:
            old, namespace = match[0], match["namespace"]
            if (namespace, match["service"]) not in t.services:
                note = f"{slot.label}: {old} points outside the snapshot: left as it is"
                if note not in warned:
                    warned.add(note)
                    item.notes.append(note)
                return old
            mapped = t.namespace(namespace)
            if mapped == namespace:
                return old
            start, end = match.start("namespace") - match.start(), match.end("namespace") - match.start()
            new = old[:start] + mapped + old[end:]
            item.notes.append(f"{REWROTE}{slot.path}: {old} -> {new}")
            return new

        rewritten = pattern.sub(one, text)
        if rewritten != text:
            slot.holder[slot.key] = rewritten


def is_custom(item: Manifest) -> bool:
    """A kind Kubernetes does not serve itself (its group has a dot and is not ``*.k8s.io``)."""
    return "." in item.group and not item.group.endswith(".k8s.io")


def _namespace_lists(node: Any, path: str, skip: set[int]) -> Iterator[tuple[list[Any], str]]:
    """``namespaceSelector.matchNames`` and ``namespaces`` string lists under ``node``."""
    if id(node) in skip:
        return
    pairs = node.items() if isinstance(node, dict) else enumerate(node) if isinstance(node, list) else ()
    for key, value in pairs:
        where = _step(path, key)
        if isinstance(value, list) and value and all(isinstance(v, str) for v in value):
            selector = path == "namespaceSelector" or path.endswith(".namespaceSelector")
            named = key == "namespaces" or (key == "matchNames" and selector)
            if named:
                yield value, where
        elif isinstance(value, (dict, list)):
            yield from _namespace_lists(value, where, skip)


def map_custom_namespace_lists(item: Manifest, t: Transforms) -> None:
    """A custom resource's namespace lists follow the mapping (its pod templates are mapped already)."""
    if not is_custom(item):
        return
    skip = {id(spec) for spec in pod_specs(item.obj)}
    body = {k: v for k, v in item.obj.items() if k not in ("metadata", "status")}
    for values, path in _namespace_lists(body, "", skip):
        for i, name in enumerate(values):
            mapped = t.namespace(name)
            if mapped != name:
                values[i] = mapped
                item.notes.append(f"{REWROTE}{path}[{i}]: {name} -> {mapped}")


def map_helm_namespace(item: Manifest, t: Transforms) -> None:
    annotations = item.metadata.get("annotations")
    if not isinstance(annotations, dict) or not isinstance(annotations.get(HELM_NAMESPACE_ANNOTATION), str):
        return
    old = annotations[HELM_NAMESPACE_ANNOTATION]
    if (new := t.namespace(old)) != old:
        annotations[HELM_NAMESPACE_ANNOTATION] = new
        path = _step("metadata.annotations", HELM_NAMESPACE_ANNOTATION)
        item.notes.append(f"{REWROTE}{path}: {old} -> {new}")


def rewrite_references(item: Manifest, t: Transforms) -> None:
    """The namespace references inside ``item``'s values (with a mapping and ``rewrite_references``)."""
    if not t.namespace_map or not t.rewrite_references:
        return
    rewrite_service_names(item, t)
    map_custom_namespace_lists(item, t)
    map_helm_namespace(item, t)


def unquiesced(item: Manifest) -> Manifest:
    """``item`` as it was before a cutover quiesced its source (in place; unchanged when it was not):
    a restore must never land an application at zero replicas or with its CronJobs suspended."""
    before = as_before_quiesce(item.obj)
    if before is item.obj:
        return item
    for field_name in ("replicas", "suspend"):
        old, new = dig(item.obj, "spec", field_name), dig(before, "spec", field_name)
        if old != new:
            item.notes.append(f"{REWROTE}spec.{field_name}: {old} -> {new} (as before the source's quiesce)")
    item.obj = before
    return item


def add_labels(item: Manifest, labels: dict[str, str]) -> None:
    if labels:
        item.metadata.setdefault("labels", {}).update(labels)


def transform(item: Manifest, t: Transforms) -> Manifest:
    """Apply every mapping of ``t`` to ``item`` (in place) and return it."""
    map_namespaces(item, t)
    rewrite_references(item, t)
    map_storage_classes(item, t.storage_class_map)
    for change in map_images(item.obj, t.registry_map):
        item.notes.append(f"image {change}")
    add_labels(item, t.labels)
    return item
