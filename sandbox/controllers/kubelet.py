"""A kubelet for Ferry's own Jobs: their pods run as LOCAL PROCESSES on this machine.

A Job whose container image is Ferry's (by default any image whose repository's last path part is
``ferry`` or ``ferry-mover``, e.g. ``ghcr.io/ferry-dev/ferry:0.1.0``) gets a Pod, and the Pod's
first container runs as a subprocess:

- the command is ``command + args`` (``$(VAR)`` expanded from the container's env, as Kubernetes
  does); with no ``command``, the image's repository name is the entrypoint (``ferry-mover``);
  the first word is looked up in the directory of ``sys.executable`` (the venv's ``bin``) first,
  so ``ferry-mover`` and ``python`` are the venv's;
- **path mapping rule**: every volumeMount maps its ``mountPath`` to a host directory — a PVC to
  its PV's directory, a Secret/ConfigMap to a temp dir holding its keys as files, an emptyDir to
  a fresh dir (``subPath`` appended). In every argument, every env value and ``workingDir``, each
  occurrence of a mountPath that starts a path (not preceded by a path character, followed by
  ``/`` or a non-name character) is replaced by its host directory, longest mountPath first.
  ``--source=/data/x`` becomes ``--source=<pv dir>/x``; ``/database`` is not touched by ``/data``;
- env comes from this process's environment, then ``value``, ``valueFrom.secretKeyRef``,
  ``configMapKeyRef``, ``fieldRef`` (metadata.name/namespace, spec.nodeName) and ``envFrom``;
- a Secret, ConfigMap or key that is missing is skipped when its reference is ``optional``;
  otherwise the pod does not start, as on a real node: it stays Pending, its container waiting
  (``CreateContainerConfigError`` for env, ``ContainerCreating`` plus a ``FailedMount`` event for a
  volume) with the kubelet's message, and it starts once what it needs exists;
- exit code 0 makes the Pod Succeeded and the Job Complete; anything else fails the Pod, and the
  Job retries up to ``backoffLimit`` then is Failed (``BackoffLimitExceeded``);
- stdout and stderr are kept and served at ``GET .../pods/{name}/log``.
Jobs with any other image are reported succeeded by the workloads controller.
"""

from __future__ import annotations

import asyncio
import base64
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from sandbox.controllers import Controller
from sandbox.controllers.events import record
from sandbox.controllers.running import NotReady, PodFailed, image_repository, prepare_exec, run_pod
from sandbox.controllers.volumes import pv_path
from sandbox.server.objects import now, random_suffix
from sandbox.server.serving import ExecRefused
from sandbox.server.storage import Event, clone

JOB, PODS = "jobs.batch", "pods"
NODE = "sandbox-node"
KUBELET_LABEL = "sandbox.ferry.dev/kubelet"


def is_ferry_job(options: Any, job: dict[str, Any]) -> bool:
    containers = ((((job.get("spec") or {}).get("template") or {}).get("spec") or {}).get("containers")) or []
    return any(image_repository(c.get("image", "")) in options.ferry_images for c in containers)


