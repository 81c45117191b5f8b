"""An in-memory cluster behind the restore engine's ``Cluster`` protocol, for the engine's logic tests.

It keeps objects by key, answers AlreadyExists like an API server, marks workloads available, claims
bound and CRDs established as soon as they exist, and journals every write so a test can assert
*order* (a volume filled before the workload that mounts it). Conflict policies are tested against
a sandbox cluster too (test_cluster.py), where the real API server decides.
"""

from __future__ import annotations

import copy
from typing import Any

from services.restore.conflicts import AlreadyExists, ApiRefused
from services.restore.merging import merge_patch
from services.restore.objects import Manifest, Obj

READY_STATUS: dict[str, Obj] = {
    "Deployment": {"availableReplicas": 1, "readyReplicas": 1},
    "PersistentVolumeClaim": {"phase": "Bound"},
    "CustomResourceDefinition": {"conditions": [{"type": "Established", "status": "True"}]},
    "Job": {"conditions": [{"type": "Complete", "status": "True"}]},
}


class FakeCluster:
    def __init__(self, *, refuse: dict[str, str] | None = None) -> None:
        self.objects: dict[str, Obj] = {}
        self.journal: list[str] = []
        self.refuse = refuse or {}  # key -> message: creates of that object are refused

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
        if item.kind in READY_STATUS:
            obj["status"] = copy.deepcopy(READY_STATUS[item.kind])
        self.objects[item.key] = obj
        self.journal.append(f"create {item.key}")
        return obj

    async def merge_patch(self, item: Manifest, patch: Obj) -> Obj:
        if item.key not in self.objects:
            raise ApiRefused(f"{item.key} not found")
        self.objects[item.key] = merge_patch(self.objects[item.key], patch)
        self.journal.append(f"patch {item.key}")
        return self.objects[item.key]

    async def delete(self, item: Manifest) -> None:
        self.objects.pop(item.key, None)
        self.journal.append(f"delete {item.key}")

    @property
    def writes(self) -> list[str]:
        return [line for line in self.journal if not line.startswith("fill")]
