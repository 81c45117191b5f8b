"""An in-memory cluster behind the restore engine's ``Cluster`` protocol, for the engine's logic tests.

It keeps objects by key, answers AlreadyExists like an API server, marks workloads available, claims
bound and CRDs established as soon as they exist (unless told an object is ``stuck``: it then keeps
the status given, as a Deployment whose image never pulls does), and journals every write so a test
can assert *order* (a volume filled before the workload that mounts it). Conflict policies are tested against
a sandbox cluster too (test_cluster.py), where the real API server decides.
"""

from __future__ import annotations

import asyncio
import base64
import copy
import os
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from services.restore.merging import merge_patch
from shared.kube.objects import Manifest, Obj
from shared.runtime.clusters import AlreadyExists, ApiRefused

READY_STATUS: dict[str, Obj] = {
    "Deployment": {"availableReplicas": 1, "readyReplicas": 1},
    "PersistentVolumeClaim": {"phase": "Bound"},
    "CustomResourceDefinition": {"conditions": [{"type": "Established", "status": "True"}]},
    "Job": {"conditions": [{"type": "Complete", "status": "True"}]},
}


class FakeCluster:
    def __init__(
        self,
        *,
        refuse: dict[str, str] | None = None,
        volumes: Path | None = None,
        stuck: dict[str, Obj] | None = None,
    ) -> None:
        self.objects: dict[str, Obj] = {}
        self.journal: list[str] = []
        self.refuse = refuse or {}  # key -> message: creates of that object are refused
        self.stuck = stuck or {}  # key -> the status that object keeps: it never becomes ready
        self.volumes = volumes  # when set, mover Jobs run ferry-mover with /data mapped here
        self.tasks: set[asyncio.Task[None]] = set()
        self.logs: dict[str, str] = {}  # mover Job name -> what its process printed
        self.processes: dict[str, asyncio.subprocess.Process] = {}  # a deleted Job's mover is killed

    def volume_dir(self, namespace: str, claim: str) -> Path:
        assert self.volumes is not None
        path = self.volumes / namespace / claim
        path.mkdir(parents=True, exist_ok=True)
        return path

    async def _run_mover(self, job: Obj) -> None:
        """A tiny kubelet: the Job's ferry-mover runs as a local process, /data mapped to a directory."""
        ns = job["metadata"]["namespace"]
        spec = job["spec"]["template"]["spec"]
        container = spec["containers"][0]
        claim = spec["volumes"][0]["persistentVolumeClaim"]["claimName"]
        data = str(self.volume_dir(ns, claim))
        env = {k: v for k, v in os.environ.items() if not k.startswith("FERRY_")}
        for var in container["env"]:
            if "value" in var:
                env[var["name"]] = var["value"]
            else:
                ref = var["valueFrom"]["secretKeyRef"]
                secret = self.objects.get(f"secrets/{ns}/{ref['name']}") or {}
                if ref["key"] in (secret.get("data") or {}):
                    env[var["name"]] = base64.b64decode(secret["data"][ref["key"]]).decode()
        env.pop("FERRY_NATS_URL", None)
        args = [data if a == "/data" else a for a in container["args"]]
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "shared.mover", *args, env=env,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        )  # fmt: skip
        self.processes[job["metadata"]["name"]] = proc
        out, err = await proc.communicate()
        self.logs[job["metadata"]["name"]] = err.decode() + out.decode()
        kind = "Complete" if proc.returncode == 0 else "Failed"
        message = "" if proc.returncode == 0 else f"exit {proc.returncode}: {err.decode()[-300:]}"
        key = f"jobs.batch/{ns}/{job['metadata']['name']}"
        if key in self.objects:
            self.objects[key]["status"] = {
                "conditions": [{"type": kind, "status": "True", "message": message}]
            }
        self.journal.append(f"mover {kind} {key}")

    def put(self, obj: Obj, **kw: Any) -> None:
        item = Manifest(copy.deepcopy(obj), **kw)
        self.objects[item.key] = item.obj

    async def get(self, item: Manifest) -> Obj | None:
        found = self.objects.get(item.key)
        return copy.deepcopy(found) if found is not None else None

    async def create(self, item: Manifest) -> Obj:
        if item.key in self.refuse:
            raise ApiRefused(self.refuse[item.key])
        if item.key in self.objects:
            raise AlreadyExists(f"{item.key} already exists")
        obj = copy.deepcopy(item.obj)
        obj["metadata"]["uid"] = f"uid-{len(self.journal)}"
        if item.kind == "Job" and self.volumes is not None and "ferry" in str(obj["spec"]["template"]):
            task = asyncio.create_task(self._run_mover(obj), name=f"mover:{item.key}")
            self.tasks.add(task)
            task.add_done_callback(self.tasks.discard)
        elif item.key in self.stuck:
            obj["status"] = copy.deepcopy(self.stuck[item.key])
        elif item.kind in READY_STATUS:
            obj["status"] = copy.deepcopy(READY_STATUS[item.kind])
            if item.kind == "Deployment":  # every replica it asks for is up
                replicas = (obj.get("spec") or {}).get("replicas", 1)
                obj["status"].update(availableReplicas=replicas, readyReplicas=replicas)
        self.objects[item.key] = obj
        self.journal.append(f"create {item.key}")
        return obj

    async def merge_patch(self, item: Manifest, patch: Obj) -> Obj:
        if item.key not in self.objects:
            raise ApiRefused(f"{item.key} not found")
        self.objects[item.key] = merge_patch(self.objects[item.key], patch)
        self.journal.append(f"patch {item.key}")
        return self.objects[item.key]

    async def iterate(
        self, api_version: str, kind: str, namespace: str, *, label_selector: str = ""
    ) -> AsyncIterator[Obj]:
        for obj in list(self.objects.values()):
            meta = obj.get("metadata") or {}
            if (
                obj.get("kind") == kind
                and obj.get("apiVersion") == api_version
                and (not namespace or meta.get("namespace", "") == namespace)
            ):
                yield copy.deepcopy(obj)

    async def job_logs(self, namespace: str, job: str, tail: int = 15) -> str:
        return "\n".join(self.logs.get(job, "").splitlines()[-tail:])

    async def delete(self, item: Manifest) -> None:
        self.objects.pop(item.key, None)
        proc = self.processes.get(item.name) if item.kind == "Job" else None
        if proc is not None and proc.returncode is None:
            proc.kill()  # as a kubelet stops the pods of a deleted Job
        self.journal.append(f"delete {item.key}")

    @property
    def writes(self) -> list[str]:
        return [line for line in self.journal if not line.startswith("fill")]
