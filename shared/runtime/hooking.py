"""Running hooks in pods: one exec per hook, a record of what it did, output a person may read.

``run_hook`` execs one ``hooks.Hook`` in its pod (``shared.kube.pod_exec``) and returns a
``HookRun``: exit code, duration, whether it timed out, and the last lines of its output — with the
values of the Secrets the container's env reads replaced by ``***``, since the record goes into events
and the snapshot's tags, where Secret values must not be. It never raises for the hook's own failure
(a non-zero exit, a timeout, a missing container): the caller decides with ``on_error``. The pod
annotation ``ferry.dev/pre-hook-ran=<request>`` (``mark``/``unmark``) is how a later attempt finds
pods whose post hook is still owed after a crash.
"""

from __future__ import annotations

import base64
import contextlib
import dataclasses
import shlex
import time
from dataclasses import dataclass
from typing import Any

from shared.contracts.requests import HookErrorMode
from shared.kube import Cluster, KubeError, NotFound, pod_exec
from shared.runtime.hooks import Hook

PRE_HOOK_RAN = "ferry.dev/pre-hook-ran"  # pod annotation: this request ran the pod's pre hooks, post owed
OUTPUT_LINES = 10
LINE_LIMIT = 300
MIN_SECRET = 4  # shorter values would blank out ordinary words


@dataclass(frozen=True)
class HookRun:
    """What one hook did in one pod (the event's and the record's content)."""

    pod: str  # namespace/name
    container: str
    phase: str
    source: str
    command: str
    exit_code: int | None
    duration: float
    on_error: str
    timed_out: bool = False
    output: str = ""  # the last lines of stdout then stderr, Secret values hidden
    error: str = ""  # why it could not run at all (no such container, exec refused)

    @property
    def ok(self) -> bool:
        return self.exit_code == 0 and not self.error

    @property
    def fails_step(self) -> bool:
        return not self.ok and self.on_error == HookErrorMode.FAIL.value

    def summary(self) -> str:
        """One line for a person: which hook, where, and how it ended."""
        if self.error:
            how = self.error
        elif self.timed_out:
            how = f"timed out after {self.duration:.1f}s"
        else:
            how = f"exit {self.exit_code} in {self.duration:.1f}s"
        text = f"{self.phase} hook ({self.source}) in {self.pod} [{self.container}] `{self.command}`: {how}"
        return f"{text}; output: {self.output}" if self.output and not self.ok else text

    def record(self) -> dict[str, Any]:
        """The hook as the snapshot's record keeps it."""
        return {
            "pod": self.pod,
            "container": self.container,
            "phase": self.phase,
            "source": self.source,
            "command": self.command,
            "exit_code": self.exit_code,
            "duration": round(self.duration, 3),
            "timed_out": self.timed_out,
            "on_error": self.on_error,
            "output": self.output,
            "error": self.error,
        }


def tail(stdout: str, stderr: str, secrets: list[str]) -> str:
    """The last lines of the output, each clipped, every Secret value hidden."""
    text = stdout.rstrip("\n") + ("\n" + stderr.rstrip("\n") if stderr.strip() else "")
    for value in sorted(secrets, key=len, reverse=True):
        text = text.replace(value, "***")
    lines = [line[:LINE_LIMIT] for line in text.strip("\n").splitlines()[-OUTPUT_LINES:]]
    return "\n".join(lines)


