"""Running one kubelet pod as a local process: volumes, env, command, status and logs.

Split out of ``kubelet.py`` (which decides *when* pods run) because this is the part that touches
the machine: it writes Secret/ConfigMap volumes to disk, waits for PVCs to bind, starts the
subprocess in a thread (``subprocess.Popen`` + ``wait`` in the default executor, so the server's
loop never blocks and no child watcher is needed on this non-main thread) and records the log.

A Secret, ConfigMap or key the pod needs and does not have (and does not mark ``optional``) keeps
it Pending with the real kubelet's waiting reason, message and event, retried every
``CONFIG_RETRY`` seconds: creating the missing object later starts the pod, as on a real node.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import subprocess
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from sandbox.controllers.events import record
from sandbox.controllers.replicating import init_container_statuses
from sandbox.server.objects import now
from sandbox.server.qos import pod_qos
from sandbox.server.storage import clone

if TYPE_CHECKING:
    from sandbox.server.app import ApiServer
    from sandbox.server.objects import Objects
    from sandbox.server.storage import ObjectStore

CLAIM_WAIT = 60.0  # seconds a pod waits for its PVCs to bind before failing
CONFIG_RETRY = 0.25  # seconds between attempts to start a pod whose Secret, ConfigMap or key is missing


def image_repository(image: str) -> str:
    """``ghcr.io/ferry-dev/ferry:0.1.0@sha256:...`` -> ``ferry``."""
    image = image.split("@", 1)[0]
    last = image.rsplit("/", 1)[-1]
    return last.split(":", 1)[0]


def map_paths(text: str, mounts: list[tuple[str, str]]) -> str:
    """Replace every mountPath that starts a path in ``text`` by its host directory (see ``kubelet.py``'s module doc)."""
    if not mounts:
        return text
    table = dict(mounts)
    alternatives = "|".join(re.escape(m) for m in sorted(table, key=len, reverse=True))
    pattern = re.compile(rf"(?<![\w./-])({alternatives})(?![\w.-])")
    return pattern.sub(lambda m: table[m.group(1)], text)


def expand_vars(text: str, env: dict[str, str]) -> str:
    return re.sub(r"\$\(([A-Za-z_][A-Za-z0-9_]*)\)", lambda m: env.get(m.group(1), m.group(0)), text)


class PodFailed(Exception):
    pass


class Kubelet(Protocol):
    """What running a pod needs from the kubelet controller (which imports this module, not back)."""

    @property
    def server(self) -> ApiServer: ...
    @property
    def objects(self) -> Objects: ...
    @property
    def store(self) -> ObjectStore: ...
    def venv_command(self, word: str) -> str: ...
    def secret_data(self, namespace: str, name: str) -> dict[str, bytes] | None: ...
    def config_data(self, namespace: str, name: str) -> dict[str, bytes] | None: ...
    def claim_dir(self, namespace: str, claim: str) -> Path | None: ...
    def base_env(self) -> dict[str, str]: ...


class NotReady(Exception):
    """What the container needs is missing: it waits with ``reason`` and ``message`` (retried)."""

    def __init__(self, reason: str, message: str, event_reason: str, event_message: str) -> None:
        super().__init__(message)
        self.reason, self.message = reason, message
        self.event_reason, self.event_message = event_reason, event_message


def _config_error(message: str) -> NotReady:
    """An env source is missing: the kubelet's ``CreateContainerConfigError`` and ``Failed`` event."""
    return NotReady("CreateContainerConfigError", message, "Failed", f"Error: {message}")


def _mount_error(volume: str, message: str) -> NotReady:
    """A volume's source is missing: the container is still being created, with a ``FailedMount``."""
    return NotReady(
        "ContainerCreating", "", "FailedMount", f'MountVolume.SetUp failed for volume "{volume}" : {message}'
    )


def _volume_data(k: Kubelet, ns: str, vol: dict[str, Any]) -> dict[str, bytes]:
    """The files of a Secret or ConfigMap volume, key -> bytes (``items`` maps them to paths)."""
    if vol.get("secret"):
        src, kind, name = vol["secret"], "secret", vol["secret"].get("secretName", "")
        data = k.secret_data(ns, name)
        missing_key = "references non-existent secret key: {}"
    else:
        src, kind, name = vol["configMap"], "configmap", vol["configMap"].get("name", "")
        data = k.config_data(ns, name)
        missing_key = "configmap references non-existent config key: {}"
    optional = bool(src.get("optional"))
    if data is None:
        if not optional:
            raise _mount_error(vol["name"], f'{kind} "{name}" not found')
        data = {}
    for item in src.get("items") or []:
        if item["key"] not in data and not optional:
            raise _mount_error(vol["name"], missing_key.format(item["key"]))
    return data


async def _mounts(
    k: Kubelet, pod: dict[str, Any], work: Path, container: dict[str, Any]
) -> list[tuple[str, str]]:
    ns = pod["metadata"]["namespace"]
    spec = pod["spec"]
    host: dict[str, Path] = {}
    for vol in spec.get("volumes") or []:
        name = vol["name"]
        if vol.get("persistentVolumeClaim"):
            claim = vol["persistentVolumeClaim"]["claimName"]
            deadline = time.monotonic() + CLAIM_WAIT
            while (path := k.claim_dir(ns, claim)) is None:
                if time.monotonic() > deadline:
                    raise PodFailed(f'persistentvolumeclaim "{claim}" is not bound')
                await asyncio.sleep(0.05)
            host[name] = path
        elif vol.get("secret") or vol.get("configMap"):
            src = vol.get("secret") or vol.get("configMap")
            data = _volume_data(k, ns, vol)
            target = work / "volumes" / name
            target.mkdir(parents=True, exist_ok=True)
            items = {i["key"]: i["path"] for i in src.get("items") or []} or {key: key for key in data}
            for key, rel in items.items():
                if key in data:
                    (target / rel).parent.mkdir(parents=True, exist_ok=True)
                    (target / rel).write_bytes(data[key])
            host[name] = target
        elif vol.get("hostPath"):
            host[name] = Path(vol["hostPath"]["path"])
        else:  # emptyDir, projected, downwardAPI: an empty directory
            target = work / "volumes" / name
            target.mkdir(parents=True, exist_ok=True)
            host[name] = target
    mounts = []
    for m in container.get("volumeMounts") or []:
        if m["name"] not in host:
            raise PodFailed(f'volume "{m["name"]}" not found')
        path = host[m["name"]] / m["subPath"] if m.get("subPath") else host[m["name"]]
        path.mkdir(parents=True, exist_ok=True)
        mounts.append((m["mountPath"].rstrip("/") or "/", str(path)))
    return mounts


def _key_ref(k: Kubelet, ns: str, frm: dict[str, Any]) -> str | None:
    """The value of a ``secretKeyRef`` / ``configMapKeyRef``; None when it is missing and optional."""
    if frm.get("secretKeyRef"):
        ref, kind = frm["secretKeyRef"], "Secret"
        data = k.secret_data(ns, ref["name"])
    else:
        ref, kind = frm["configMapKeyRef"], "ConfigMap"
        data = k.config_data(ns, ref["name"])
    optional = bool(ref.get("optional"))
    if data is None:
        if optional:
            return None
        raise _config_error(f'{kind.lower()} "{ref["name"]}" not found')
    if ref["key"] not in data:
        if optional:
            return None
        raise _config_error(f"couldn't find key {ref['key']} in {kind} {ns}/{ref['name']}")
    return data[ref["key"]].decode(errors="replace")


def _env(k: Kubelet, pod: dict[str, Any], container: dict[str, Any]) -> dict[str, str]:
    ns = pod["metadata"]["namespace"]
    env: dict[str, str] = {}
    for source in container.get("envFrom") or []:
        prefix = source.get("prefix", "")
        if source.get("secretRef"):
            ref, kind = source["secretRef"], "secret"
            data = k.secret_data(ns, ref["name"])
        elif source.get("configMapRef"):
            ref, kind = source["configMapRef"], "configmap"
            data = k.config_data(ns, ref["name"])
        else:
            continue
        if data is None:
            if ref.get("optional"):
                continue
            raise _config_error(f'{kind} "{ref["name"]}" not found')
        env.update({prefix + key: value.decode(errors="replace") for key, value in data.items()})
    for var in container.get("env") or []:
        frm = var.get("valueFrom")
        if frm is None:
            env[var["name"]] = expand_vars(str(var.get("value", "")), env)
        elif frm.get("secretKeyRef") or frm.get("configMapKeyRef"):
            value = _key_ref(k, ns, frm)
            if value is not None:
                env[var["name"]] = value
        elif frm.get("fieldRef"):
            path = frm["fieldRef"]["fieldPath"]
            values = {
                "metadata.name": pod["metadata"]["name"],
                "metadata.namespace": ns,
                "spec.nodeName": pod["spec"].get("nodeName", ""),
                "metadata.uid": pod["metadata"]["uid"],
            }
            env[var["name"]] = values.get(path, "")
    return env


def _set_status(
    k: Kubelet, pod: dict[str, Any], phase: str, container: dict[str, Any], state: dict[str, Any]
) -> None:
    meta = pod["metadata"]
    current = k.store.get("pods", meta["namespace"], meta["name"])
    if current is None:
        return
    stamp = now()
    status = {
        "phase": phase,
        "hostIP": "10.0.0.1",
        "podIP": "10.244.0.20",
        "startTime": (current.get("status") or {}).get("startTime", stamp),
        "qosClass": pod_qos(current["spec"]),
        **init_container_statuses(current["spec"], None if phase == "Pending" else stamp),
        "conditions": [
            {"type": "PodScheduled", "status": "True", "lastTransitionTime": stamp},
            {
                "type": "Ready",
                "status": "True" if phase == "Running" else "False",
                "lastTransitionTime": stamp,
            },
        ],
        "containerStatuses": [
            {
                "name": container["name"],
                "image": container.get("image", ""),
                "imageID": "",
                "ready": phase == "Running",
                "started": phase == "Running",
                "restartCount": 0,
                "state": state,
            }
        ],
    }
    k.objects.write(k.objects.rt("pods"), current, {**clone(current), "status": status}, subresource="status")


async def run_pod(k: Kubelet, pod: dict[str, Any], procs: list[subprocess.Popen[bytes]]) -> None:
    meta = pod["metadata"]
    container = pod["spec"]["containers"][0]
    work = pod_work_dir(k, pod)
    work.mkdir(parents=True, exist_ok=True)
    log_path = work / "container.log"
    log_path.touch()
    k.server.logs[(meta["namespace"], meta["name"])] = log_path
    try:
        prepared = await _prepare_until_ready(k, pod, container, work)
    except (PodFailed, KeyError) as e:
        log_path.write_text(f"sandbox kubelet: {e}\n")
        state = {
            "terminated": {
                "exitCode": 128,
                "reason": "CreateContainerConfigError",
                "message": str(e),
                "startedAt": now(),
                "finishedAt": now(),
            }
        }
        _set_status(k, pod, "Failed", container, state)
        return
    if prepared is None:  # deleted while it waited
        return
    words, env, cwd = prepared
    started = now()
    _set_status(k, pod, "Running", container, {"running": {"startedAt": started}})
    loop = asyncio.get_running_loop()
    spawning = loop.run_in_executor(None, _spawn, words, {**k.base_env(), **env}, cwd, log_path)
    try:
        proc = await asyncio.shield(spawning)
    except asyncio.CancelledError:
        # the cluster is stopping while the process starts: do not leave it running unowned
        with contextlib.suppress(OSError):
            late = await spawning
            late.kill()
            await loop.run_in_executor(None, late.wait)
        raise
    except OSError as e:
        state = {
            "terminated": {
                "exitCode": 127,
                "reason": "StartError",
                "message": str(e),
                "startedAt": started,
                "finishedAt": now(),
            }
        }
        _set_status(k, pod, "Failed", container, state)
        return
    procs.append(proc)
    deadline = pod["spec"].get("activeDeadlineSeconds")
    waiting = loop.run_in_executor(None, proc.wait)
    try:
        code = await asyncio.wait_for(asyncio.shield(waiting), deadline) if deadline else await waiting
    except TimeoutError:
        proc.kill()
        code = await waiting
    except asyncio.CancelledError:
        proc.kill()
        await waiting
        raise
    reason = "Completed" if code == 0 else "Error"
    state = {"terminated": {"exitCode": code, "reason": reason, "startedAt": started, "finishedAt": now()}}
    _set_status(k, pod, "Succeeded" if code == 0 else "Failed", container, state)


async def _prepare(
    k: Kubelet, pod: dict[str, Any], container: dict[str, Any], work: Path
) -> tuple[list[str], dict[str, str], str]:
    """The command words, env and working directory of the container, its volumes written."""
    mounts = await _mounts(k, pod, work, container)
    env = {key: map_paths(value, mounts) for key, value in _env(k, pod, container).items()}
    words = list(container.get("command") or [image_repository(container.get("image", ""))])
    words += list(container.get("args") or [])
    words = [map_paths(expand_vars(str(w), env), mounts) for w in words]
    words[0] = k.venv_command(words[0])
    cwd = map_paths(container["workingDir"], mounts) if container.get("workingDir") else str(work)
    return words, env, cwd


async def _prepare_until_ready(
    k: Kubelet, pod: dict[str, Any], container: dict[str, Any], work: Path
) -> tuple[list[str], dict[str, str], str] | None:
    """``_prepare``, retried while a Secret/ConfigMap is missing; the pod shows why it waits.

    None when the pod is deleted while it waits.
    """
    meta = pod["metadata"]
    shown: tuple[str, str] | None = None
    while True:
        try:
            return await _prepare(k, pod, container, work)
        except NotReady as e:
            current = k.store.get("pods", meta["namespace"], meta["name"])
            if current is None or current["metadata"].get("deletionTimestamp"):
                return None
            if shown != (e.reason, e.event_message):
                shown = (e.reason, e.event_message)
                waiting = {"reason": e.reason, **({"message": e.message} if e.message else {})}
                _set_status(k, pod, "Pending", container, {"waiting": waiting})
                record(k.objects, current, e.event_reason, e.event_message, "kubelet", warning=True)
        await asyncio.sleep(CONFIG_RETRY)


def _spawn(words: list[str], env: dict[str, str], cwd: str, log_path: Path) -> subprocess.Popen[bytes]:
    """Start the container's process (blocking: runs in a thread), its output appended to the log."""
    os.makedirs(cwd, exist_ok=True)
    with log_path.open("ab") as log:
        try:
            return subprocess.Popen(words, env=env, cwd=cwd, stdout=log, stderr=subprocess.STDOUT)
        except OSError as e:
            log.write(f"sandbox kubelet: {e}\n".encode())
            raise


def pod_work_dir(k: Kubelet, pod: dict[str, Any]) -> Path:
    """The pod's directory on this machine (its Secret/ConfigMap/emptyDir volumes, its log)."""
    meta = pod["metadata"]
    return k.server.data_dir / "pods" / f"{meta['namespace']}_{meta['name']}_{meta['uid']}"


async def prepare_exec(
    k: Kubelet, pod: dict[str, Any], container: dict[str, Any], command: list[str]
) -> tuple[list[str], dict[str, str], str]:
    """The words, env and working directory of ``command`` run "in" the pod's container.

    The same path mapping as the container's own command (mountPaths to host directories, in the
    words and env values) and the same env, so a hook sees its volumes where it expects them; the
    working directory is the container's ``workingDir`` mapped, else a fresh temporary directory.
    """
    work = pod_work_dir(k, pod)
    work.mkdir(parents=True, exist_ok=True)
    mounts = await _mounts(k, pod, work, container)
    env = {key: map_paths(value, mounts) for key, value in _env(k, pod, container).items()}
    words = [map_paths(str(w), mounts) for w in command]
    words[0] = k.venv_command(words[0])
    if container.get("workingDir"):
        cwd = map_paths(container["workingDir"], mounts)
    else:
        cwd = tempfile.mkdtemp(prefix="exec-", dir=work)
    os.makedirs(cwd, exist_ok=True)
    return words, {**k.base_env(), **env}, cwd
