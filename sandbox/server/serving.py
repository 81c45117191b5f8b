"""What a request handler is served with: the server's options and its surface as a ``Server``.

``handlers`` and ``watching`` take the API server as this protocol rather than importing
``app.ApiServer``, which imports them to route requests: the dependency points one way.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any, Protocol

from aiohttp import web

from sandbox.server.objects import Objects
from sandbox.server.registry import Registry
from sandbox.server.storage import Event, ObjectStore


@dataclass
class SandboxOptions:
    """Knobs of one sandbox cluster (controllers can be switched off one by one)."""

    watch_window: int = 10_000  # events kept for watch resume; older resourceVersions get 410
    watch_timeout: float = 1800.0  # default watch length when the client gives no timeoutSeconds
    bookmark_interval: float = 2.0
    storage: bool = True  # StorageClasses, local-path provisioner, PV controller
    snapshots: bool = True  # VolumeSnapshotClass + snapshot controller
    workloads: bool = True  # status for Deployments, StatefulSets (+ PVCs), Jobs, ...
    kubelet: bool = True  # runs Jobs with Ferry's image as local processes
    garbage_collector: bool = True
    namespaces: bool = True  # namespace lifecycle + default ServiceAccount / kube-root-ca.crt
    ferry_images: tuple[str, ...] = ("ferry", "ferry-mover")  # image repository basenames run locally
    snapshot_ready_delay: float = 0.0  # seconds before a new VolumeSnapshot becomes readyToUse
    extra_env: dict[str, str] = field(default_factory=dict)  # added to every kubelet process
    request_log: int = 2000  # how many recent requests ApiServer.requests keeps
    # Access reviews answer "not allowed" for these "VERB RESOURCE [NAMESPACE]" rules (sandbox/server/access.py)
    denied: tuple[str, ...] = ()


class PodExec(Protocol):
    """Prepares a command run "in" a pod's container: its words, env and working directory.

    The kubelet controller provides it (``ApiServer.pod_exec``); it raises ``ExecRefused`` when the
    container cannot run it (a volume or env source is missing)."""

    async def __call__(
        self, pod: dict[str, Any], container: dict[str, Any], command: list[str]
    ) -> tuple[list[str], dict[str, str], str]: ...


class ExecRefused(Exception):
    """The container cannot run the command; the message is what the exec's Status says."""


class Server(Protocol):
    """The parts of ``app.ApiServer`` that request handlers and watches use."""

    @property
    def options(self) -> SandboxOptions: ...
    @property
    def store(self) -> ObjectStore: ...
    @property
    def registry(self) -> Registry: ...
    @property
    def objects(self) -> Objects: ...
    @property
    def applied(self) -> dict[tuple[str, str, str], dict[str, Any]]: ...  # server-side apply: last config
    @property
    def watch_queues(self) -> set[asyncio.Queue[Event | None]]: ...
    def encode(self, obj: Any) -> bytes: ...
    def json(self, obj: Any, status: int = 200) -> web.Response: ...
    def pod_log(self, namespace: str, pod: str, container: str | None) -> str: ...
    @property
    def pod_exec(self) -> PodExec | None: ...