async def secret_values(cluster: Cluster, pod: dict[str, Any], container: dict[str, Any]) -> list[str]:
    """The values of the Secrets the container's env reads (``env[].valueFrom`` and ``envFrom``)."""
    namespace = pod["metadata"]["namespace"]
    wanted: dict[str, set[str] | None] = {}  # secret -> keys (None: all)
    for env in container.get("env") or []:
        ref = (env.get("valueFrom") or {}).get("secretKeyRef") or {}
        if ref.get("name"):
            keys = wanted.setdefault(ref["name"], set())
            if keys is not None:
                keys.add(ref.get("key", ""))
    for source in container.get("envFrom") or []:
        if (source.get("secretRef") or {}).get("name"):
            wanted[source["secretRef"]["name"]] = None
    values: list[str] = []
    for name, keys in wanted.items():
        try:
            secret = await cluster.find("secrets", name, namespace)
        except KubeError:
            continue  # unreadable: nothing to hide that we could know of
        for key, encoded in ((secret or {}).get("data") or {}).items():
            if keys is None or key in keys:
                value = base64.b64decode(encoded).decode(errors="replace")
                values.extend(v for v in {value, value.strip()} if len(v) >= MIN_SECRET)
    return values


def container_of(pod: dict[str, Any], wanted: str) -> dict[str, Any] | None:
    containers = (pod.get("spec") or {}).get("containers") or []
    if not wanted:
        return containers[0] if containers else None
    return next((c for c in containers if c.get("name") == wanted), None)


async def run_hook(cluster: Cluster, pod: dict[str, Any], hook: Hook) -> HookRun:
    """Exec ``hook`` in ``pod`` and say what it did; the hook's own failure is in the result."""
    meta = pod["metadata"]
    namespace, name = meta["namespace"], meta["name"]
    container = container_of(pod, hook.container)
    run = HookRun(
        pod=f"{namespace}/{name}",
        container=(container or {}).get("name", hook.container),
        phase=hook.phase,
        source=hook.source,
        command=shlex.join(hook.command)[:LINE_LIMIT],
        exit_code=None,
        duration=0.0,
        on_error=hook.on_error.value,
    )
    if container is None:
        return dataclasses.replace(run, error=f"container {hook.container or '(first)'} is not in pod {name}")
    secrets = await secret_values(cluster, pod, container)
    started = time.monotonic()
    try:
        result = await pod_exec(
            cluster, namespace, name, hook.command, container=container["name"], within=hook.timeout
        )
    except KubeError as e:
        return dataclasses.replace(run, duration=time.monotonic() - started, error=f"exec refused: {e}")
    return dataclasses.replace(
        run,
        exit_code=result.exit_code,
        duration=result.duration,
        timed_out=result.timed_out,
        output=tail(result.stdout, result.stderr, secrets),
    )


async def mark(cluster: Cluster, pod: dict[str, Any], request_id: str) -> None:
    """Say on the pod that this request ran its pre hooks: a later attempt owes it the post hooks."""
    meta = pod["metadata"]
    patch = {"metadata": {"annotations": {PRE_HOOK_RAN: request_id}}}
    await cluster.patch("pods", meta["name"], patch, namespace=meta["namespace"])


async def unmark(cluster: Cluster, pod: dict[str, Any]) -> None:
    """The post hooks ran: nothing is owed any more (a pod gone meanwhile owes nothing either)."""
    meta = pod["metadata"]
    patch = {"metadata": {"annotations": {PRE_HOOK_RAN: None}}}
    with contextlib.suppress(NotFound):
        await cluster.patch("pods", meta["name"], patch, namespace=meta["namespace"])


def marked_by(pod: dict[str, Any], request_id: str) -> bool:
    return ((pod.get("metadata") or {}).get("annotations") or {}).get(PRE_HOOK_RAN) == request_id


def is_running(pod: dict[str, Any]) -> bool:
    """A pod hooks can run in: Running and not being deleted."""
    meta, status = pod.get("metadata") or {}, pod.get("status") or {}
    return status.get("phase") == "Running" and not meta.get("deletionTimestamp")


def is_ready(pod: dict[str, Any], container: str) -> bool:
    """The pod runs and the container is ready (its status, else the pod's Ready condition)."""
    status = pod.get("status") or {}
    if not is_running(pod):
        return False
    for found in status.get("containerStatuses") or []:
        if found.get("name") == container:
            return bool(found.get("ready"))
    conditions = status.get("conditions") or []
    return any(c.get("type") == "Ready" and c.get("status") == "True" for c in conditions)
