"""Write semantics shared by the HTTP handlers and the controllers: create, update, delete.

This is the registry "Store" of kube-apiserver in miniature: server-set metadata (uid,
creationTimestamp, generation, resourceVersion), generateName, status reset on create and the
status/main split on update, optimistic concurrency (409 Conflict), finalizers and
deletionTimestamp, no-op updates that keep the resourceVersion, dryRun. Per-kind defaults and
validation live in ``admission.py``; the HTTP layer only parses requests and renders answers.
"""

from __future__ import annotations

import datetime as dt
import random
import re
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sandbox.server import converting, errors
from sandbox.server.errors import ApiError
from sandbox.server.registry import Registry
from sandbox.server.storage import ObjectStore, clone
from sandbox.types import ResourceType

_NAME_CHARS = "bcdfghjklmnpqrstvwxz2456789"
_SUBDOMAIN = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*")
_LABEL = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?")
CONTROLLER_MANAGER = "kube-controller-manager"
_SERVER_META = ("uid", "creationTimestamp", "deletionTimestamp", "deletionGracePeriodSeconds", "generation")


def now() -> str:
    return dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def random_suffix(n: int = 5) -> str:
    return "".join(random.choice(_NAME_CHARS) for _ in range(n))


@dataclass
class DeleteOptions:
    propagation: str | None = None  # Background, Foreground, Orphan
    uid: str | None = None  # preconditions
    resource_version: str | None = None
    dry_run: bool = False


Hook = Callable[[ResourceType, dict[str, Any] | None, dict[str, Any]], None]


