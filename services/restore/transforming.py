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
name the request and the snapshot, so a rollback can find exactly what this request wrote.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from shared.kube.objects import Manifest, Obj, containers_of, dig, pod_specs

NAME_LABEL = "kubernetes.io/metadata.name"
BETA_CLASS_ANNOTATION = "volume.beta.kubernetes.io/storage-class"


@dataclass(frozen=True)
class Transforms:
    namespace_map: dict[str, str] = field(default_factory=dict)
    storage_class_map: dict[str, str] = field(default_factory=dict)
    registry_map: dict[str, str] = field(default_factory=dict)
    labels: dict[str, str] = field(default_factory=dict)  # added to every restored object

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


def add_labels(item: Manifest, labels: dict[str, str]) -> None:
    if labels:
        item.metadata.setdefault("labels", {}).update(labels)


def transform(item: Manifest, t: Transforms) -> Manifest:
    """Apply every mapping of ``t`` to ``item`` (in place) and return it."""
    map_namespaces(item, t)
    map_storage_classes(item, t.storage_class_map)
    for change in map_images(item.obj, t.registry_map):
        item.notes.append(f"image {change}")
    add_labels(item, t.labels)
    return item
