"""Update validation: the fields kube-apiserver 1.32 refuses to change once an object exists.

Each check is the ``ValidateXUpdate`` of ``pkg/apis/core/validation``, ``pkg/apis/apps/validation``
and ``pkg/apis/batch/validation`` (plus the PersistentVolumeClaimResize admission plugin), with the
upstream field paths and wording: a Pod spec (only images, ``activeDeadlineSeconds``, added
tolerations, removed scheduling gates), workload selectors, a StatefulSet spec outside its mutable
fields, a Job's selector/template/completions/completionMode, a PVC spec (only a bound claim's
storage request and ``volumeAttributesClassName``), a PV's volume source and mode, immutable
ConfigMaps and Secrets. Service cluster IPs and Secret ``type`` are checked in ``admission.py``,
where they are defaulted.

It runs after defaulting and admission, on writes to the main resource only (status, binding and
finalize writes change just their part), as the real registry validates after decoding. Refusals
are 422 ``Invalid`` with one cause per field. Go's rendering of big values (a whole PodTemplateSpec,
``cmp.Diff`` of a spec) is abbreviated: the message starts as upstream's, the tail is shorter.
"""

from __future__ import annotations

import copy
import json
from fractions import Fraction
from typing import Any

from sandbox.server import errors
from sandbox.server.objects import Objects
from sandbox.server.quantities import quantity
from sandbox.types import ResourceType

Cause = tuple[str, str, str]

IMMUTABLE = "field is immutable"
IMMUTABLE_WHEN_SET = "field is immutable when `immutable` is set"
POD_UPDATE = (
    "pod updates may not change fields other than `spec.containers[*].image`,"
    "`spec.initContainers[*].image`,`spec.activeDeadlineSeconds`,`spec.tolerations` "
    "(only additions to existing tolerations),`spec.terminationGracePeriodSeconds` "
    "(allow it to be set to 1 if it was previously negative)"
)
STATEFULSET_UPDATE = (
    "updates to statefulset spec for fields other than 'replicas', 'ordinals', 'template', "
    "'updateStrategy', 'persistentVolumeClaimRetentionPolicy' and 'minReadySeconds' are forbidden"
)
PVC_UPDATE = "spec is immutable after creation except resources.requests and volumeAttributesClassName for bound claims"
PVC_RESIZE = (
    "only dynamically provisioned pvc can be resized and the storageclass that provisions the pvc "
    "must support resize"
)
BETA_CLASS_ANNOTATION = "volume.beta.kubernetes.io/storage-class"
# PersistentVolumeSpec fields that are not its PersistentVolumeSource
PV_NOT_SOURCE = {
    "capacity",
    "accessModes",
    "claimRef",
    "persistentVolumeReclaimPolicy",
    "storageClassName",
    "mountOptions",
    "volumeMode",
    "nodeAffinity",
    "volumeAttributesClassName",
}
MAX_INT32 = 2**31 - 1


def _plain(value: Any) -> Any:
    """``value`` as Semantic.DeepEqual sees it: null, empty lists and empty maps are all "unset"."""
    if isinstance(value, dict):
        out = {k: _plain(v) for k, v in value.items()}
        return {k: v for k, v in out.items() if v not in (None, [], {})}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value


def _same(a: Any, b: Any) -> bool:
    return bool(_plain(a) == _plain(b))


def _quantity(value: Any) -> Fraction:
    """A size as the validation compares it; unset or unreadable is 0 (validated elsewhere)."""
    if value is None:
        return Fraction(0)
    try:
        return quantity(value)
    except ValueError:
        return Fraction(0)


