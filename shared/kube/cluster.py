"""One cluster: read and write any object of any served type, with Ferry's errors and retries.

Generic on purpose — discovery, snapshot and restore all use the same calls::

    cluster = await clusters.get("east")
    deploy = await cluster.get("deployments.apps", "web", namespace="shop")
    async for obj in cluster.iterate("configmaps", namespace="shop", label_selector="app=web"): ...
    await cluster.create(manifest)                                   # namespace from the manifest
    await cluster.patch("deployments.apps", "web", {"spec": {"replicas": 0}}, namespace="shop")
    await cluster.patch(..., [{"op": "remove", "path": "/x"}], patch_type=PatchType.JSON)
    await cluster.apply(manifest, field_manager="ferry-restore")     # server-side apply
    await cluster.delete("jobs.batch", "mover", namespace="shop")    # Background propagation
    await cluster.wait_for("persistentvolumeclaims", "data", lambda o: phase(o) == "Bound",
                           namespace="shop", within=60, what="claim data to bind")

A resource is named as ``lookup`` accepts (``deployments.apps``, ``Deployment``, ``deploy``) or given
as a ``Resource``; an object's own ``apiVersion``/``kind`` choose its type in create/replace/apply.
Lists fill in ``apiVersion``/``kind`` on every item (the API server omits them for built-in kinds).
Patches default to JSON merge patch, which works on every type; a strategic merge patch asked for a
custom resource is sent as a merge patch instead (the server would refuse it with 415).
"""

from __future__ import annotations

import asyncio
import builtins
import time
from collections.abc import AsyncIterator, Callable
from enum import StrEnum
from typing import Any

from shared.kube.errors import NotFound
from shared.kube.requesting import JSON, Transport
from shared.kube.resources import Resource, ResourceMap
from shared.kube.watching import WatchEvent, watch

Obj = dict[str, Any]
FIELD_MANAGER = "ferry"


class PatchType(StrEnum):
    MERGE = "application/merge-patch+json"  # RFC 7386: works on every type; null deletes a key
    JSON = "application/json-patch+json"  # RFC 6902: a list of operations
    STRATEGIC = "application/strategic-merge-patch+json"  # built-in types only
    APPLY = "application/apply-patch+yaml"  # server-side apply (needs a field manager)


def condition(obj: Obj | None, kind: str) -> Obj | None:
    """The status condition of type ``kind`` (e.g. ``Complete``), or None."""
    for cond in ((obj or {}).get("status") or {}).get("conditions") or []:
        if cond.get("type") == kind:
            return dict(cond)
    return None


def has_condition(obj: Obj | None, kind: str, status: str = "True") -> bool:
    found = condition(obj, kind)
    return found is not None and found.get("status") == status


def object_key(resource: Resource, obj: Obj) -> str:
    """``<group-resource>/<namespace>/<name>`` (namespaced) or ``<group-resource>/<name>``."""
    meta = obj.get("metadata") or {}
    if resource.namespaced:
        return f"{resource.name}/{meta.get('namespace', '')}/{meta.get('name', '')}"
    return f"{resource.name}/{meta.get('name', '')}"