class Objects:
    """Everything that changes an object goes through here (HTTP and controllers alike)."""

    def __init__(self, store: ObjectStore, registry: Registry) -> None:
        self.store = store
        self.registry = registry
        self.admit: list[Hook] = []  # called before a write: (rt, old or None, new) — may raise ApiError
        self.before_delete: list[Callable[[ResourceType, dict[str, Any]], None]] = []
        # called after ``admit`` on an update of the main resource: (rt, old, new) — may raise ApiError
        self.validate_update: list[Callable[[ResourceType, dict[str, Any], dict[str, Any]], None]] = []

    # -- helpers --------------------------------------------------------------------------------
    def rt(self, resource: str) -> ResourceType:
        rt = self.registry.preferred(resource)
        if rt is None:
            raise errors.path_not_found()
        return rt

    def present(self, rt: ResourceType, obj: dict[str, Any]) -> dict[str, Any]:
        """A copy for a client, in the requested version, with apiVersion and kind first as Go prints them."""
        copy = converting.to_version(rt, obj)
        out: dict[str, Any] = {"apiVersion": rt.group_version, "kind": copy.pop("kind", rt.kind)}
        copy.pop("apiVersion", None)
        out.update(copy)
        return out

    def stored(self, rt: ResourceType, namespace: str, name: str) -> dict[str, Any]:
        obj = self.store.get(rt.resource, namespace if rt.namespaced else "", name)
        if obj is None:
            raise errors.not_found(rt, name)
        return obj

    def get(self, rt: ResourceType, namespace: str, name: str) -> dict[str, Any]:
        return self.present(rt, self.stored(rt, namespace, name))

    def find(self, resource: str, namespace: str, name: str) -> dict[str, Any] | None:
        """A copy of an object or None (for controllers)."""
        obj = self.store.get(resource, namespace, name)
        return clone(obj) if obj is not None else None

    def list(self, resource: str, namespace: str | None = None) -> list[dict[str, Any]]:
        return [clone(o) for o in self.store.items(resource, namespace)]

    # -- create ---------------------------------------------------------------------------------
    def create(
        self,
        rt: ResourceType,
        namespace: str,
        body: Any,
        *,
        dry_run: bool = False,
        manager: str = CONTROLLER_MANAGER,
        operation: str = "Update",
    ) -> dict[str, Any]:
        if not isinstance(body, dict):
            raise errors.bad_request("the body of the request was not a JSON object")
        obj: dict[str, Any] = clone(body)
        obj["metadata"] = obj.get("metadata") or {}
        self._check_type(rt, obj)
        obj = converting.to_storage(rt, obj)
        meta = obj["metadata"]
        ns_obj = None
        if rt.namespaced:
            if meta.get("namespace") and meta["namespace"] != namespace:
                raise errors.bad_request(
                    "the namespace of the provided object does not match the namespace sent on the request"
                )
            meta["namespace"] = namespace
            ns_obj = self.store.get("namespaces", "", namespace)
            if ns_obj is None:
                raise errors.namespace_not_found(namespace)
        else:
            meta.pop("namespace", None)
        if not meta.get("name"):
            prefix = meta.get("generateName")
            if not prefix:
                raise errors.invalid(
                    rt,
                    "",
                    [
                        (
                            "FieldValueRequired",
                            "metadata.name",
                            "Required value: name or generateName is required",
                        )
                    ],
                )
            meta["name"] = prefix + random_suffix()
            while self.store.get(rt.resource, namespace if rt.namespaced else "", meta["name"]):
                meta["name"] = prefix + random_suffix()
        name = meta["name"]
        self._validate_name(rt, name)
        if ns_obj is not None and ns_obj["metadata"].get("deletionTimestamp"):
            raise errors.terminating_namespace(rt, name, namespace)
        if self.store.get(rt.resource, meta.get("namespace", ""), name) is not None:
            raise errors.already_exists(rt, name)
        if meta.get("resourceVersion"):
            raise errors.resource_version_on_create()  # etcd3 refuses it; restore tools must strip it
        for key in (*_SERVER_META, "resourceVersion", "selfLink"):
            meta.pop(key, None)
        meta["uid"] = str(uuid.uuid4())
        meta["creationTimestamp"] = now()
        if rt.generation:
            meta["generation"] = 1
        if rt.status:
            obj.pop("status", None)
        for hook in self.admit:
            hook(rt, None, obj)
        meta.pop("managedFields", None)
        _manage(obj, manager, operation, "", rt.group_version)
        if dry_run:
            return self.present(rt, obj)
        return self.present(rt, self.store.put(rt.resource, obj, created=True))

    # -- update ---------------------------------------------------------------------------------
    def update(
        self,
        rt: ResourceType,
        namespace: str,
        name: str,
        body: Any,
        *,
        subresource: str = "",
        dry_run: bool = False,
        manager: str = CONTROLLER_MANAGER,
    ) -> dict[str, Any]:
        if not isinstance(body, dict):
            raise errors.bad_request("the body of the request was not a JSON object")
        old = self.stored(rt, namespace, name)
        new: dict[str, Any] = clone(body)
        meta = new.get("metadata") or {}
        new["metadata"] = meta
        if meta.get("name") and meta["name"] != name:
            raise errors.bad_request(
                f"the name of the object ({meta['name']}) does not match the name on the URL ({name})"
            )
        if rt.namespaced and meta.get("namespace") and meta["namespace"] != namespace:
            raise errors.bad_request(
                "the namespace of the provided object does not match the namespace sent on the request"
            )
        return self.write(rt, old, new, subresource=subresource, dry_run=dry_run, manager=manager)

    def write(
        self,
        rt: ResourceType,
        old: dict[str, Any],
        new: dict[str, Any],
        *,
        subresource: str = "",
        dry_run: bool = False,
        manager: str = CONTROLLER_MANAGER,
        operation: str = "Update",
    ) -> dict[str, Any]:
        """Store ``new`` over ``old`` (the stored object), honouring every update rule."""
        ometa = old["metadata"]
        meta = new.setdefault("metadata", {})
        if meta.get("resourceVersion") and meta["resourceVersion"] != ometa["resourceVersion"]:
            raise errors.conflict(rt, ometa["name"], errors.MODIFIED)
        self._check_type(rt, new)
        self._check_identity(rt, ometa, meta)
        new = converting.to_storage(rt, new)
        if subresource == "status":
            result = clone(old)
            if "status" in new:
                result["status"] = new["status"]
            else:
                result.pop("status", None)
        elif subresource == "binding":  # what the scheduler's pods/binding sets
            result = clone(old)
            result.setdefault("spec", {})["nodeName"] = (new.get("spec") or {}).get("nodeName")
        elif subresource == "finalize":
            result = clone(old)
            result.setdefault("spec", {})["finalizers"] = (new.get("spec") or {}).get("finalizers") or []
        else:
            result = new
            rmeta = result["metadata"]
            for key in ("name", "namespace", "managedFields", *_SERVER_META):
                if key in ometa:
                    rmeta[key] = ometa[key]
                else:
                    rmeta.pop(key, None)
            if rt.status:
                if "status" in old:
                    result["status"] = clone(old["status"])
                else:
                    result.pop("status", None)
            if ometa.get("deletionTimestamp"):
                added = set(rmeta.get("finalizers") or []) - set(ometa.get("finalizers") or [])
                if added:
                    raise errors.invalid(
                        rt,
                        ometa["name"],
                        [
                            (
                                "FieldValueForbidden",
                                "metadata.finalizers",
                                "Forbidden: no new finalizers can be added if the object is being deleted, "
                                f"found new finalizers {sorted(added)!r}",
                            )
                        ],
                    )
        result["metadata"]["resourceVersion"] = ometa["resourceVersion"]
        result["metadata"].pop("selfLink", None)
        for hook in self.admit:
            hook(rt, old, result)
        if subresource == "":
            for check in self.validate_update:
                check(rt, old, result)
        if rt.generation and subresource == "" and _spec_of(result) != _spec_of(old):
            result["metadata"]["generation"] = int(ometa.get("generation") or 0) + 1
        if result == old:
            return self.present(rt, old)  # a no-op keeps the resourceVersion and emits nothing
        _manage(result, manager, operation, subresource, rt.group_version)
        if dry_run:
            return self.present(rt, result)
        if ometa.get("deletionTimestamp") and _may_vanish(rt, result):
            gone = self.store.remove(rt.resource, ometa.get("namespace", ""), ometa["name"], final=result)
            return self.present(rt, gone or result)
        return self.present(rt, self.store.put(rt.resource, result, created=False))

    # -- delete ---------------------------------------------------------------------------------
    def delete(
        self, rt: ResourceType, namespace: str, name: str, opts: DeleteOptions | None = None
    ) -> tuple[dict[str, Any], bool]:
        """Returns (object, removed): removed is False while finalizers hold the object."""
        opts = opts or DeleteOptions()
        old = self.stored(rt, namespace, name)
        ometa = old["metadata"]
        if opts.uid and opts.uid != ometa.get("uid"):
            raise errors.conflict(
                rt,
                name,
                f"Precondition failed: UID in precondition: {opts.uid}, UID in object meta: {ometa.get('uid')}",
            )
        if opts.resource_version and opts.resource_version != ometa["resourceVersion"]:
            raise errors.conflict(
                rt,
                name,
                "Precondition failed: ResourceVersion in precondition: "
                f"{opts.resource_version}, ResourceVersion in object meta: {ometa['resourceVersion']}",
            )
        for check in self.before_delete:
            check(rt, old)
        obj = clone(old)
        meta = obj["metadata"]
        finalizers = list(meta.get("finalizers") or [])
        if (
            opts.propagation == "Orphan"
            and "orphan" not in finalizers
            and self.has_dependents(ometa.get("uid"))
        ):
            finalizers.append("orphan")
        if (
            opts.propagation == "Foreground"
            and "foregroundDeletion" not in finalizers
            and self.has_dependents(ometa.get("uid"))
        ):
            finalizers.append("foregroundDeletion")
        if finalizers:
            meta["finalizers"] = finalizers
        if rt.resource == "namespaces":
            obj.setdefault("status", {})["phase"] = "Terminating"
        if finalizers or not _may_vanish(rt, obj):
            if not meta.get("deletionTimestamp"):
                meta["deletionTimestamp"] = now()
                meta["deletionGracePeriodSeconds"] = 0
                if rt.generation:
                    meta["generation"] = int(meta.get("generation") or 0) + 1
            if obj == old or opts.dry_run:
                return self.present(rt, obj), False
            return self.present(rt, self.store.put(rt.resource, obj, created=False)), False
        if opts.dry_run:
            return self.present(rt, obj), True
        gone = self.store.remove(rt.resource, ometa.get("namespace", ""), name)
        assert gone is not None
        return self.present(rt, gone), True

    def has_dependents(self, uid: str | None) -> bool:
        if not uid:
            return False
        return any(
            any(ref.get("uid") == uid for ref in obj["metadata"].get("ownerReferences") or [])
            for _, obj in self.store.all_objects()
        )

    # -- checks ---------------------------------------------------------------------------------
    def _check_type(self, rt: ResourceType, obj: dict[str, Any]) -> None:
        kind = obj.get("kind")
        if kind and kind != rt.kind:
            raise errors.bad_request(
                f"the kind in the data ({kind}) does not match the expected kind ({rt.kind})"
            )
        api_version = obj.get("apiVersion")
        if api_version and api_version.rpartition("/")[0] != rt.group:
            raise errors.bad_request(
                f"the API version in the data ({api_version}) does not match the expected API version "
                f"({rt.group_version})"
            )
        obj["apiVersion"] = rt.group_version
        obj["kind"] = rt.kind

    def _check_identity(self, rt: ResourceType, ometa: dict[str, Any], meta: dict[str, Any]) -> None:
        """checkName of the update/patch handlers (400), then ValidateObjectMetaUpdate's uid (422).

        Left out, name, namespace and uid are the stored ones; creationTimestamp and the deletion
        fields are silently kept (rest.BeforeUpdate)."""
        if meta.get("name") and meta["name"] != ometa["name"]:
            raise errors.bad_request(
                f"the name of the object ({meta['name']}) does not match the name on the URL ({ometa['name']})"
            )
        if rt.namespaced and meta.get("namespace") and meta["namespace"] != ometa.get("namespace"):
            raise errors.bad_request(
                "the namespace of the provided object does not match the namespace sent on the request"
            )
        if meta.get("uid") and meta["uid"] != ometa.get("uid"):
            why = f'Invalid value: "{meta["uid"]}": field is immutable'
            raise errors.invalid(rt, ometa["name"], [("FieldValueInvalid", "metadata.uid", why)])

    def _validate_name(self, rt: ResourceType, name: str) -> None:
        if rt.group == "rbac.authorization.k8s.io":
            ok = "/" not in name and name not in (".", "..")
        elif rt.resource == "namespaces":
            ok = bool(_LABEL.fullmatch(name)) and len(name) <= 63
        else:
            ok = bool(_SUBDOMAIN.fullmatch(name)) and len(name) <= 253
        if not ok:
            raise errors.invalid_name(rt, name)


