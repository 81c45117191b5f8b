"""Is each kubeconfig context's API server there? One probe, for the gateway and the CLI.

``GET {server}/version`` with a short timeout, with the context's CA (or none, when the kubeconfig
says ``insecure-skip-tls-verify``) and its bearer token. A probe needs no Kubernetes client, only an
answer: a 401/403 still proves the API server is there, so anything below 500 counts as reachable.
The gateway answers ``/v1/clusters`` with it from its own kubeconfig; ``ferry clusters --bus`` has
no gateway to ask and probes from the local one, in the same shape (``ClusterList``).
"""

from __future__ import annotations

import asyncio
import base64
import ssl
import time
from collections.abc import Awaitable
from pathlib import Path
from typing import Any

import aiohttp
import msgspec
import yaml

from shared.kube.clusters import find_kubeconfig
from shared.kube.errors import KubeError

PROBE_TIMEOUT = 2.0


class ClusterInfo(msgspec.Struct, frozen=True, kw_only=True):
    """One kubeconfig context and whether its API server answers."""

    name: str
    cluster: str
    server: str
    namespace: str = ""
    current: bool = False
    reachable: bool = False
    status: int | None = None  # HTTP status of GET /version
    version: str = ""  # gitVersion when /version answered 200
    latency_ms: float | None = None
    error: str = ""


class ClusterList(msgspec.Struct, frozen=True, kw_only=True):
    items: list[ClusterInfo]
    kubeconfig: str = ""


class KubeconfigUnreadable(KubeError):
    """The kubeconfig cannot be read or parsed. Says only the kind of error: the file holds secrets."""


def _ssl_for(cluster: dict[str, Any]) -> ssl.SSLContext | bool:
    """The TLS check the kubeconfig asks for: none, its CA (inline or a file), or the system's."""
    if cluster.get("insecure-skip-tls-verify"):
        return False
    if data := cluster.get("certificate-authority-data"):
        return ssl.create_default_context(cadata=base64.b64decode(data).decode())
    if path := cluster.get("certificate-authority"):
        return ssl.create_default_context(cafile=path)
    return True


async def probe(
    session: aiohttp.ClientSession, info: ClusterInfo, cluster: dict[str, Any], user: dict[str, Any]
) -> ClusterInfo:
    """``info`` with what ``GET /version`` said (or the error that stopped it: never raises)."""
    headers = {"Authorization": f"Bearer {user['token']}"} if user.get("token") else {}
    started = time.monotonic()
    try:
        async with session.get(
            f"{info.server.rstrip('/')}/version",
            headers=headers,
            ssl=_ssl_for(cluster),
            timeout=aiohttp.ClientTimeout(total=PROBE_TIMEOUT),
        ) as response:
            version = ""
            if response.status == 200:
                with_version = await response.json(content_type=None)
                version = str(with_version.get("gitVersion", "")) if isinstance(with_version, dict) else ""
            return msgspec.structs.replace(
                info,
                reachable=response.status < 500,
                status=response.status,
                version=version,
                latency_ms=round((time.monotonic() - started) * 1000, 1),
            )
    except TimeoutError:
        return msgspec.structs.replace(info, error=f"no answer within {PROBE_TIMEOUT}s")
    except (aiohttp.ClientError, ssl.SSLError, OSError, ValueError) as e:
        return msgspec.structs.replace(info, error=f"{type(e).__name__}: {e}")


async def read_kubeconfig(path: Path) -> dict[str, Any]:
    """The kubeconfig as a document (read in a thread: it is a file)."""
    try:
        config = yaml.safe_load(await asyncio.to_thread(path.read_text)) or {}
    except (OSError, yaml.YAMLError) as e:
        raise KubeconfigUnreadable(f"cannot read the kubeconfig: {type(e).__name__}") from e
    if not isinstance(config, dict):
        raise KubeconfigUnreadable(f"cannot read the kubeconfig: a {type(config).__name__}, not a mapping")
    return config


async def probe_clusters(configured: str = "", *, only: str = "") -> ClusterList:
    """Every context of the kubeconfig (``find_kubeconfig``), probed at once; none without one.
    ``only``: that context alone (a failover's probe of its primary need not wait on the others)."""
    path = find_kubeconfig(configured)
    if path is None:
        return ClusterList(items=[])
    config = await read_kubeconfig(path)
    named = {
        kind: {e["name"]: e.get(kind[:-1], {}) for e in config.get(kind) or []}
        for kind in ("clusters", "users")
    }
    probes: list[Awaitable[ClusterInfo]] = []
    async with aiohttp.ClientSession() as session:
        for entry in config.get("contexts") or []:
            if only and entry.get("name") != only:
                continue
            context = entry.get("context") or {}
            cluster = named["clusters"].get(context.get("cluster", ""), {})
            info = ClusterInfo(
                name=entry["name"],
                cluster=context.get("cluster", ""),
                server=cluster.get("server", ""),
                namespace=context.get("namespace", ""),
                current=entry["name"] == config.get("current-context"),
            )
            if not info.server:
                probes.append(
                    _as_is(msgspec.structs.replace(info, error="the context's cluster has no server"))
                )
                continue
            probes.append(probe(session, info, cluster, named["users"].get(context.get("user", ""), {})))
        items = await asyncio.gather(*probes)
    return ClusterList(items=list(items), kubeconfig=str(path))


async def _as_is(info: ClusterInfo) -> ClusterInfo:
    return info
