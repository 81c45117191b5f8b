"""Storage: StorageClasses, a local-path provisioner and the PV controller's binding rules.

What kube-controller-manager's PV controller and a CSI external-provisioner do, on directories:
- seeds StorageClasses ``standard`` (the default) and ``fast``, both provisioned by
  ``sandbox.ferry.dev/local-path`` with reclaimPolicy Delete and Immediate binding, and
  ``local-wffc`` (WaitForFirstConsumer: a claim binds once a pod uses it, and gets the
  ``volume.kubernetes.io/selected-node`` annotation);
- a Pending PVC of such a class gets a PV ``pvc-<uid>`` whose data is ``<data>/volumes/pvc-<uid>``;
  with ``dataSource``/``dataSourceRef`` naming a VolumeSnapshot or a PVC, it waits until the
  source is ready and starts with a copy of its data;
- binding sets claimRef, ``spec.volumeName``, the ``pv.kubernetes.io/bind-completed`` and
  ``bound-by-controller`` annotations, phases Bound, and the pvc-/pv-protection finalizers;
- pre-bound PVs (claimRef naming a PVC) and PVCs naming a volume bind to each other;
- a PV whose claim is gone is Released; reclaimPolicy Delete removes its directory and the PV;
- a PVC that carries ``pv.kubernetes.io/bind-completed`` but whose volume does not exist is Lost
  (the trap of restoring a PVC manifest verbatim).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sandbox.controllers import Controller, Key
from sandbox.controllers.events import record
from sandbox.controllers.volumes import PATH_ATTRIBUTE, PROVISIONER, copy_tree, pv_path, remove_tree
from sandbox.server.storage import Event, clone

PVC, PV, PODS = "persistentvolumeclaims", "persistentvolumes", "pods"
SC = "storageclasses.storage.k8s.io"
VS = "volumesnapshots.snapshot.storage.k8s.io"
VSC = "volumesnapshotcontents.snapshot.storage.k8s.io"
PVC_PROTECTION = "kubernetes.io/pvc-protection"
PV_PROTECTION = "kubernetes.io/pv-protection"
BIND_COMPLETED = "pv.kubernetes.io/bind-completed"
SELECTED_NODE = "volume.kubernetes.io/selected-node"
BETA_CLASS = "volume.beta.kubernetes.io/storage-class"
NODE = "sandbox-node"


class StorageController(Controller):
    name = "storage"
    resources = (PVC, PV, PODS, VS)

    async def seed(self) -> None:
        sc = self.objects.rt(SC)
        classes: tuple[tuple[str, bool, dict[str, str], str], ...] = (
            ("standard", True, {}, "Immediate"),
            ("fast", False, {"tier": "fast"}, "Immediate"),
            ("local-wffc", False, {}, "WaitForFirstConsumer"),
        )
        for name, default, params, binding in classes:
            if self.store.get(SC, "", name) is None:
                meta: dict[str, Any] = {"name": name}
                if default:
                    meta["annotations"] = {"storageclass.kubernetes.io/is-default-class": "true"}
                body = {
                    "metadata": meta,
                    "provisioner": PROVISIONER,
                    "reclaimPolicy": "Delete",
                    "volumeBindingMode": binding,
                    "allowVolumeExpansion": True,
                }
                if params:
                    body["parameters"] = params
                self.objects.create(sc, "", body)

    def keys_for(self, event: Event) -> list[Key]:
        obj, meta = event.obj, event.obj["metadata"]
        ns = meta.get("namespace", "")
        if event.resource == PVC:
            keys = [(PVC, ns, meta["name"])]
            if (obj.get("spec") or {}).get("volumeName"):
                keys.append((PV, "", obj["spec"]["volumeName"]))
            return keys
        if event.resource == PV:
            keys = [(PV, "", meta["name"])]
            ref = (obj.get("spec") or {}).get("claimRef")
            if ref:
                keys.append((PVC, ref.get("namespace", ""), ref.get("name", "")))
            return keys
        if event.resource == PODS:
            return [(PVC, ns, c) for c in _claims_of(obj)]
        if event.resource == VS:
            return [
                (PVC, ns, p["metadata"]["name"])
                for p in self.store.items(PVC, ns)
                if (_source_of(p) or {}).get("name") == meta["name"]
            ]
        return []

    # -- claims -----------------------------------------------------------------------------------
    async def reconcile(self, resource: str, namespace: str, name: str) -> float | None:
        if resource == PV:
            return await self._reconcile_pv(name)
        if resource != PVC:
            return None
        pvc = self.store.get(PVC, namespace, name)
        if pvc is None:
            return None
        meta = pvc["metadata"]
        if meta.get("deletionTimestamp"):
            if PVC_PROTECTION in (meta.get("finalizers") or []) and not self._in_use(pvc):
                self._set_finalizer(PVC, pvc, PVC_PROTECTION, present=False)
            return None
        if PVC_PROTECTION not in (meta.get("finalizers") or []):
            pvc = self._set_finalizer(PVC, pvc, PVC_PROTECTION, present=True)
        phase = (pvc.get("status") or {}).get("phase")
        wanted = (pvc.get("spec") or {}).get("volumeName")
        if phase == "Lost":
            return None
        if (meta.get("annotations") or {}).get(BIND_COMPLETED) and (
            not wanted or self.store.get(PV, "", wanted) is None
        ):
            # "bound before, volume lost": what a restored PVC that kept its binding annotations gets
            self.objects.write(
                self.objects.rt(PVC), pvc, {**clone(pvc), "status": {"phase": "Lost"}}, subresource="status"
            )
            return None
        if phase == "Bound":
            return None
        if wanted:
            pv = self.store.get(PV, "", wanted)
            ref = ((pv or {}).get("spec") or {}).get("claimRef") or {}
            if pv is None or (ref and (ref.get("name"), ref.get("namespace")) != (name, namespace)):
                return 1.0
            self._bind(pv, pvc, by_controller=False)
            return None
        for pv in self.store.items(PV):
            ref = (pv.get("spec") or {}).get("claimRef") or {}
            if (ref.get("namespace"), ref.get("name")) == (namespace, name) and ref.get("uid") in (
                None,
                "",
                meta["uid"],
            ):
                if (pv.get("status") or {}).get("phase") != "Released":
                    self._bind(pv, pvc, by_controller=True)
                    return None
        sc = self.store.get(SC, "", claim_class(pvc))
        if sc is None or sc.get("provisioner") != PROVISIONER:
            return None  # nothing can provision it: it stays Pending, as on a real cluster
        if sc.get("volumeBindingMode") == "WaitForFirstConsumer":
            if not self._in_use(pvc):
                return None  # waits for a pod (pod events bring it back here)
            pvc = self._annotate(pvc, {SELECTED_NODE: NODE})
        pvc = self._annotate(
            pvc,
            {
                "volume.kubernetes.io/storage-provisioner": PROVISIONER,
                "volume.beta.kubernetes.io/storage-provisioner": PROVISIONER,
            },
        )
        source_dir = await self._source_dir(pvc)
        if source_dir is False:
            return 0.25  # the data source is not ready yet
        await self._provision(pvc, sc, source_dir if isinstance(source_dir, Path) else None)
        return None

    async def _source_dir(self, pvc: dict[str, Any]) -> Path | None | bool:
        src = _source_of(pvc)
        if not src:
            return None
        ns = pvc["metadata"]["namespace"]
        if src.get("kind") == "VolumeSnapshot":
            vs = self.store.get(VS, ns, src.get("name", ""))
            status = (vs or {}).get("status") or {}
            if not status.get("readyToUse"):
                return False
            content = self.store.get(VSC, "", status.get("boundVolumeSnapshotContentName", ""))
            handle = ((content or {}).get("status") or {}).get("snapshotHandle")
            return self.server.data_dir / "snapshots" / handle if handle else False
        if src.get("kind") == "PersistentVolumeClaim":
            other = self.store.get(PVC, ns, src.get("name", ""))
            if other is None or (other.get("status") or {}).get("phase") != "Bound":
                return False
            pv = self.store.get(PV, "", other["spec"]["volumeName"])
            return pv_path(pv) if pv else False
        return None

    async def _provision(self, pvc: dict[str, Any], sc: dict[str, Any], source: Path | None) -> None:
        meta, spec = pvc["metadata"], pvc.get("spec") or {}
        pv_name = f"pvc-{meta['uid']}"
        path = self.server.data_dir / "volumes" / pv_name
        if source is not None:
            await copy_tree(source, path)
        else:
            path.mkdir(parents=True, exist_ok=True)
        pvc = self.store.get(PVC, meta["namespace"], meta["name"]) or pvc
        if self.store.get(PV, "", pv_name) is None:
            size = ((spec.get("resources") or {}).get("requests") or {}).get("storage", "1Gi")
            body = {
                "metadata": {
                    "name": pv_name,
                    "annotations": {
                        "pv.kubernetes.io/provisioned-by": PROVISIONER,
                        "volume.kubernetes.io/provisioner-deletion-secret-name": "",
                        "volume.kubernetes.io/provisioner-deletion-secret-namespace": "",
                    },
                    "finalizers": [PV_PROTECTION],
                },
                "spec": {
                    "capacity": {"storage": size},
                    "accessModes": spec.get("accessModes") or ["ReadWriteOnce"],
                    "persistentVolumeReclaimPolicy": sc.get("reclaimPolicy", "Delete"),
                    "storageClassName": sc["metadata"]["name"],
                    "volumeMode": spec.get("volumeMode", "Filesystem"),
                    "claimRef": _claim_ref(pvc),
                    "csi": {
                        "driver": PROVISIONER,
                        "volumeHandle": pv_name,
                        "fsType": "ext4",
                        "volumeAttributes": {PATH_ATTRIBUTE: str(path)},
                    },
                },
            }
            self.objects.create(self.objects.rt(PV), "", body)
            record(
                self.objects,
                pvc,
                "ProvisioningSucceeded",
                f"Successfully provisioned volume {pv_name}",
                f"{PROVISIONER}_sandbox-node",
            )
        pv = self.store.get(PV, "", pv_name)
        assert pv is not None
        self._bind(pv, pvc, by_controller=True)

    def _bind(self, pv: dict[str, Any], pvc: dict[str, Any], by_controller: bool) -> None:
        pv_rt, pvc_rt = self.objects.rt(PV), self.objects.rt(PVC)
        new_pv = clone(pv)
        ref = new_pv["spec"].get("claimRef")
        if not ref or not ref.get("uid"):
            if not ref:
                new_pv["metadata"].setdefault("annotations", {})["pv.kubernetes.io/bound-by-controller"] = (
                    "yes"
                )
            new_pv["spec"]["claimRef"] = _claim_ref(pvc)
        if new_pv != pv:
            new_pv["metadata"].pop("resourceVersion", None)
            self.objects.write(pv_rt, pv, new_pv)
        pv = self.store.get(PV, "", pv["metadata"]["name"]) or pv
        if (pv.get("status") or {}).get("phase") != "Bound":
            self.objects.write(pv_rt, pv, {**clone(pv), "status": {"phase": "Bound"}}, subresource="status")
        new_pvc = clone(pvc)
        new_pvc["metadata"].pop("resourceVersion", None)
        annotations = new_pvc["metadata"].setdefault("annotations", {})
        annotations[BIND_COMPLETED] = "yes"
        if by_controller or not pvc["spec"].get("volumeName"):
            annotations["pv.kubernetes.io/bound-by-controller"] = "yes"
        new_pvc["spec"]["volumeName"] = pv["metadata"]["name"]
        self.objects.write(pvc_rt, pvc, new_pvc)
        pvc = self.store.get(PVC, pvc["metadata"]["namespace"], pvc["metadata"]["name"]) or pvc
        status = {
            "phase": "Bound",
            "accessModes": pv["spec"].get("accessModes") or [],
            "capacity": pv["spec"].get("capacity") or {},
        }
        self.objects.write(pvc_rt, pvc, {**clone(pvc), "status": status}, subresource="status")

    # -- volumes ----------------------------------------------------------------------------------
    async def _reconcile_pv(self, name: str) -> float | None:
        pv = self.store.get(PV, "", name)
        if pv is None:
            return None
        meta, spec = pv["metadata"], pv.get("spec") or {}
        phase = (pv.get("status") or {}).get("phase")
        ref = spec.get("claimRef")
        claim = self.store.get(PVC, ref.get("namespace", ""), ref.get("name", "")) if ref else None
        claim_gone = (
            ref is not None and ref.get("uid") and (claim is None or claim["metadata"]["uid"] != ref["uid"])
        )
        if meta.get("deletionTimestamp"):
            if PV_PROTECTION in (meta.get("finalizers") or []) and (claim is None or claim_gone):
                self._set_finalizer(PV, pv, PV_PROTECTION, present=False)
            return None
        if PV_PROTECTION not in (meta.get("finalizers") or []):
            pv = self._set_finalizer(PV, pv, PV_PROTECTION, present=True)
        rt = self.objects.rt(PV)
        if ref is None and phase in (None, "Pending"):
            self.objects.write(rt, pv, {**clone(pv), "status": {"phase": "Available"}}, subresource="status")
        elif claim_gone and phase != "Released":
            self.objects.write(rt, pv, {**clone(pv), "status": {"phase": "Released"}}, subresource="status")
            return 0.0
        elif claim_gone and phase == "Released" and spec.get("persistentVolumeReclaimPolicy") == "Delete":
            path = pv_path(pv)
            if (
                path is not None
                and meta.get("annotations", {}).get("pv.kubernetes.io/provisioned-by") == PROVISIONER
            ):
                await remove_tree(path)
            self.objects.delete(rt, "", name)
        return None

    # -- helpers ----------------------------------------------------------------------------------
    def _in_use(self, pvc: dict[str, Any]) -> bool:
        name = pvc["metadata"]["name"]
        for pod in self.store.items(PODS, pvc["metadata"]["namespace"]):
            if name in _claims_of(pod) and (pod.get("status") or {}).get("phase") not in (
                "Succeeded",
                "Failed",
            ):
                return True
        return False

    def _set_finalizer(
        self, resource: str, obj: dict[str, Any], finalizer: str, present: bool
    ) -> dict[str, Any]:
        new = clone(obj)
        new["metadata"].pop("resourceVersion", None)
        current = [f for f in new["metadata"].get("finalizers") or [] if f != finalizer]
        new["metadata"]["finalizers"] = current + ([finalizer] if present else [])
        self.objects.write(self.objects.rt(resource), obj, new)
        meta = obj["metadata"]
        return self.store.get(resource, meta.get("namespace", ""), meta["name"]) or new

    def _annotate(self, obj: dict[str, Any], annotations: dict[str, str]) -> dict[str, Any]:
        new = clone(obj)
        new["metadata"].pop("resourceVersion", None)
        new["metadata"].setdefault("annotations", {}).update(annotations)
        self.objects.write(self.objects.rt(PVC), obj, new)
        meta = obj["metadata"]
        return self.store.get(PVC, meta["namespace"], meta["name"]) or new


def claim_class(pvc: dict[str, Any]) -> str:
    """The claim's StorageClass: the beta annotation wins over ``spec.storageClassName``, as in the PV controller."""
    beta = (pvc["metadata"].get("annotations") or {}).get(BETA_CLASS)
    if beta is not None:
        return str(beta)
    return str((pvc.get("spec") or {}).get("storageClassName") or "")


def _claim_ref(pvc: dict[str, Any]) -> dict[str, Any]:
    meta = pvc["metadata"]
    return {
        "kind": "PersistentVolumeClaim",
        "namespace": meta["namespace"],
        "name": meta["name"],
        "uid": meta["uid"],
        "apiVersion": "v1",
        "resourceVersion": meta["resourceVersion"],
    }


def _claims_of(pod: dict[str, Any]) -> list[str]:
    vols = (pod.get("spec") or {}).get("volumes") or []
    return [v["persistentVolumeClaim"]["claimName"] for v in vols if v.get("persistentVolumeClaim")]


def _source_of(pvc: dict[str, Any]) -> dict[str, Any] | None:
    spec = pvc.get("spec") or {}
    src = spec.get("dataSourceRef") or spec.get("dataSource")
    return src if isinstance(src, dict) else None