class Kubelet(Controller):
    name = "kubelet"
    resources = (JOB, PODS)

    def __init__(self, server: Any) -> None:
        super().__init__(server)
        self._running: dict[str, tuple[asyncio.Task[None], list[subprocess.Popen[bytes]]]] = {}
        server.pod_exec = self.prepare_exec

    async def prepare_exec(
        self, pod: dict[str, Any], container: dict[str, Any], command: list[str]
    ) -> tuple[list[str], dict[str, str], str]:
        """``pods/exec``: the command's words, env and cwd with the pod's volumes mapped (``running.py``)."""
        try:
            return await prepare_exec(self, pod, container, command)
        except NotReady as e:
            raise ExecRefused(e.event_message) from e
        except (PodFailed, KeyError) as e:
            raise ExecRefused(str(e)) from e

    async def seed(self) -> None:
        ensure_node(self)

    def keys_for(self, event: Event) -> list[tuple[str, str, str]]:
        meta = event.obj["metadata"]
        if event.resource == PODS:
            uid = (meta.get("labels") or {}).get("batch.kubernetes.io/controller-uid")
            if event.type == "DELETED" and meta["uid"] in self._running:
                self._kill(meta["uid"])
            job = next((r for r in meta.get("ownerReferences") or [] if r.get("kind") == "Job"), None)
            return [(JOB, meta.get("namespace", ""), job["name"])] if job and uid else []
        return [(JOB, meta.get("namespace", ""), meta["name"])]

    async def stop(self) -> None:
        for uid in list(self._running):
            self._kill(uid)
        tasks = [t for t, _ in self._running.values()]
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._running.clear()
        await super().stop()

    def _kill(self, uid: str) -> None:
        for proc in self._running.get(uid, (None, []))[1]:
            if proc.poll() is None:
                proc.kill()

    async def reconcile(self, resource: str, namespace: str, name: str) -> float | None:
        job = self.store.get(JOB, namespace, name)
        if (
            job is None
            or job["metadata"].get("deletionTimestamp")
            or not is_ferry_job(self.server.options, job)
        ):
            return None
        spec, status = job.get("spec") or {}, job.get("status") or {}
        if spec.get("suspend") or any(
            c.get("type") in ("Complete", "Failed") for c in status.get("conditions") or []
        ):
            return None
        uid = job["metadata"]["uid"]
        pods = [
            p
            for p in self.store.items(PODS, namespace)
            if (p["metadata"].get("labels") or {}).get("batch.kubernetes.io/controller-uid") == uid
        ]
        phases = [(p.get("status") or {}).get("phase") for p in pods]
        succeeded, failed = phases.count("Succeeded"), phases.count("Failed")
        active = sum(1 for p in phases if p in (None, "Pending", "Running"))
        stamp = now()
        new_status: dict[str, Any] = {
            "startTime": status.get("startTime", stamp),
            "ready": 0,
            "terminating": 0,
            "uncountedTerminatedPods": {},
        }
        if succeeded:
            new_status["succeeded"] = succeeded
        if failed:
            new_status["failed"] = failed
        if succeeded >= int(spec.get("completions") or 1):
            record(self.objects, job, "Completed", "Job completed", "job-controller")
            new_status["completionTime"] = stamp
            message = "Reached expected number of succeeded pods"
            new_status["conditions"] = [
                _condition("SuccessCriteriaMet", "CompletionsReached", message, stamp),
                _condition("Complete", "CompletionsReached", message, stamp),
            ]
        elif failed > int(spec.get("backoffLimit", 6)):
            message = "Job has reached the specified backoff limit"
            record(self.objects, job, "BackoffLimitExceeded", message, "job-controller", warning=True)
            new_status["conditions"] = [
                _condition("FailureTarget", "BackoffLimitExceeded", message, stamp),
                _condition("Failed", "BackoffLimitExceeded", message, stamp),
            ]
        elif active == 0 and int(spec.get("parallelism", 1)) > 0:  # parallelism 0 holds a Job (quiesce)
            self._start_pod(job)
            active = 1
        if active and "conditions" not in new_status:
            new_status["active"] = active
            new_status["ready"] = active
        if new_status != status:
            self.objects.write(
                self.objects.rt(JOB), job, {**clone(job), "status": new_status}, subresource="status"
            )
        return None

    def _start_pod(self, job: dict[str, Any]) -> None:
        meta, spec = job["metadata"], job["spec"]
        template = clone(spec.get("template") or {})
        tmeta = template.get("metadata") or {}
        labels = {**(tmeta.get("labels") or {}), KUBELET_LABEL: "true"}
        body = {
            "metadata": {
                "name": f"{meta['name']}-{random_suffix()}",
                "labels": labels,
                "annotations": tmeta.get("annotations") or {},
                "ownerReferences": [
                    {
                        "apiVersion": "batch/v1",
                        "kind": "Job",
                        "name": meta["name"],
                        "uid": meta["uid"],
                        "controller": True,
                        "blockOwnerDeletion": True,
                    }
                ],
            },
            "spec": {**(template.get("spec") or {}), "nodeName": NODE},
        }
        body["spec"].setdefault("restartPolicy", "Never")
        pod = self.objects.create(self.objects.rt(PODS), meta["namespace"], body)
        record(
            self.objects, job, "SuccessfulCreate", f"Created pod: {pod['metadata']['name']}", "job-controller"
        )
        uid = pod["metadata"]["uid"]
        task = asyncio.create_task(
            self._run_pod(pod), name=f"sandbox-{self.server.name}-pod-{pod['metadata']['name']}"
        )
        self._running[uid] = (task, [])

    # -- running a pod ------------------------------------------------------------------------------
    async def _run_pod(self, pod: dict[str, Any]) -> None:
        uid = pod["metadata"]["uid"]
        try:
            await run_pod(self, pod, self._running[uid][1])
        finally:
            self._running.pop(uid, None)
            for ref in pod["metadata"].get("ownerReferences") or []:
                self.enqueue((JOB, pod["metadata"]["namespace"], ref["name"]))

    def venv_command(self, word: str) -> str:
        if word in ("python", "python3"):
            return sys.executable
        if "/" not in word:
            candidate = Path(sys.executable).parent / word
            if candidate.exists():
                return str(candidate)
        return word

    def secret_data(self, namespace: str, name: str) -> dict[str, bytes] | None:
        """The Secret's keys and values, or None when there is no such Secret."""
        secret = self.store.get("secrets", namespace, name)
        if secret is None:
            return None
        return {k: base64.b64decode(v) for k, v in (secret.get("data") or {}).items()}

    def config_data(self, namespace: str, name: str) -> dict[str, bytes] | None:
        """The ConfigMap's keys (``data`` and ``binaryData``) and values, or None when it is missing."""
        cm = self.store.get("configmaps", namespace, name)
        if cm is None:
            return None
        data = {k: str(v).encode() for k, v in (cm.get("data") or {}).items()}
        data.update({k: base64.b64decode(v) for k, v in (cm.get("binaryData") or {}).items()})
        return data

    def claim_dir(self, namespace: str, claim: str) -> Path | None:
        pvc = self.store.get("persistentvolumeclaims", namespace, claim)
        if pvc is None or (pvc.get("status") or {}).get("phase") != "Bound":
            return None
        pv = self.store.get("persistentvolumes", "", pvc["spec"]["volumeName"])
        return pv_path(pv) if pv else None

    def base_env(self) -> dict[str, str]:
        return {**os.environ, **self.server.options.extra_env}


