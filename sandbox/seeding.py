"""Seed a cluster from a folder of YAML, over HTTP, as ``kubectl apply --server-side`` would.

Documents are applied in dependency order (CRDs, namespaces, storage, RBAC and config, the rest) with
server-side apply, so seeding twice is harmless. Works against any API server the URL points to.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

import aiohttp
import yaml

ORDER = [
    "CustomResourceDefinition",
    "Namespace",
    "StorageClass",
    "PriorityClass",
    "ClusterRole",
    "ClusterRoleBinding",
    "ServiceAccount",
    "Role",
    "RoleBinding",
    "ConfigMap",
    "Secret",
    "PersistentVolume",
    "PersistentVolumeClaim",
]


def load_documents(paths: Iterable[Path]) -> list[dict[str, Any]]:
    docs: list[dict[str, Any]] = []
    for path in paths:
        files = (
            sorted(p for p in path.rglob("*") if p.suffix in (".yaml", ".yml")) if path.is_dir() else [path]
        )
        for file in files:
            for doc in yaml.safe_load_all(file.read_text()):
                if not doc:
                    continue
                if doc.get("kind") == "List":
                    docs.extend(doc.get("items") or [])
                else:
                    docs.append(doc)
    rank = {k: i for i, k in enumerate(ORDER)}
    return sorted(docs, key=lambda d: rank.get(d.get("kind", ""), len(ORDER)))


class SeedError(RuntimeError):
    pass


async def _resource_for(
    session: aiohttp.ClientSession, server: str, api_version: str, kind: str
) -> tuple[str, bool]:
    base = f"{server}/api/{api_version}" if "/" not in api_version else f"{server}/apis/{api_version}"
    async with session.get(base) as resp:
        if resp.status != 200:
            raise SeedError(f"{api_version} is not served by {server}")
        doc = await resp.json()
    for r in doc["resources"]:
        if r["kind"] == kind and "/" not in r["name"]:
            return f"{base}/{r['name']}", bool(r["namespaced"])
    raise SeedError(f"{kind} is not served in {api_version} by {server}")


async def seed(server: str, paths: Iterable[Path | str], namespace: str | None = None) -> list[str]:
    """Apply every YAML document under ``paths``; returns ``kind/name`` for each applied object."""
    docs = load_documents(Path(p) for p in paths)
    applied = []
    async with aiohttp.ClientSession() as session:
        for doc in docs:
            collection, namespaced = await _resource_for(session, server, doc["apiVersion"], doc["kind"])
            meta = doc.setdefault("metadata", {})
            if namespaced:
                ns = namespace or meta.get("namespace") or "default"
                meta["namespace"] = ns
                prefix, _, plural = collection.rpartition("/")
                collection = f"{prefix}/namespaces/{ns}/{plural}"
            url = f"{collection}/{meta['name']}?fieldManager=sandbox-seed&force=true"
            headers = {"Content-Type": "application/apply-patch+yaml"}
            async with session.patch(url, data=yaml.safe_dump(doc), headers=headers) as resp:
                if resp.status >= 300:
                    raise SeedError(f"{doc['kind']}/{meta['name']}: {resp.status} {await resp.text()}")
            applied.append(f"{doc['kind']}/{meta['name']}")
    return applied
