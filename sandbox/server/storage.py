"""The object store: every object of one cluster, one resourceVersion counter, a bounded event log.

Like etcd under kube-apiserver, every write takes the next global revision, and the log of recent
writes is what watches replay from (``resourceVersion=N``). Entries older than the window are
compacted away, which is what makes a stale watch answer ``410 Expired``. Subscribers (watch streams
and controllers) are called synchronously on every write, in order, on the server's event loop.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import msgspec

_enc = msgspec.json.Encoder()
_dec = msgspec.json.Decoder()


def clone(obj: Any) -> Any:
    """A deep copy of a JSON document (much faster than copy.deepcopy)."""
    return _dec.decode(_enc.encode(obj))


@dataclass(frozen=True)
class Event:
    rv: int
    type: str  # ADDED, MODIFIED or DELETED
    resource: str  # the store key, e.g. "deployments.apps"
    obj: dict[str, Any]  # a private snapshot: never mutate
    old: dict[str, Any] | None = None  # the state before a MODIFIED (for selector transitions)


Key = tuple[str, str]  # (namespace, name); namespace is "" for cluster-scoped objects


class ObjectStore:
    def __init__(self, window: int = 10_000, first_rv: int = 1000) -> None:
        self.rv = first_rv
        self._objects: dict[str, dict[Key, dict[str, Any]]] = {}
        self._uids: dict[str, tuple[str, Key]] = {}
        self.log: deque[Event] = deque(maxlen=window)
        self._compacted = first_rv  # every event with rv <= this is gone from the log
        self._subscribers: list[Callable[[Event], None]] = []
        self._snapshots: dict[tuple[str, Key], dict[str, Any]] = {}  # last event's copy of each object

    # -- reading -----------------------------------------------------------------------------
    def get(self, resource: str, namespace: str, name: str) -> dict[str, Any] | None:
        """The stored object itself (callers clone before changing it)."""
        return self._objects.get(resource, {}).get((namespace, name))

    def items(self, resource: str, namespace: str | None = None) -> list[dict[str, Any]]:
        """Objects sorted by (namespace, name), as etcd's key order gives them."""
        table = self._objects.get(resource, {})
        keys = sorted(k for k in table if namespace is None or k[0] == namespace)
        return [table[k] for k in keys]

    def by_uid(self, uid: str) -> tuple[str, dict[str, Any]] | None:
        found = self._uids.get(uid)
        if found is None:
            return None
        obj = self._objects.get(found[0], {}).get(found[1])
        return (found[0], obj) if obj is not None else None

    def resources(self) -> list[str]:
        return [r for r, table in self._objects.items() if table]

    def all_objects(self) -> Iterator[tuple[str, dict[str, Any]]]:
        for resource, table in list(self._objects.items()):
            for obj in list(table.values()):
                yield resource, obj

    @property
    def oldest_rv(self) -> int:
        """A watch from resourceVersion N can be served iff N >= oldest_rv."""
        if len(self.log) == self.log.maxlen and self.log:
            self._compacted = max(self._compacted, self.log[0].rv - 1)
        return self._compacted

    def events_after(self, rv: int) -> list[Event]:
        return [e for e in self.log if e.rv > rv]

    # -- writing -----------------------------------------------------------------------------
    def put(self, resource: str, obj: dict[str, Any], created: bool) -> dict[str, Any]:
        """Store ``obj`` (owned by the store from now on) under a new resourceVersion."""
        self.rv += 1
        meta = obj["metadata"]
        meta["resourceVersion"] = str(self.rv)
        key = (meta.get("namespace", ""), meta["name"])
        table = self._objects.setdefault(resource, {})
        previous = self._snapshots.get((resource, key))
        table[key] = obj
        if meta.get("uid"):
            self._uids[meta["uid"]] = (resource, key)
        snapshot = clone(obj)
        self._snapshots[(resource, key)] = snapshot
        self._emit(Event(self.rv, "ADDED" if created else "MODIFIED", resource, snapshot, previous))
        return obj

    def remove(
        self, resource: str, namespace: str, name: str, final: dict[str, Any] | None = None
    ) -> dict[str, Any] | None:
        """Delete an object; ``final`` is its last state (an update that emptied its finalizers)."""
        obj = self._objects.get(resource, {}).pop((namespace, name), None)
        if obj is None:
            return None
        if final is not None:
            obj = final
        self.rv += 1
        obj["metadata"]["resourceVersion"] = str(self.rv)
        self._uids.pop(obj["metadata"].get("uid", ""), None)
        self._snapshots.pop((resource, (namespace, name)), None)
        self._emit(Event(self.rv, "DELETED", resource, clone(obj)))
        return obj

    def drop_resource(self, resource: str) -> None:
        for key in self._objects.pop(resource, {}):
            self._snapshots.pop((resource, key), None)

    def compact(self) -> None:
        """Forget the event log, as an etcd compaction does (watches from older RVs get 410)."""
        self.log.clear()
        self._compacted = self.rv

    # -- subscribers -------------------------------------------------------------------------
    def subscribe(self, callback: Callable[[Event], None]) -> None:
        self._subscribers.append(callback)

    def unsubscribe(self, callback: Callable[[Event], None]) -> None:
        if callback in self._subscribers:
            self._subscribers.remove(callback)

    def _emit(self, event: Event) -> None:
        if len(self.log) == self.log.maxlen and self.log:
            self._compacted = max(self._compacted, self.log[0].rv)
        self.log.append(event)
        for callback in list(self._subscribers):
            callback(event)