def _condition(ctype: str, reason: str, message: str, stamp: str) -> dict[str, Any]:
    return {
        "type": ctype,
        "status": "True",
        "reason": reason,
        "message": message,
        "lastProbeTime": stamp,
        "lastTransitionTime": stamp,
    }


def ensure_node(controller: Controller) -> None:
    if controller.store.get("nodes", "", NODE) is not None:
        return
    body = {
        "metadata": {"name": NODE, "labels": {"kubernetes.io/hostname": NODE, "kubernetes.io/os": "linux"}},
        "spec": {},
    }
    controller.objects.create(controller.objects.rt("nodes"), "", body)
    node = controller.store.get("nodes", "", NODE)
    assert node is not None
    status = {
        "conditions": [
            {
                "type": "Ready",
                "status": "True",
                "reason": "KubeletReady",
                "message": "kubelet is posting ready status",
            }
        ],
        "addresses": [{"type": "InternalIP", "address": "10.0.0.1"}, {"type": "Hostname", "address": NODE}],
        "nodeInfo": {
            "kubeletVersion": "v1.32.0-sandbox",
            "operatingSystem": "linux",
            "architecture": "amd64",
        },
        "capacity": {"cpu": "4", "memory": "8Gi", "pods": "110"},
        "allocatable": {"cpu": "4", "memory": "8Gi", "pods": "110"},
    }
    controller.objects.write(
        controller.objects.rt("nodes"), node, {**clone(node), "status": status}, subresource="status"
    )
