"""Reading a Ferry snapshot back from the target repository: its manifests and its volume records.

A Ferry snapshot is the set of repository records sharing one group id: one ``blob`` record holding
the manifests document and one ``tree`` record per volume (docs/repository.md). The manifests blob is
written by the snapshot service; this reader accepts the shapes that service and people produce, so
a format change there does not silently restore nothing:

- a JSON object ``{"items": [...]}`` (a Kubernetes ``List``) or a JSON array, optionally gzipped,
  whose items are objects or ``{"resource": "deployments", "object": {...}, "namespaced": true}``;
- a tar archive (optionally gzipped) in Velero's layout,
  ``resources/<resource.group>/{cluster|namespaces/<ns>}/<name>.json``;
- multi-document YAML.

An inventory document (``shared.contracts.inventory``: ``items`` of ``{key, resource, object, ...}``
plus ``references``) is the first shape; its reference graph orders the restore too.

Volume records name their claim with the tags ``ferry.dev/namespace`` and ``ferry.dev/pvc`` (or
``namespace``/``pvc``), or with a record name ``<namespace>/<pvc>``.
"""

from __future__ import annotations

import gzip
import io
import json
import tarfile
from dataclasses import dataclass
from typing import Any

import yaml

from shared.contracts.errors import PermanentError
from shared.kube.objects import Manifest
from shared.repository import Repository, Snapshot, read_blob

MANIFEST_NAMES = ("manifests", "manifests.json", "manifests.tar.gz", "manifests.tar")


@dataclass(frozen=True)
class VolumeRecord:
    snapshot_id: str
    namespace: str
    claim: str
    size: int
    path: str = ""  # restore.volume_paths: only this path of the volume is restored


def _from_item(item: Any) -> Manifest | None:
    if not isinstance(item, dict):
        return None
    if "object" in item and isinstance(item["object"], dict):
        resource = str(item.get("resource", "")).split(".", 1)[0]
        namespaced = item.get("namespaced")
        owned = item.get("owned")
        return Manifest(
            item["object"],
            resource,
            namespaced if isinstance(namespaced, bool) else None,
            owned=owned if isinstance(owned, bool) else None,
        )
    if item.get("kind") and item.get("apiVersion"):
        return Manifest(item)
    return None


def _from_tar(data: bytes) -> list[Manifest]:
    found = []
    with tarfile.open(fileobj=io.BytesIO(data)) as archive:
        for member in archive.getmembers():
            parts = member.name.strip("./").split("/")
            if (
                not member.isfile()
                or len(parts) < 4
                or parts[0] != "resources"
                or not member.name.endswith(".json")
            ):
                continue
            if "-preferredversion" not in member.name and len(parts) > 5:
                continue  # another API version of an object already present in the preferred one
            handle = archive.extractfile(member)
            if handle is None:
                continue
            obj = json.loads(handle.read())
            resource = parts[1].split(".", 1)[0]
            found.append(Manifest(obj, resource, "namespaces" in parts))
    return found


def references(data: bytes) -> list[tuple[str, str]]:
    """(dependent key, dependency key) pairs of an inventory document's reference graph, if any."""
    if data[:2] == b"\x1f\x8b":
        data = gzip.decompress(data)
    try:
        doc = json.loads(data)
    except ValueError:
        return []
    if not isinstance(doc, dict):
        return []
    edges = []
    for ref in doc.get("references") or []:
        if isinstance(ref, dict) and ref.get("source") and ref.get("target") and not ref.get("missing"):
            edges.append((str(ref["source"]), str(ref["target"])))
    return edges


def parse(data: bytes) -> list[Manifest]:
    """Every object of a manifests document (see the module docstring for the accepted shapes)."""
    if data[:2] == b"\x1f\x8b":
        data = gzip.decompress(data)
    if len(data) > 262 and data[257:262] == b"ustar":
        return _from_tar(data)
    text = data.decode("utf-8")
    try:
        doc: Any = json.loads(text)
        docs = doc if isinstance(doc, list) else (doc.get("items", [doc]) if isinstance(doc, dict) else [])
    except ValueError:
        try:
            docs = [d for d in yaml.safe_load_all(text) if d]
        except yaml.YAMLError as e:
            raise PermanentError(
                f"the snapshot's manifests are neither JSON, YAML nor a tar archive: {e}"
            ) from e
        if len(docs) == 1 and isinstance(docs[0], dict) and "items" in docs[0] and "kind" not in docs[0]:
            docs = docs[0]["items"]
    items = [_from_item(d) for d in docs]
    return [m for m in items if m is not None]


def _claim_of(record: Snapshot) -> tuple[str, str] | None:
    tags = record.tags
    namespace = tags.get("ferry.dev/namespace") or tags.get("namespace")
    claim = tags.get("ferry.dev/pvc") or tags.get("pvc")
    if namespace and claim:
        return namespace, claim
    if record.name.count("/") == 1:
        namespace, _, claim = record.name.partition("/")
        return namespace, claim
    return None


@dataclass
class Captured:
    """One Ferry snapshot as restore sees it."""

    items: list[Manifest]
    volumes: dict[tuple[str, str], VolumeRecord]  # by source namespace and claim
    edges: list[tuple[str, str]]  # the inventory's references: (dependent, dependency) keys


def load(repo: Repository, group: str) -> Captured:
    """The manifests, volume records and reference graph of one Ferry snapshot."""
    records = repo.snapshots(group=group)
    if not records:
        raise PermanentError(f"no snapshot {group!r} in the repository at {repo.store.location}")
    blobs = [(sid, r) for sid, r in records if r.kind == "blob"]
    chosen = [(sid, r) for sid, r in blobs if r.name in MANIFEST_NAMES] or blobs
    if not chosen:
        raise PermanentError(f"snapshot {group} has no manifests record")
    data = read_blob(repo, chosen[-1][0])
    manifests = parse(data)
    volumes = {}
    for snapshot_id, record in records:
        if record.kind != "tree":
            continue
        claim = _claim_of(record)
        if claim is not None:
            volumes[claim] = VolumeRecord(snapshot_id, claim[0], claim[1], record.size)
    return Captured(manifests, volumes, references(data))
