"""Clusters by name: kubeconfig contexts (or the in-cluster service account), one client each.

``Clusters`` is created once per service with ``Settings.kubeconfig``; ``await clusters.get("east")``
loads the context the first time and returns the same ``Cluster`` (one ``ApiClient``, one
connection pool, one discovery map) after that. ``close()`` closes every client. A name that is no
context of the kubeconfig raises ``NoSuchCluster`` listing the contexts there are; the name
``in-cluster`` (or any name, when there is no kubeconfig at all and the process runs in a pod)
means the pod's own cluster.
"""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

from kubernetes_asyncio.client import ApiClient, Configuration
from kubernetes_asyncio.config import ConfigException
from kubernetes_asyncio.config.incluster_config import SERVICE_HOST_ENV_NAME, load_incluster_config
from kubernetes_asyncio.config.kube_config import list_kube_config_contexts, load_kube_config

from shared.kube.cluster import Cluster
from shared.kube.errors import NoSuchCluster
from shared.kube.requesting import Transport
from shared.retrying import RetryPolicy

IN_CLUSTER = "in-cluster"


def find_kubeconfig(configured: str = "") -> Path | None:
    """The first kubeconfig that exists: the configured path, then $KUBECONFIG's files, then
    ~/.kube/config; None when there is none (the probe then lists no clusters)."""
    candidates = [configured] if configured else []
    candidates += [p for p in os.environ.get("KUBECONFIG", "").split(os.pathsep) if p]
    candidates.append(str(Path.home() / ".kube" / "config"))
    return next((Path(c) for c in candidates if Path(c).is_file()), None)


def kubeconfig_file(configured: str = "") -> str | None:
    """The kubeconfig to read (``find_kubeconfig``); a configured one that is nowhere is an error."""
    path = find_kubeconfig(configured)
    if path is None and configured:
        raise NoSuchCluster(f"kubeconfig {configured} does not exist")
    return None if path is None else str(path)


class Clusters:
    """The clusters a service talks to, created on first use and kept."""

    def __init__(self, kubeconfig: str = "", *, retry: RetryPolicy | None = None) -> None:
        self._configured = kubeconfig
        self._retry = retry
        self._clusters: dict[str, Cluster] = {}
        self._lock = asyncio.Lock()

    def contexts(self) -> list[str]:
        path = kubeconfig_file(self._configured)
        if path is None:
            return [IN_CLUSTER] if os.environ.get(SERVICE_HOST_ENV_NAME) else []
        try:
            contexts, _ = list_kube_config_contexts(path)
        except (ConfigException, OSError, ValueError) as e:
            raise NoSuchCluster(f"cannot read kubeconfig {path}: {e}") from e
        return [str(c["name"]) for c in contexts or []]

    async def get(self, name: str) -> Cluster:
        async with self._lock:
            if name not in self._clusters:
                self._clusters[name] = await self._open(name)
            return self._clusters[name]

    async def _open(self, name: str) -> Cluster:
        config = Configuration()
        path = kubeconfig_file(self._configured)
        if name == IN_CLUSTER or (path is None and os.environ.get(SERVICE_HOST_ENV_NAME)):
            try:
                load_incluster_config(client_configuration=config)  # type: ignore[no-untyped-call]
            except ConfigException as e:
                raise NoSuchCluster(f"cluster {name}: not running in a pod ({e})") from e
        else:
            known = self.contexts()
            if name not in known:
                where = f"kubeconfig {path}" if path else "any kubeconfig (none found)"
                raise NoSuchCluster(
                    f"no cluster named {name!r} in {where}; known clusters: {', '.join(known) or 'none'}"
                )
            try:
                await load_kube_config(
                    config_file=path, context=name, client_configuration=config, persist_config=False
                )
            except (ConfigException, OSError, ValueError) as e:
                raise NoSuchCluster(f"cluster {name}: cannot load its kubeconfig context: {e}") from e
        api = ApiClient(configuration=config)
        api.user_agent = "ferry/0.1.0"
        return Cluster(name, Transport(api, name, retry=self._retry))

    async def close(self) -> None:
        async with self._lock:
            clusters, self._clusters = list(self._clusters.values()), {}
        for cluster in clusters:
            await cluster.close()

    async def __aenter__(self) -> Clusters:
        return self

    async def __aexit__(self, *_: object) -> None:
        await self.close()