def go_value(value: Any) -> str:
    """A field value as ``field.Invalid`` prints the simple ones (``%v``, ``%q``; nil as null)."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return str(value)
    if isinstance(value, str):
        return json.dumps(value)
    return json.dumps(value, sort_keys=True, separators=(",", ":"))


def go_selector(selector: Any) -> str:
    """A *metav1.LabelSelector as ``%#v`` prints it (the value behind the pointer)."""
    if not isinstance(selector, dict):
        return "null"

    def strings(items: list[Any]) -> str:
        return "{" + ", ".join(json.dumps(str(v)) for v in items) + "}"

    labels = selector.get("matchLabels")
    shown_labels = (
        "map[string]string{"
        + ", ".join(f"{json.dumps(k)}:{json.dumps(str(v))}" for k, v in sorted(labels.items()))
        + "}"
        if labels
        else "map[string]string(nil)"
    )
    exprs = selector.get("matchExpressions")
    if exprs:
        parts = []
        for e in exprs:
            values = e.get("values")
            shown = f"[]string{strings(values)}" if values else "[]string(nil)"
            parts.append(
                f"v1.LabelSelectorRequirement{{Key:{json.dumps(e.get('key', ''))}, "
                f"Operator:{json.dumps(e.get('operator', ''))}, Values:{shown}}}"
            )
        shown_exprs = "[]v1.LabelSelectorRequirement{" + ", ".join(parts) + "}"
    else:
        shown_exprs = "[]v1.LabelSelectorRequirement(nil)"
    return f"v1.LabelSelector{{MatchLabels:{shown_labels}, MatchExpressions:{shown_exprs}}}"


def _diff(type_name: str, old: dict[str, Any], new: dict[str, Any]) -> str:
    """An abbreviated ``cmp.Diff(old, new)``: the top-level fields that differ, - old and + new."""
    old, new = _plain(old), _plain(new)
    lines = [f"  {type_name}{{"]
    for key in sorted(set(old) | set(new)):
        if old.get(key) != new.get(key):
            go_name = key[:1].upper() + key[1:]
            if key in old:
                lines.append(f"- \t{go_name}: {go_value(old[key])},")
            if key in new:
                lines.append(f"+ \t{go_name}: {go_value(new[key])},")
    lines.append("  }")
    return "\n".join(lines) + "\n"


def _immutable(path: str, new: Any, old: Any, shown: str | None = None) -> list[Cause]:
    """``ValidateImmutableField``: Invalid with the new value."""
    if _same(new, old):
        return []
    return [("FieldValueInvalid", path, f"Invalid value: {shown or go_value(new)}: {IMMUTABLE}")]


def _selector_immutable(path: str, new: Any, old: Any) -> list[Cause]:
    return _immutable(path, new, old, go_selector(new))


