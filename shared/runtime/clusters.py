"""The ``Cluster`` protocol the restore and verify steps write through, on top of ``shared.kube``.

The restore engine needs four calls on objects it holds as documents — get, create, merge-patch, delete —
and two failure kinds: *this name exists* and *the API refused this object* (its message becomes
the object's reason). Everything else ``shared.kube`` raises is already a Ferry error: a temporary
one (unreachable, 5xx, throttled after retries) escapes and the step is retried; an unknown
resource type (no CRD for a custom resource) is a refusal of that object only.

Deletes use foreground propagation for ``recreate`` (dependents go first, so a recreated Deployment
does not race its old ReplicaSets) and background for mover Jobs.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Protocol

from shared.contracts.errors import PermanentError
from shared.kube import Clusters, NoSuchCluster
from shared.kube import cluster as kube
from shared.kube.errors import AlreadyExists as KubeAlreadyExists
from shared.kube.errors import ApiError, UnknownResource
from shared.kube.objects import Manifest, Obj
from shared.kube.resources import Resource
from shared.runtime.settings import Settings


class AlreadyExists(Exception):
    """The create was refused because an object of that name exists."""


class ApiRefused(Exception):
    """The API refused a write; ``str()`` is its message (shown to the user as the reason)."""

    def __init__(self, message: str, *, temporary: bool = False) -> None:
        super().__init__(message)
        self.temporary = temporary


class Cluster(Protocol):
    async def get(self, item: Manifest) -> Obj | None: ...

    async def create(self, item: Manifest) -> Obj: ...

    async def merge_patch(self, item: Manifest, patch: Obj) -> Obj: ...

    async def delete(self, item: Manifest) -> None: ...

    def iterate(
        self, api_version: str, kind: str, namespace: str, *, label_selector: str = ""
    ) -> AsyncIterator[Obj]: ...


ClusterFactory = Callable[[Settings, str], Awaitable[Cluster]]  # (settings, cluster name) -> a Cluster


class KubeCluster:
    """``Cluster`` for one cluster reached through ``shared.kube``."""

    def __init__(self, cluster: kube.Cluster, *, owned: bool = True) -> None:
        self.cluster = cluster
        self.name = cluster.name
        self.owned = owned  # close the client when the step is done

    async def _resource(self, item: Manifest) -> Resource:
        try:
            return await self.cluster.resources.for_object(item.obj)
        except UnknownResource as e:
            raise ApiRefused(str(e)) from e

    async def get(self, item: Manifest) -> Obj | None:
        try:
            r = await self._resource(item)
        except ApiRefused:
            return None  # a type the cluster does not serve has no objects
        return await self.cluster.find(r, item.name, item.namespace or None)

    async def create(self, item: Manifest) -> Obj:
        await self._resource(item)
        try:
            return await self.cluster.create(item.obj)
        except KubeAlreadyExists as e:
            raise AlreadyExists(e.message) from e
        except ApiError as e:
            if e.status >= 500 or e.status == 429:
                raise
            raise ApiRefused(e.message) from e

    async def merge_patch(self, item: Manifest, patch: Obj) -> Obj:
        r = await self._resource(item)
        try:
            return await self.cluster.patch(r, item.name, patch, namespace=item.namespace or None)
        except ApiError as e:
            if e.status >= 500 or e.status == 429:
                raise
            raise ApiRefused(e.message) from e

    async def delete(self, item: Manifest) -> None:
        r = await self._resource(item)
        propagation = "Background" if item.kind in ("Job", "Secret") else "Foreground"
        try:
            await self.cluster.delete(r, item.name, namespace=item.namespace or None, propagation=propagation)
        except ApiError as e:
            if e.status >= 500 or e.status == 429:
                raise
            raise ApiRefused(e.message) from e

    async def iterate(
        self, api_version: str, kind: str, namespace: str, *, label_selector: str = ""
    ) -> AsyncIterator[Obj]:
        """Every object of a type, in the version asked for, in ``namespace`` ("" = cluster-scoped or
        every namespace), page by page; nothing when the cluster does not serve the type."""
        try:
            r = await self.cluster.resources.lookup(kind, api_version)
        except UnknownResource:
            return
        async for obj in self.cluster.iterate(r, namespace or None, label_selector=label_selector):
            yield obj

    async def job_pods(self, namespace: str, job: str) -> list[Obj]:
        try:
            return await self.cluster.list("pods", namespace, label_selector=f"job-name={job}")
        except ApiError:
            return []

    async def job_logs(self, namespace: str, job: str, tail: int = 15) -> str:
        """The last lines of the log of a Job's most recent pod ("" when there is none to read)."""
        try:
            pods = await self.cluster.list("pods", namespace, label_selector=f"job-name={job}")
            if not pods:
                return ""
            pods.sort(key=lambda p: p["metadata"].get("creationTimestamp", ""))
            return await self.cluster.logs(pods[-1]["metadata"]["name"], namespace, tail_lines=tail)
        except ApiError:
            return ""

    async def close(self) -> None:
        if self.owned:
            await self.cluster.close()


class KubeClusters:
    """The cluster factory of a restore/verify service: one ``shared.kube.Clusters`` per process
    (one client per cluster, kept), handed out as ``KubeCluster``s the steps may not close."""

    def __init__(self) -> None:
        self._clusters: Clusters | None = None

    async def __call__(self, settings: Settings, name: str) -> KubeCluster:
        if self._clusters is None:
            self._clusters = Clusters(settings.kubeconfig)
        try:
            return KubeCluster(await self._clusters.get(name), owned=False)
        except NoSuchCluster as e:
            raise PermanentError(f"target cluster: {e}") from e

    async def close(self) -> None:
        if self._clusters is not None:
            await self._clusters.close()
            self._clusters = None
