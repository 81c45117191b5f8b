"""What the console asks Ferry, in-process: the same bus calls and cluster probe as the REST routes.

The console runs in the gateway's process and uses the gateway's own ``BusClient`` and kubeconfig,
so a page costs no loopback HTTP hop and no second token check; the scopes are checked once, by
``sessions.page``, with the same ``Identity.allows`` the API uses. Snapshot questions go to the
snapshot service on the same subjects as ``catalog``; a ``rejected`` reply becomes the taxonomy's
error, which the page shows in words.
"""

from __future__ import annotations

import asyncio
from typing import Any

import msgspec
from aiohttp import web

from services.gateway.catalog import ask_snapshots
from services.gateway.web import CLIENT, CONFIG, without_values
from shared.contracts import subjects
from shared.contracts.errors import FerryError, ServiceFailed
from shared.contracts.snapshots import RetentionQuery, RetentionResult, SnapshotList, SnapshotQuery
from shared.kube.clusters import Clusters
from shared.kube.probing import ClusterList, KubeconfigUnreadable, probe_clusters

NAMESPACES_WITHIN = 5.0  # seconds for a cluster to list its namespaces before the form gives up
_snapshots = msgspec.json.Decoder(SnapshotList)
_retention = msgspec.json.Decoder(RetentionResult)
_any = msgspec.json.Decoder(Any)


async def clusters(app: web.Application) -> tuple[ClusterList, str]:
    """The gateway's kubeconfig contexts, probed (as ``/v1/clusters``), or none and why."""
    try:
        return await probe_clusters(app[CONFIG].kubeconfig), ""
    except KubeconfigUnreadable as e:
        return ClusterList(items=[]), str(e)


async def namespaces(app: web.Application, cluster: str) -> tuple[list[str], str]:
    """The namespaces of one cluster of the gateway's kubeconfig, or none and why."""
    try:
        async with asyncio.timeout(NAMESPACES_WITHIN), Clusters(app[CONFIG].kubeconfig) as known:
            found = await (await known.get(cluster)).list("namespaces")
    except TimeoutError:
        return [], f"cluster {cluster} did not list its namespaces within {NAMESPACES_WITHIN:.0f}s"
    except FerryError as e:
        return [], str(e)
    return sorted(str((n.get("metadata") or {}).get("name", "")) for n in found), ""


async def snapshots(app: web.Application, query: SnapshotQuery) -> SnapshotList:
    data = await ask_snapshots(app[CLIENT], subjects.SNAPSHOTS_LIST, msgspec.json.encode(query))
    try:
        return _snapshots.decode(data)
    except msgspec.ValidationError as e:
        raise ServiceFailed(f"the snapshot list does not decode: {without_values(str(e))}") from None


async def retention_dry_run(app: web.Application, query: RetentionQuery) -> RetentionResult:
    """What a retention policy would remove; ``dry_run`` is forced, the console never prunes."""
    query = msgspec.structs.replace(query, dry_run=True)
    data = await ask_snapshots(app[CLIENT], subjects.SNAPSHOTS_RETAIN, msgspec.json.encode(query))
    try:
        return _retention.decode(data)
    except msgspec.ValidationError as e:
        raise ServiceFailed(f"the retention answer does not decode: {without_values(str(e))}") from None


def document(data: bytes) -> Any:
    """A stored step document, decoded (``ServiceFailed`` if it is not JSON)."""
    try:
        return _any.decode(data)
    except msgspec.DecodeError:
        raise ServiceFailed("the document is not JSON") from None