class UpdateValidation:
    """Registered on ``Objects.validate_update``; one ``_<resource>`` method per kind it checks."""

    def __init__(self, objects: Objects) -> None:
        self.objects = objects
        objects.validate_update.append(self.validate)

    def validate(self, rt: ResourceType, old: dict[str, Any], new: dict[str, Any]) -> None:
        check = getattr(self, "_" + rt.resource.replace(".", "_").replace("-", "_"), None)
        if check is None:
            return
        causes: list[Cause] = check(old, new)
        if causes:
            raise errors.invalid(rt, old["metadata"]["name"], causes)

    # -- core -----------------------------------------------------------------------------------
    def _pods(self, old: dict[str, Any], new: dict[str, Any]) -> list[Cause]:
        """ValidatePodUpdate: munge the updatable fields to their old values, then compare."""
        before, after = old.get("spec") or {}, new.get("spec") or {}
        causes: list[Cause] = []
        for key in ("containers", "initContainers"):
            olds, news = before.get(key) or [], after.get(key) or []
            if len(olds) != len(news):
                why = "Forbidden: pod updates may not add or remove containers"
                return [("FieldValueForbidden", f"spec.{key}", why)]
            for i, c in enumerate(news):
                image = c.get("image") or ""
                if not image:
                    causes.append(("FieldValueRequired", f"spec.{key}[{i}].image", "Required value"))
                elif image.strip() != image:
                    why = f"Invalid value: {go_value(image)}: must not have leading or trailing whitespace"
                    causes.append(("FieldValueInvalid", f"spec.{key}[{i}].image", why))
        if causes:
            return causes
        deadline, was = after.get("activeDeadlineSeconds"), before.get("activeDeadlineSeconds")
        path = "spec.activeDeadlineSeconds"
        if deadline is not None:
            if not 0 <= deadline <= MAX_INT32:
                why = f"Invalid value: {deadline}: must be between 0 and {MAX_INT32}, inclusive"
                return [("FieldValueInvalid", path, why)]
            if was is not None and was < deadline:
                return [
                    (
                        "FieldValueInvalid",
                        path,
                        f"Invalid value: {deadline}: must be less than or equal to previous value",
                    )
                ]
        elif was is not None:
            return [
                (
                    "FieldValueInvalid",
                    path,
                    "Invalid value: null: must not update from a positive integer to nil value",
                )
            ]
        munged = copy.deepcopy(after)
        for key in ("containers", "initContainers"):
            for c, o in zip(munged.get(key) or [], before.get(key) or [], strict=True):
                c["image"] = o.get("image")
        munged["activeDeadlineSeconds"] = was
        causes += _only_added_tolerations(after.get("tolerations") or [], before.get("tolerations") or [])
        munged["tolerations"] = before.get("tolerations")
        grace, old_grace = (
            after.get("terminationGracePeriodSeconds"),
            before.get("terminationGracePeriodSeconds"),
        )
        if old_grace is not None and old_grace < 0 and grace == 1:
            munged["terminationGracePeriodSeconds"] = old_grace
        gates = [g.get("name") for g in after.get("schedulingGates") or []]
        old_gates = [g.get("name") for g in before.get("schedulingGates") or []]
        added = [g for g in gates if g not in old_gates]
        if added:
            why = f"Forbidden: only deletion is allowed, but found new scheduling gate '{added[0]}'"
            causes.append(("FieldValueForbidden", "spec.schedulingGates", why))
        munged["schedulingGates"] = before.get("schedulingGates")
        if not _same(munged, before):
            diff = _diff("core.PodSpec", before, munged)
            causes.append(("FieldValueForbidden", "spec", f"Forbidden: {POD_UPDATE}\n{diff}"))
        return causes

    def _configmaps(self, old: dict[str, Any], new: dict[str, Any]) -> list[Cause]:
        return _immutable_data(old, new, ("data", "binaryData"))

    def _secrets(self, old: dict[str, Any], new: dict[str, Any]) -> list[Cause]:
        return _immutable_data(old, new, ("data",))  # stringData is folded into data by now

    def _persistentvolumeclaims(self, old: dict[str, Any], new: dict[str, Any]) -> list[Cause]:
        """ValidatePersistentVolumeClaimUpdate, then the PersistentVolumeClaimResize plugin."""
        before, after = copy.deepcopy(old.get("spec") or {}), copy.deepcopy(new.get("spec") or {})
        bound = (new.get("status") or {}).get("phase") == "Bound"
        if not before.get("volumeName"):
            before["volumeName"] = after.get("volumeName")  # binding sets it once
        old_beta = (old["metadata"].get("annotations") or {}).get(BETA_CLASS_ANNOTATION)
        new_beta = (new["metadata"].get("annotations") or {}).get(BETA_CLASS_ANNOTATION)
        causes: list[Cause] = []
        if old_beta is not None and before.get("storageClassName") is None:
            if after.get("storageClassName") == old_beta:  # annotation -> field is allowed
                after["storageClassName"] = None
            elif new_beta != old_beta:
                path = f"metadata.annotations[{BETA_CLASS_ANNOTATION}]"
                causes.append(
                    ("FieldValueInvalid", path, f"Invalid value: {go_value(new_beta or '')}: {IMMUTABLE}")
                )
        elif new_beta != old_beta:
            path = f"metadata.annotations[{BETA_CLASS_ANNOTATION}]"
            causes.append(
                ("FieldValueInvalid", path, f"Invalid value: {go_value(new_beta or '')}: {IMMUTABLE}")
            )
        elif old_beta is None and before.get("storageClassName") is None:
            after["storageClassName"] = None  # a class may be set on a claim that had none
        old_size = _quantity(((before.get("resources") or {}).get("requests") or {}).get("storage"))
        new_size = _quantity(((after.get("resources") or {}).get("requests") or {}).get("storage"))
        if bound:
            requests = (after.get("resources") or {}).get("requests")
            if isinstance(requests, dict):
                old_requests = (before.get("resources") or {}).get("requests") or {}
                if "storage" in old_requests:
                    requests["storage"] = old_requests["storage"]
                else:
                    requests.pop("storage", None)
            if after.get("volumeAttributesClassName") is not None:
                after["volumeAttributesClassName"] = before.get("volumeAttributesClassName")
        if not _same(after, before):
            diff = _diff("core.PersistentVolumeClaimSpec", before, after)
            causes.append(("FieldValueForbidden", "spec", f"Forbidden: {PVC_UPDATE}\n{diff}"))
        capacity = _quantity(((old.get("status") or {}).get("capacity") or {}).get("storage"))
        if new_size < old_size and new_size <= capacity:
            why = "Forbidden: field can not be less than status.capacity"
            causes.append(("FieldValueForbidden", "spec.resources.requests.storage", why))
        if causes:
            return causes
        if new_size > old_size and not self._may_expand(old):
            rt = self.objects.rt("persistentvolumeclaims")
            raise errors.forbidden(rt, old["metadata"]["name"], PVC_RESIZE)
        return []

    def _may_expand(self, claim: dict[str, Any]) -> bool:
        name = (claim.get("spec") or {}).get("storageClassName") or (
            claim["metadata"].get("annotations") or {}
        ).get(BETA_CLASS_ANNOTATION)
        if not name:
            return False
        sc = self.objects.store.get("storageclasses.storage.k8s.io", "", name)
        return bool(sc and sc.get("allowVolumeExpansion"))

    def _persistentvolumes(self, old: dict[str, Any], new: dict[str, Any]) -> list[Cause]:
        before, after = old.get("spec") or {}, new.get("spec") or {}
        causes: list[Cause] = []
        source = {k: v for k, v in after.items() if k not in PV_NOT_SOURCE}
        old_source = {k: v for k, v in before.items() if k not in PV_NOT_SOURCE}
        if not _same(source, old_source):
            diff = _diff("core.PersistentVolumeSource", old_source, source)
            why = f"Forbidden: spec.persistentvolumesource is immutable after creation\n{diff}"
            causes.append(("FieldValueForbidden", "spec.persistentvolumesource", why))
        causes += _immutable("volumeMode", after.get("volumeMode"), before.get("volumeMode"))
        if before.get("nodeAffinity") is not None:
            causes += _immutable(
                "nodeAffinity",
                after.get("nodeAffinity"),
                before.get("nodeAffinity"),
                "core.VolumeNodeAffinity{...}",
            )
        return causes

    # -- apps -----------------------------------------------------------------------------------
    def _selector_only(self, old: dict[str, Any], new: dict[str, Any]) -> list[Cause]:
        """apps/v1 Deployments, ReplicaSets and DaemonSets: the selector may not change."""
        return _selector_immutable(
            "spec.selector", (new.get("spec") or {}).get("selector"), (old.get("spec") or {}).get("selector")
        )

    _deployments_apps = _selector_only
    _replicasets_apps = _selector_only
    _daemonsets_apps = _selector_only

    def _statefulsets_apps(self, old: dict[str, Any], new: dict[str, Any]) -> list[Cause]:
        mutable = {"replicas", "template", "updateStrategy", "minReadySeconds", "ordinals"}
        mutable.add("persistentVolumeClaimRetentionPolicy")
        before = {k: v for k, v in (old.get("spec") or {}).items() if k not in mutable}
        after = {k: v for k, v in (new.get("spec") or {}).items() if k not in mutable}
        if _same(before, after):
            return []
        return [("FieldValueForbidden", "spec", f"Forbidden: {STATEFULSET_UPDATE}")]

    # -- batch ----------------------------------------------------------------------------------
    def _jobs_batch(self, old: dict[str, Any], new: dict[str, Any]) -> list[Cause]:
        """ValidateJobSpecUpdate (the suspended-and-never-started case lets scheduling directives change)."""
        before, after = old.get("spec") or {}, new.get("spec") or {}
        causes: list[Cause] = []
        completions = after.get("completions")
        if after.get("completionMode") != "Indexed":
            causes += _immutable("spec.completions", completions, before.get("completions"))
        elif completions is not None and completions != before.get("completions"):
            if completions != after.get("parallelism"):
                why = f"Invalid value: {completions}: can only be modified in tandem with spec.parallelism"
                causes.append(("FieldValueInvalid", "spec.completions", why))
        causes += _selector_immutable("spec.selector", after.get("selector"), before.get("selector"))
        template, old_template = after.get("template") or {}, copy.deepcopy(before.get("template") or {})
        if before.get("suspend") and not (old.get("status") or {}).get("startTime"):
            tspec, ospec = template.get("spec") or {}, old_template.setdefault("spec", {})
            affinity, old_affinity = tspec.get("affinity"), ospec.get("affinity")
            if affinity is None and old_affinity is not None:
                rest = {k: v for k, v in old_affinity.items() if k != "nodeAffinity"}
                ospec["affinity"] = rest or None
            elif affinity is not None:
                ospec["affinity"] = {**(old_affinity or {}), "nodeAffinity": affinity.get("nodeAffinity")}
            for key in ("nodeSelector", "tolerations", "schedulingGates"):
                ospec[key] = tspec.get(key)
            tmeta, ometa = template.get("metadata") or {}, old_template.setdefault("metadata", {})
            for key in ("labels", "annotations"):
                ometa[key] = tmeta.get(key)
        causes += _immutable("spec.template", template, old_template, "core.PodTemplateSpec{...}")
        for key in ("completionMode", "backoffLimitPerIndex", "managedBy"):
            causes += _immutable(f"spec.{key}", after.get(key), before.get(key))
        for key, go_type in (("podFailurePolicy", "PodFailurePolicy"), ("successPolicy", "SuccessPolicy")):
            causes += _immutable(f"spec.{key}", after.get(key), before.get(key), f"batch.{go_type}{{...}}")
        return causes


def _only_added_tolerations(new: list[dict[str, Any]], old: list[dict[str, Any]]) -> list[Cause]:
    """validateOnlyAddedTolerations: each old toleration must still be there (its seconds may change)."""
    for was in old:
        if not any(_same({**was, "tolerationSeconds": t.get("tolerationSeconds")}, t) for t in new):
            why = "Forbidden: existing toleration can not be modified except its tolerationSeconds"
            return [("FieldValueForbidden", "spec.tolerations", why)]
    return []


def _immutable_data(old: dict[str, Any], new: dict[str, Any], fields: tuple[str, ...]) -> list[Cause]:
    """ValidateConfigMapUpdate / ValidateSecretUpdate once ``immutable: true`` was stored."""
    if not old.get("immutable"):
        return []
    causes: list[Cause] = []
    if not new.get("immutable"):
        causes.append(("FieldValueForbidden", "immutable", f"Forbidden: {IMMUTABLE_WHEN_SET}"))
    for field in fields:
        if not _same(new.get(field), old.get(field)):
            causes.append(("FieldValueForbidden", field, f"Forbidden: {IMMUTABLE_WHEN_SET}"))
    return causes


__all__ = ["UpdateValidation", "go_selector", "go_value"]