def _manage(obj: dict[str, Any], manager: str, operation: str, subresource: str, api_version: str) -> None:
    """One managedFields entry per (manager, operation, subresource), refreshed on each write,
    recording the version the write was made in.

    Simplified: ``fieldsV1`` lists top-level fields only; real servers track every field path.
    """
    entries = [
        e
        for e in obj["metadata"].get("managedFields") or []
        if (e.get("manager"), e.get("operation"), e.get("subresource", ""))
        != (manager, operation, subresource)
    ]
    fields: dict[str, Any] = {
        f"f:{k}": {} for k in sorted(obj) if k not in ("apiVersion", "kind", "metadata")
    }
    if subresource == "status":
        fields = {"f:status": {}}
    entry: dict[str, Any] = {
        "manager": manager,
        "operation": operation,
        "apiVersion": api_version,
        "time": now(),
        "fieldsType": "FieldsV1",
        "fieldsV1": fields,
    }
    if subresource:
        entry["subresource"] = subresource
    obj["metadata"]["managedFields"] = [*entries, entry]


def _spec_of(obj: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in obj.items() if k not in ("metadata", "status", "apiVersion", "kind")}


def _may_vanish(rt: ResourceType, obj: dict[str, Any]) -> bool:
    """An object being deleted goes away once nothing (finalizers, a namespace's spec) holds it."""
    if obj["metadata"].get("finalizers"):
        return False
    if rt.resource == "namespaces" and (obj.get("spec") or {}).get("finalizers"):
        return False
    return True


__all__ = ["ApiError", "DeleteOptions", "Objects", "now", "random_suffix"]