class Cluster:
    """A cluster reached through one long-lived client; see the module docstring for the calls."""

    def __init__(self, name: str, transport: Transport) -> None:
        self.name = name
        self.transport = transport
        self.resources = ResourceMap(transport)

    async def close(self) -> None:
        await self.transport.api.close()

    async def version(self) -> Obj:
        """``GET /version``: the cheapest proof that the cluster answers."""
        doc: Obj = await self.transport.request("GET", "/version", what="version")
        return doc

    async def resource(self, name: str | Resource, api_version: str | None = None) -> Resource:
        if isinstance(name, Resource):
            return name
        return await self.resources.lookup(name, api_version)

    def _what(self, resource: Resource, name: str = "", namespace: str | None = None) -> str:
        where = f" in namespace {namespace}" if namespace and resource.namespaced else ""
        return f"{resource.name} {name}{where}".replace("  ", " ").strip()

    # --- reading ------------------------------------------------------------------------------
    async def get(self, resource: str | Resource, name: str, namespace: str | None = None) -> Obj:
        """One object; raises NotFound (with the API's message) if it does not exist."""
        r = await self.resource(resource)
        obj: Obj = await self.transport.request(
            "GET", r.path(namespace, name), what=self._what(r, name, namespace)
        )
        return self._typed(r, obj)

    async def find(self, resource: str | Resource, name: str, namespace: str | None = None) -> Obj | None:
        """One object, or None if it does not exist."""
        try:
            return await self.get(resource, name, namespace)
        except NotFound:
            return None

    async def iterate(
        self,
        resource: str | Resource,
        namespace: str | None = None,
        *,
        label_selector: str = "",
        field_selector: str = "",
        limit: int = 500,
    ) -> AsyncIterator[Obj]:
        """Every matching object, page by page (``limit``/``continue``); all namespaces if None."""
        r = await self.resource(resource)
        token = ""
        while True:
            query: dict[str, str | int | None] = {"limit": limit, "continue": token or None}
            query["labelSelector"] = label_selector or None
            query["fieldSelector"] = field_selector or None
            page = await self.transport.request(
                "GET", r.path(namespace), query=query, what=self._what(r, namespace=namespace)
            )
            for item in page.get("items") or []:
                yield self._typed(r, item)
            token = (page.get("metadata") or {}).get("continue") or ""
            if not token:
                return

    async def list(
        self,
        resource: str | Resource,
        namespace: str | None = None,
        *,
        label_selector: str = "",
        field_selector: str = "",
    ) -> builtins.list[Obj]:
        return [
            o
            async for o in self.iterate(
                resource, namespace, label_selector=label_selector, field_selector=field_selector
            )
        ]

    def watch(
        self,
        resource: Resource,
        namespace: str | None = None,
        *,
        label_selector: str = "",
        field_selector: str = "",
        resource_version: str | None = None,
        within: float | None = None,
    ) -> AsyncIterator[WatchEvent]:
        """Events of a collection, resumed from the last resourceVersion when the stream breaks.

        Ends after ``within`` seconds (forever if None); raises ``Expired`` when the server no
        longer has the resourceVersion to resume from — list again and watch from the list's.
        """
        return watch(
            self.transport,
            resource,
            namespace,
            label_selector=label_selector,
            field_selector=field_selector,
            resource_version=resource_version,
            within=within,
        )

    async def logs(
        self, pod: str, namespace: str, *, container: str = "", tail_lines: int | None = None
    ) -> str:
        """A pod's log (one container's, or its only one)."""
        r = await self.resource("pods")
        query = {"container": container or None, "tailLines": tail_lines}
        text: str = await self.transport.request(
            "GET", r.path(namespace, pod, "log"), query=query, raw=True, what=f"log of pod {pod}"
        )
        return text

    # --- writing ------------------------------------------------------------------------------
    async def create(self, obj: Obj, *, namespace: str | None = None, dry_run: bool = False) -> Obj:
        """Create ``obj`` (its type from apiVersion/kind); raises AlreadyExists if the name is taken."""
        r = await self.resources.for_object(obj)
        ns = namespace or (obj.get("metadata") or {}).get("namespace")
        query = {"fieldManager": FIELD_MANAGER, "dryRun": "All" if dry_run else None}
        name = (obj.get("metadata") or {}).get("name", "")
        created: Obj = await self.transport.request(
            "POST", r.path(ns), query=query, body=obj, what=self._what(r, name, ns)
        )
        return self._typed(r, created)

    async def replace(self, obj: Obj, *, namespace: str | None = None, subresource: str = "") -> Obj:
        """PUT ``obj``; a ``metadata.resourceVersion`` in it makes this conditional (Conflict if stale)."""
        r = await self.resources.for_object(obj)
        meta = obj.get("metadata") or {}
        ns = namespace or meta.get("namespace")
        replaced: Obj = await self.transport.request(
            "PUT",
            r.path(ns, meta["name"], subresource),
            query={"fieldManager": FIELD_MANAGER},
            body=obj,
            what=self._what(r, meta["name"], ns),
        )
        return self._typed(r, replaced)

    async def patch(
        self,
        resource: str | Resource,
        name: str,
        patch: Obj | builtins.list[Obj],
        *,
        namespace: str | None = None,
        patch_type: PatchType = PatchType.MERGE,
        subresource: str = "",
        field_manager: str = FIELD_MANAGER,
        force: bool = False,
    ) -> Obj:
        """Patch one object. A ``metadata.resourceVersion`` in a merge patch is a precondition."""
        r = await self.resource(resource)
        if patch_type is PatchType.STRATEGIC and r.custom:
            patch_type = PatchType.MERGE
        if patch_type is PatchType.JSON and not isinstance(patch, list):
            raise TypeError("a JSON patch is a list of operations")
        query: dict[str, str | int | None] = {"fieldManager": field_manager}
        if patch_type is PatchType.APPLY and force:
            query["force"] = "true"
        patched: Obj = await self.transport.request(
            "PATCH",
            r.path(namespace, name, subresource),
            query=query,
            body=patch,
            content_type=patch_type.value,
            what=self._what(r, name, namespace),
        )
        return self._typed(r, patched)

    async def apply(self, obj: Obj, *, field_manager: str = FIELD_MANAGER, force: bool = True) -> Obj:
        """Server-side apply: create ``obj`` or update the fields this manager owns."""
        r = await self.resources.for_object(obj)
        meta = obj.get("metadata") or {}
        return await self.patch(
            r,
            meta["name"],
            obj,
            namespace=meta.get("namespace"),
            patch_type=PatchType.APPLY,
            field_manager=field_manager,
            force=force,
        )

    async def delete(
        self,
        resource: str | Resource,
        name: str,
        *,
        namespace: str | None = None,
        propagation: str = "Background",
        preconditions: Obj | None = None,
        grace_period: int | None = None,
        missing_ok: bool = True,
    ) -> Obj | None:
        """Delete one object (dependents by ``propagation``); None if it was already gone.

        Returns the object when the server keeps it for a while (finalizers, custom resources).
        """
        r = await self.resource(resource)
        body: Obj = {"kind": "DeleteOptions", "apiVersion": "v1", "propagationPolicy": propagation}
        if preconditions:
            body["preconditions"] = preconditions
        if grace_period is not None:
            body["gracePeriodSeconds"] = grace_period
        try:
            doc = await self.transport.request(
                "DELETE", r.path(namespace, name), body=body, what=self._what(r, name, namespace)
            )
        except NotFound:
            if missing_ok:
                return None
            raise
        return self._typed(r, doc) if isinstance(doc, dict) and doc.get("metadata") else None

    # --- waiting ------------------------------------------------------------------------------
    async def wait_for(
        self,
        resource: str | Resource,
        name: str,
        predicate: Callable[[Obj | None], bool],
        *,
        namespace: str | None = None,
        within: float = 60.0,
        interval: float = 0.25,
        what: str = "",
    ) -> Obj | None:
        """Poll the object until ``predicate(obj or None)`` holds; TimeoutError names ``what``."""
        r = await self.resource(resource)
        deadline = time.monotonic() + within
        delay = min(0.05, interval)
        while True:
            obj = await self.find(r, name, namespace)
            if predicate(obj):
                return obj
            if time.monotonic() > deadline:
                target = what or f"{self._what(r, name, namespace)} to reach the expected state"
                raise TimeoutError(
                    f"timed out after {within:.0f}s waiting for {target} (cluster {self.name})"
                )
            await asyncio.sleep(delay)
            delay = min(delay * 2, interval)

    async def wait_condition(
        self,
        resource: str | Resource,
        name: str,
        kind: str,
        *,
        namespace: str | None = None,
        status: str = "True",
        within: float = 60.0,
    ) -> Obj:
        """Wait until the object has status condition ``kind`` (e.g. ``Complete``, ``Ready``) = ``status``."""
        found = await self.wait_for(
            resource,
            name,
            lambda o: has_condition(o, kind, status),
            namespace=namespace,
            within=within,
            what=f"{resource} {name} to be {kind}",
        )
        assert found is not None
        return found

    async def wait_deleted(
        self, resource: str | Resource, name: str, *, namespace: str | None = None, within: float = 60.0
    ) -> None:
        await self.wait_for(
            resource,
            name,
            lambda o: o is None,
            namespace=namespace,
            within=within,
            what=f"{resource} {name} to be deleted",
        )

    @staticmethod
    def _typed(r: Resource, obj: Obj) -> Obj:
        if isinstance(obj, dict):
            obj.setdefault("apiVersion", r.api_version)
            obj.setdefault("kind", r.kind)
        return obj


__all__ = ["JSON", "Cluster", "Obj", "PatchType", "condition", "has_condition", "object_key"]
