"""CSI snapshots: what snapshot-controller and csi-snapshotter do, with directories as snapshots.

- seeds the default VolumeSnapshotClass ``sandbox-snapclass`` (driver ``sandbox.ferry.dev/local-path``,
  deletionPolicy Delete);
- a VolumeSnapshot of a Bound PVC gets a VolumeSnapshotContent ``snapcontent-<vs uid>``; the PV's
  directory is copied to ``<data>/snapshots/<snapshotHandle>``; then both report readyToUse,
  restoreSize and creationTime, with the usual finalizers;
- a pre-provisioned content (``spec.source.snapshotHandle``) binds to the VolumeSnapshot naming it;
- deleting a VolumeSnapshot deletes its content (deletionPolicy Delete, data removed) or keeps it
  (Retain);
- knobs: annotation ``sandbox.ferry.dev/ready-after-seconds`` (or the server option
  ``snapshot_ready_delay``) delays readiness; annotation ``sandbox.ferry.dev/fail-snapshot: <message>``
  makes the snapshot fail with that error.
"""

from __future__ import annotations

import time
import uuid
from typing import Any

from sandbox.controllers import Controller, Key
from sandbox.controllers.events import record
from sandbox.controllers.volumes import (
    PROVISIONER,
    copy_tree,
    format_quantity,
    parse_quantity,
    pv_path,
    remove_tree,
)
from sandbox.server.objects import now
from sandbox.server.storage import Event, clone

GROUP = "snapshot.storage.k8s.io"
VS, VSC, VSCLASS = (
    f"volumesnapshots.{GROUP}",
    f"volumesnapshotcontents.{GROUP}",
    f"volumesnapshotclasses.{GROUP}",
)
PVC, PV = "persistentvolumeclaims", "persistentvolumes"
DEFAULT_CLASS = "sandbox-snapclass"
AS_SOURCE = "snapshot.storage.kubernetes.io/volumesnapshot-as-source-protection"
BOUND = "snapshot.storage.kubernetes.io/volumesnapshot-bound-protection"
CONTENT_BOUND = "snapshot.storage.kubernetes.io/volumesnapshotcontent-bound-protection"
READY_AFTER = "sandbox.ferry.dev/ready-after-seconds"
FAIL = "sandbox.ferry.dev/fail-snapshot"


