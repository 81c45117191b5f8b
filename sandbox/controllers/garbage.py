"""Garbage collection by ownerReferences, with the three propagation policies.

- Background: an object whose owners (matched by uid) are all gone is deleted;
- Foreground: the owner carries ``foregroundDeletion`` until its dependents are gone;
- Orphan: the owner carries ``orphan`` until its dependents' ownerReferences to it are removed.
"""

from __future__ import annotations

from typing import Any

from sandbox.controllers import Controller, Key
from sandbox.server.objects import DeleteOptions
from sandbox.server.storage import Event, clone


class GarbageCollector(Controller):
    name = "garbage-collector"

    def keys_for(self, event: Event) -> list[Key]:
        meta = event.obj["metadata"]
        keys: list[Key] = []
        if event.type == "DELETED" or meta.get("deletionTimestamp"):
            keys += self._dependents(meta.get("uid", ""))
        if event.type != "DELETED":
            finalizers = meta.get("finalizers") or []
            if meta.get("ownerReferences") or (
                meta.get("deletionTimestamp")
                and ("orphan" in finalizers or "foregroundDeletion" in finalizers)
            ):
                keys.append((event.resource, meta.get("namespace", ""), meta["name"]))
        return keys

    def _dependents(self, uid: str) -> list[Key]:
        if not uid:
            return []
        out = []
        for resource, obj in self.store.all_objects():
            meta = obj["metadata"]
            if any(ref.get("uid") == uid for ref in meta.get("ownerReferences") or []):
                out.append((resource, meta.get("namespace", ""), meta["name"]))
        return out

    async def reconcile(self, resource: str, namespace: str, name: str) -> float | None:
        obj = self.store.get(resource, namespace, name)
        if obj is None:
            return None
        meta = obj["metadata"]
        finalizers = meta.get("finalizers") or []
        rt = self.objects.rt(resource)
        if meta.get("deletionTimestamp") and "orphan" in finalizers:
            for key in self._dependents(meta["uid"]):
                dep = self.store.get(*key)
                if dep is not None:
                    new = clone(dep)
                    refs = [
                        r for r in new["metadata"].get("ownerReferences") or [] if r.get("uid") != meta["uid"]
                    ]
                    if refs:
                        new["metadata"]["ownerReferences"] = refs
                    else:
                        new["metadata"].pop("ownerReferences", None)
                    self.objects.write(self.objects.rt(key[0]), dep, new)
            self._drop_finalizer(resource, namespace, name, "orphan")
            return None
        if meta.get("deletionTimestamp") and "foregroundDeletion" in finalizers:
            deps = self._dependents(meta["uid"])
            for key in deps:
                dep = self.store.get(*key)
                if dep is not None and not dep["metadata"].get("deletionTimestamp"):
                    self.objects.delete(self.objects.rt(key[0]), key[1], key[2], DeleteOptions("Foreground"))
            if deps:
                return 0.1
            self._drop_finalizer(resource, namespace, name, "foregroundDeletion")
            return None
        refs = meta.get("ownerReferences") or []
        if refs and not meta.get("deletionTimestamp") and all(self._gone_or_going(r) for r in refs):
            policy = "Foreground" if any(self._owner_foreground(r) for r in refs) else "Background"
            self.objects.delete(rt, namespace, name, DeleteOptions(policy))
        return None

    def _gone_or_going(self, ref: dict[str, Any]) -> bool:
        found = self.store.by_uid(ref.get("uid", ""))
        if found is None:
            return True
        return self._owner_foreground(ref)

    def _owner_foreground(self, ref: dict[str, Any]) -> bool:
        found = self.store.by_uid(ref.get("uid", ""))
        if found is None:
            return False
        meta = found[1]["metadata"]
        return bool(meta.get("deletionTimestamp")) and "foregroundDeletion" in (meta.get("finalizers") or [])

    def _drop_finalizer(self, resource: str, namespace: str, name: str, finalizer: str) -> None:
        obj = self.store.get(resource, namespace, name)
        if obj is None:
            return
        new = clone(obj)
        new["metadata"]["finalizers"] = [f for f in new["metadata"].get("finalizers") or [] if f != finalizer]
        self.objects.write(self.objects.rt(resource), obj, new)
