"""Which resource types a cluster serves, from its discovery API — never from a hard-coded list.

``ResourceMap`` reads ``/api/v1`` and every group's *preferred* version from ``/apis``, keeps the
result in memory (no cache file: kubernetes-asyncio's DynamicClient shares one in the temp dir
between processes and clusters), and refreshes it when a caller asks for a type it does not know,
so a CRD created a moment ago is found. Each ``Resource`` knows whether it is a custom resource
(a CustomResourceDefinition ``<plural>.<group>`` exists): custom resources never get a strategic
merge patch, which the API server refuses with 415.

Resource names follow kubectl's *group-resource* form: ``configmaps``, ``deployments.apps``,
``promotions.shop.ferry.dev``; ``lookup`` also takes a kind (``Deployment``), an
``apiVersion``+``kind`` pair, a short name (``deploy``) or a singular name.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from shared.kube.errors import ApiError, UnknownResource
from shared.kube.requesting import Transport

log = logging.getLogger("ferry.kube")


@dataclass(frozen=True)
class Resource:
    """One served resource type, in the group's preferred version (or the version asked for)."""

    group: str
    version: str
    plural: str
    kind: str
    namespaced: bool
    verbs: frozenset[str] = frozenset()
    singular: str = ""
    short_names: tuple[str, ...] = ()
    subresources: frozenset[str] = frozenset()
    custom: bool = False

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

    @property
    def name(self) -> str:
        """The group-resource name: ``deployments.apps``, ``configmaps``."""
        return f"{self.plural}.{self.group}" if self.group else self.plural

    def path(self, namespace: str | None = None, name: str | None = None, subresource: str = "") -> str:
        """The REST path of the collection or of one object (optionally a subresource)."""
        base = f"/apis/{self.group}/{self.version}" if self.group else f"/api/{self.version}"
        if self.namespaced and namespace:
            base += f"/namespaces/{namespace}"
        base += f"/{self.plural}"
        if name:
            base += f"/{name}"
            if subresource:
                base += f"/{subresource}"
        return base

    def can(self, verb: str) -> bool:
        return verb in self.verbs


@dataclass
class _Snapshot:
    preferred: list[Resource] = field(default_factory=list)
    all_versions: list[Resource] = field(default_factory=list)


class ResourceMap:
    """The discovered resource types of one cluster; refreshed on demand (``refresh``) or on a miss."""

    def __init__(self, transport: Transport) -> None:
        self._transport = transport
        self._data: _Snapshot | None = None
        self._lock = asyncio.Lock()

    async def refresh(self) -> None:
        async with self._lock:
            self._data = await self._discover()

    async def _ensure(self) -> _Snapshot:
        if self._data is None:
            await self.refresh()
        assert self._data is not None
        return self._data

    async def preferred(self) -> list[Resource]:
        """Every served resource type (no subresources), in its group's preferred version."""
        return list((await self._ensure()).preferred)

    async def lookup(self, name: str, api_version: str | None = None) -> Resource:
        """A resource by group-resource, plural, kind, short or singular name; refreshed on a miss."""
        found = self._find(await self._ensure(), name, api_version)
        if found is None:
            await self.refresh()
            found = self._find(await self._ensure(), name, api_version)
        if found is None:
            where = f" in {api_version}" if api_version else ""
            raise UnknownResource(
                f"cluster {self._transport.cluster} serves no resource {name!r}{where}",
                cluster=self._transport.cluster,
            )
        return found

    async def for_object(self, obj: dict[str, Any]) -> Resource:
        """The resource type of an object, by its ``apiVersion`` and ``kind``."""
        return await self.lookup(str(obj.get("kind", "")), str(obj.get("apiVersion", "")) or None)

    @staticmethod
    def _find(data: _Snapshot, name: str, api_version: str | None) -> Resource | None:
        pool = data.all_versions if api_version else data.preferred
        if api_version:
            pool = [r for r in pool if r.api_version == api_version]
        lowered = name.lower()
        tests: list[Callable[[Resource], bool]] = [
            lambda r: r.name == name,
            lambda r: r.kind == name,
            lambda r: r.plural == lowered,
            lambda r: r.singular == lowered or lowered in r.short_names,
            lambda r: r.kind.lower() == lowered,
        ]
        for match in tests:
            for resource in pool:
                if match(resource):
                    return resource
        return None

    async def _discover(self) -> _Snapshot:
        t = self._transport
        groups: list[tuple[str, list[str], str]] = [("", ["v1"], "v1")]
        doc = await t.request("GET", "/apis", what="discovery")
        for group in doc.get("groups") or []:
            versions = [v["version"] for v in group.get("versions") or []]
            preferred = (group.get("preferredVersion") or {}).get("version") or (versions or [""])[0]
            groups.append((group["name"], versions, preferred))

        async def one(group: str, version: str) -> list[dict[str, Any]]:
            path = f"/apis/{group}/{version}" if group else f"/api/{version}"
            try:
                listing = await t.request("GET", path, what="discovery")
            except ApiError as e:  # an aggregated API that is down must not hide the others
                log.warning("discovery of %s on %s failed: %s", path, t.cluster, e)
                return []
            return list(listing.get("resources") or [])

        jobs = [(g, v, v == p) for g, versions, p in groups for v in versions]
        listings = await asyncio.gather(*(one(g, v) for g, v, _ in jobs))
        data = _Snapshot()
        raw: list[tuple[str, str, bool, dict[str, Any], set[str]]] = []
        for (group, version, is_preferred), resources in zip(jobs, listings, strict=True):
            subs_of: dict[str, set[str]] = {}
            for entry in resources:
                if "/" in entry["name"]:
                    base, _, sub = entry["name"].partition("/")
                    subs_of.setdefault(base, set()).add(sub)
            for entry in resources:
                if "/" not in entry["name"]:
                    raw.append((group, version, is_preferred, entry, subs_of.get(entry["name"], set())))
        crds = await self._crd_names(raw)
        for group, version, is_preferred, entry, subs in raw:
            resource = Resource(
                group=group,
                version=version,
                plural=entry["name"],
                kind=entry.get("kind", ""),
                namespaced=bool(entry.get("namespaced")),
                verbs=frozenset(entry.get("verbs") or ()),
                singular=entry.get("singularName") or entry.get("kind", "").lower(),
                short_names=tuple(entry.get("shortNames") or ()),
                subresources=frozenset(subs),
                custom=f"{entry['name']}.{group}" in crds,
            )
            data.all_versions.append(resource)
            if is_preferred:
                data.preferred.append(resource)
        return data

    async def _crd_names(self, raw: list[tuple[str, str, bool, dict[str, Any], set[str]]]) -> set[str]:
        served = any(
            g == "apiextensions.k8s.io" and e["name"] == "customresourcedefinitions" for g, _, _, e, _ in raw
        )
        if not served:
            return set()
        try:
            doc = await self._transport.request(
                "GET", "/apis/apiextensions.k8s.io/v1/customresourcedefinitions", what="discovery"
            )
        except ApiError as e:  # not allowed to list CRDs: guess from the group name
            log.warning(
                "cannot list CRDs on %s (%s); guessing custom resources by group", self._transport.cluster, e
            )
            return {
                f"{e['name']}.{g}" for g, _, _, e, _ in raw if g and "." in g and not g.endswith(".k8s.io")
            }
        return {str(item["metadata"]["name"]) for item in doc.get("items") or []}