class SnapshotController(Controller):
    name = "snapshots"
    resources = (VS, VSC)

    async def seed(self) -> None:
        if self.store.get(VSCLASS, "", DEFAULT_CLASS) is None:
            body = {
                "metadata": {
                    "name": DEFAULT_CLASS,
                    "annotations": {"snapshot.storage.kubernetes.io/is-default-class": "true"},
                },
                "driver": PROVISIONER,
                "deletionPolicy": "Delete",
            }
            self.objects.create(self.objects.rt(VSCLASS), "", body)

    def __init__(self, server: Any) -> None:
        super().__init__(server)
        self._born: dict[str, float] = {}  # content name -> when its data was copied (readiness delay)

    def keys_for(self, event: Event) -> list[Key]:
        obj, meta = event.obj, event.obj["metadata"]
        if event.resource == VSC:
            ref = (obj.get("spec") or {}).get("volumeSnapshotRef") or {}
            return [(VSC, "", meta["name"]), (VS, ref.get("namespace", ""), ref.get("name", ""))]
        return [(VS, meta.get("namespace", ""), meta["name"])]

    def _rt(self, resource: str) -> Any:
        return self.objects.rt(resource)

    def _set_status(self, resource: str, obj: dict[str, Any], status: dict[str, Any]) -> None:
        merged = {**(obj.get("status") or {}), **status}
        if merged != obj.get("status"):
            self.objects.write(
                self._rt(resource), obj, {**clone(obj), "status": merged}, subresource="status"
            )

    def _finalizers(
        self, resource: str, obj: dict[str, Any], add: list[str], drop: list[str]
    ) -> dict[str, Any]:
        new = clone(obj)
        new["metadata"].pop("resourceVersion", None)
        current = [f for f in new["metadata"].get("finalizers") or [] if f not in drop]
        new["metadata"]["finalizers"] = current + [f for f in add if f not in current]
        self.objects.write(self._rt(resource), obj, new)
        meta = obj["metadata"]
        return self.store.get(resource, meta.get("namespace", ""), meta["name"]) or new

    async def reconcile(self, resource: str, namespace: str, name: str) -> float | None:
        if resource == VSC:
            return await self._reconcile_content(name)
        vs = self.store.get(VS, namespace, name)
        if vs is None:
            return None
        meta, spec = vs["metadata"], vs.get("spec") or {}
        if meta.get("deletionTimestamp"):
            return self._delete_snapshot(vs)
        if (vs.get("status") or {}).get("readyToUse"):
            return None
        annotations = meta.get("annotations") or {}
        if annotations.get(FAIL):
            self._fail(vs, annotations[FAIL])
            return None
        source = spec.get("source") or {}
        if source.get("volumeSnapshotContentName"):
            return self._bind_preprovisioned(vs, source["volumeSnapshotContentName"])
        pvc = self.store.get(PVC, namespace, source.get("persistentVolumeClaimName", ""))
        if pvc is None or (pvc.get("status") or {}).get("phase") != "Bound":
            self._fail(
                vs,
                "failed to take snapshot: PersistentVolumeClaim "
                f"{source.get('persistentVolumeClaimName')!r} is not bound",
            )
            return 0.5
        class_name = spec.get("volumeSnapshotClassName") or self._default_class()
        snap_class = self.store.get(VSCLASS, "", class_name or "")
        if snap_class is None:
            self._fail(vs, "no VolumeSnapshotClass")
            return 1.0
        vs = self._protect(vs, class_name)
        content = await self._content_for(vs, pvc, snap_class, class_name)
        return self._report(vs, content, pvc)

    def _fail(self, vs: dict[str, Any], message: str) -> None:
        self._set_status(VS, vs, {"readyToUse": False, "error": {"message": message, "time": now()}})

    def _protect(self, vs: dict[str, Any], class_name: str | None) -> dict[str, Any]:
        """Record the class chosen and add the finalizers that keep the snapshot while it is used."""
        meta = vs["metadata"]
        if (vs.get("spec") or {}).get("volumeSnapshotClassName") and AS_SOURCE in (
            meta.get("finalizers") or []
        ):
            return vs
        new = clone(vs)
        new["metadata"].pop("resourceVersion", None)
        new["spec"]["volumeSnapshotClassName"] = class_name
        new["metadata"]["finalizers"] = [*(meta.get("finalizers") or []), AS_SOURCE, BOUND]
        self.objects.write(self._rt(VS), vs, new)
        return self.store.get(VS, meta["namespace"], meta["name"]) or new

    async def _content_for(
        self, vs: dict[str, Any], pvc: dict[str, Any], snap_class: dict[str, Any], class_name: str | None
    ) -> dict[str, Any]:
        """The snapshot's content, copying the PV's directory and creating it the first time."""
        content_name = f"snapcontent-{vs['metadata']['uid']}"
        content = self.store.get(VSC, "", content_name)
        if content is not None:
            return content
        pv = self.store.get(PV, "", pvc["spec"]["volumeName"])
        handle = f"snapshot-{uuid.uuid4()}"
        src = pv_path(pv) if pv else None
        dst = self.server.data_dir / "snapshots" / handle
        if src is not None:
            await copy_tree(src, dst)
        else:
            dst.mkdir(parents=True, exist_ok=True)
        body = {
            "metadata": {"name": content_name, "finalizers": [CONTENT_BOUND]},
            "spec": {
                "deletionPolicy": snap_class.get("deletionPolicy", "Delete"),
                "driver": snap_class.get("driver", PROVISIONER),
                "source": {
                    "volumeHandle": ((pv or {}).get("spec") or {}).get("csi", {}).get("volumeHandle", "")
                },
                "volumeSnapshotClassName": class_name,
                "volumeSnapshotRef": _ref(vs),
            },
        }
        content = self.objects.create(self._rt(VSC), "", body)
        self._born[content_name] = time.time()
        content = self.store.get(VSC, "", content_name) or content
        status = {
            "snapshotHandle": handle,
            "creationTime": time.time_ns(),
            "readyToUse": True,
            "restoreSize": _claim_size(pvc),
        }
        self._set_status(VSC, content, status)
        return content

    def _report(self, vs: dict[str, Any], content: dict[str, Any], pvc: dict[str, Any]) -> float | None:
        """Bind the snapshot to its content; ready once the readiness delay has passed."""
        meta = vs["metadata"]
        namespace, name = meta["namespace"], meta["name"]
        content_name = content["metadata"]["name"]
        vs = self.store.get(VS, namespace, name) or vs
        annotations = meta.get("annotations") or {}
        delay = float(annotations.get(READY_AFTER, self.server.options.snapshot_ready_delay) or 0)
        waited = time.time() - self._born.get(content_name, _created(content))
        ready = waited >= delay
        status = {
            "boundVolumeSnapshotContentName": content_name,
            "creationTime": content["metadata"]["creationTimestamp"],
            "readyToUse": ready,
            "restoreSize": format_quantity(_claim_size(pvc)),
        }
        self._set_status(VS, vs, status)
        if ready:
            message = f"Snapshot {namespace}/{name} is ready to use."
            record(self.objects, vs, "SnapshotReady", message, "snapshot-controller")
        return None if ready else max(0.05, delay - waited)

    def _default_class(self) -> str | None:
        for c in self.store.items(VSCLASS):
            ann = c["metadata"].get("annotations") or {}
            if (
                ann.get("snapshot.storage.kubernetes.io/is-default-class") == "true"
                and c.get("driver") == PROVISIONER
            ):
                return str(c["metadata"]["name"])
        return None

    def _bind_preprovisioned(self, vs: dict[str, Any], content_name: str) -> float | None:
        content = self.store.get(VSC, "", content_name)
        meta = vs["metadata"]
        ref = ((content or {}).get("spec") or {}).get("volumeSnapshotRef") or {}
        if content is None or (ref.get("name"), ref.get("namespace")) != (meta["name"], meta["namespace"]):
            msg = f"VolumeSnapshotContent {content_name} is missing or bound to another snapshot"
            self._set_status(VS, vs, {"readyToUse": False, "error": {"message": msg, "time": now()}})
            return 1.0
        if not ref.get("uid"):
            new = clone(content)
            new["metadata"].pop("resourceVersion", None)
            new["spec"]["volumeSnapshotRef"]["uid"] = meta["uid"]
            self.objects.write(self._rt(VSC), content, new)
            content = self.store.get(VSC, "", content_name) or new
        if BOUND not in (meta.get("finalizers") or []):
            vs = self._finalizers(VS, vs, [BOUND], [])
        cstatus = content.get("status") or {}
        if not cstatus.get("readyToUse"):
            return 0.1
        self._set_status(
            VS,
            vs,
            {
                "boundVolumeSnapshotContentName": content_name,
                "creationTime": content["metadata"]["creationTimestamp"],
                "readyToUse": True,
                "restoreSize": format_quantity(int(cstatus.get("restoreSize") or 0)),
            },
        )
        return None

    def _delete_snapshot(self, vs: dict[str, Any]) -> float | None:
        meta = vs["metadata"]
        finalizers = meta.get("finalizers") or []
        if AS_SOURCE in finalizers:
            restoring = [
                p
                for p in self.store.items(PVC, meta["namespace"])
                if (
                    (p.get("spec") or {}).get("dataSourceRef")
                    or (p.get("spec") or {}).get("dataSource")
                    or {}
                ).get("name")
                == meta["name"]
                and (p.get("status") or {}).get("phase") != "Bound"
            ]
            if restoring:
                return 0.2
        content_name = (vs.get("status") or {}).get("boundVolumeSnapshotContentName")
        content = self.store.get(VSC, "", content_name or "")
        if content is not None and (content.get("spec") or {}).get("deletionPolicy") == "Delete":
            if not content["metadata"].get("deletionTimestamp"):
                self.objects.delete(self._rt(VSC), "", content_name or "")
            return 0.05
        if AS_SOURCE in finalizers or BOUND in finalizers:
            self._finalizers(VS, vs, [], [AS_SOURCE, BOUND])
        return None

    async def _reconcile_content(self, name: str) -> float | None:
        content = self.store.get(VSC, "", name)
        if content is None:
            return None
        meta, spec = content["metadata"], content.get("spec") or {}
        status = content.get("status") or {}
        handle = status.get("snapshotHandle") or (spec.get("source") or {}).get("snapshotHandle")
        path = self.server.data_dir / "snapshots" / handle if handle else None
        if meta.get("deletionTimestamp"):
            if spec.get("deletionPolicy") == "Delete" and path is not None:
                await remove_tree(path)
            if CONTENT_BOUND in (meta.get("finalizers") or []):
                self._finalizers(VSC, content, [], [CONTENT_BOUND])
            return None
        source_handle = (spec.get("source") or {}).get("snapshotHandle")
        if source_handle and not status.get("readyToUse"):
            from sandbox.controllers.volumes import tree_size

            exists = path is not None and path.is_dir()
            update: dict[str, Any] = {"snapshotHandle": source_handle, "readyToUse": exists}
            if exists and path is not None:
                update["restoreSize"] = tree_size(path)
                update["creationTime"] = time.time_ns()
            else:
                update["error"] = {"message": f"snapshot {source_handle} does not exist", "time": now()}
            self._set_status(VSC, content, update)
            return None if exists else 1.0
        ref = spec.get("volumeSnapshotRef") or {}
        vs = self.store.get(VS, ref.get("namespace", ""), ref.get("name", ""))
        if ref.get("uid") and (vs is None or vs["metadata"]["uid"] != ref["uid"]):
            if spec.get("deletionPolicy") == "Delete":
                self.objects.delete(self._rt(VSC), "", name)
            elif CONTENT_BOUND in (meta.get("finalizers") or []):
                self._finalizers(VSC, content, [], [CONTENT_BOUND])
        return None


def _ref(vs: dict[str, Any]) -> dict[str, Any]:
    meta = vs["metadata"]
    return {
        "apiVersion": f"{GROUP}/v1",
        "kind": "VolumeSnapshot",
        "name": meta["name"],
        "namespace": meta["namespace"],
        "uid": meta["uid"],
        "resourceVersion": meta["resourceVersion"],
    }


def _created(obj: dict[str, Any]) -> float:
    import datetime as dt

    stamp = obj["metadata"].get("creationTimestamp")
    if not stamp:
        return time.time()
    return dt.datetime.strptime(stamp, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=dt.UTC).timestamp()


def _claim_size(pvc: dict[str, Any]) -> int:
    """The bound claim's capacity in bytes: the snapshot's restoreSize."""
    return parse_quantity(((pvc.get("status") or {}).get("capacity") or {}).get("storage", "0"))
