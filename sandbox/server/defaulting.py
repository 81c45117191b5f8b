"""Kubernetes 1.32's defaulting of everything that holds a PodSpec, and the Pod admission plugins.

``SetDefaults_PodSpec``, ``SetDefaults_Container``, ``SetDefaults_Volume`` and friends of
``pkg/apis/core/v1/defaults.go``, walked the way ``zz_generated.defaults.go`` walks them, run on
every write (as the real server decodes every request body through them): a value the client set is
kept, one it left out comes back. ``pod()`` adds what only Pods get — ``SetDefaults_Pod`` (requests
from limits, ``enableServiceLinks``) and the admission plugins ServiceAccount (the account's name;
``mount_token`` adds its ``kube-api-access-xxxxx`` projected volume and mounts, given the account),
Priority and DefaultTolerationSeconds. The deprecated
``serviceAccount`` field is what the v1 conversion writes from ``serviceAccountName`` on every read.

Deprecated in-tree volume plugins (RBD, iSCSI, AzureDisk, ScaleIO) get no defaults here.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

DEFAULT_PRIORITY = 0
SYSTEM_PRIORITY_CLASSES = {"system-cluster-critical": 2000000000, "system-node-critical": 2000001000}
TOLERATED_TAINTS = ("node.kubernetes.io/not-ready", "node.kubernetes.io/unreachable")
DEFAULT_TOLERATION_SECONDS = 300
_CONTAINER_LISTS = ("initContainers", "containers", "ephemeralContainers")
_PROBES = ("livenessProbe", "readinessProbe", "startupProbe")
TOKEN_VOLUME_PREFIX = "kube-api-access-"
TOKEN_MOUNT_PATH = "/var/run/secrets/kubernetes.io/serviceaccount"
TOKEN_EXPIRATION_SECONDS = 3607  # serviceaccount.WarnOnlyBoundTokenExpirationSeconds
_DIGEST = re.compile(r"@[A-Za-z0-9_+.-]+:[0-9a-fA-F]{32,}$")


def _default(obj: dict[str, Any], key: str, value: Any) -> Any:
    """``obj[key]``, set to ``value`` first when absent or null (a Go nil pointer, or an empty string)."""
    if obj.get(key) in (None, ""):
        obj[key] = value
    return obj[key]


def _zero(obj: dict[str, Any], key: str, value: Any) -> None:
    """A non-pointer Go integer: 0 (or absent) means unset."""
    if not obj.get(key):
        obj[key] = value


def image_tag(image: str) -> str:
    """The tag of an image reference as ``parsers.ParseImageName`` finds it (``latest`` when none;
    ``""`` for no image, which the parser refuses)."""
    if not image:
        return ""
    if _DIGEST.search(image):
        name, _, _ = image.partition("@")
        last = name.rsplit("/", 1)[-1]
        return last.partition(":")[2]  # a digest with a tag keeps its tag; without one, none
    last = image.rsplit("/", 1)[-1]
    return last.partition(":")[2] or "latest"


def _http_get(handler: dict[str, Any] | None) -> None:
    http = (handler or {}).get("httpGet")
    if isinstance(http, dict):
        _default(http, "path", "/")
        _default(http, "scheme", "HTTP")
    grpc = (handler or {}).get("grpc")
    if isinstance(grpc, dict) and grpc.get("service") is None:
        grpc["service"] = ""  # +default=""


def container(c: dict[str, Any]) -> None:
    """``SetDefaults_Container`` and what the generated defaulter does for its ports, env and probes."""
    if not c.get("imagePullPolicy"):
        c["imagePullPolicy"] = (
            "Always" if image_tag(str(c.get("image") or "")) == "latest" else "IfNotPresent"
        )
    _default(c, "terminationMessagePath", "/dev/termination-log")
    _default(c, "terminationMessagePolicy", "File")
    if c.get("resources") is None:
        c["resources"] = {}  # a struct, not a pointer: Go always writes it
    for port in c.get("ports") or []:
        _default(port, "protocol", "TCP")
    for env in c.get("env") or []:
        field_ref = (env.get("valueFrom") or {}).get("fieldRef")
        if isinstance(field_ref, dict):
            _default(field_ref, "apiVersion", "v1")
    for name in _PROBES:
        probe = c.get(name)
        if isinstance(probe, dict):
            _zero(probe, "timeoutSeconds", 1)
            _zero(probe, "periodSeconds", 10)
            _zero(probe, "successThreshold", 1)
            _zero(probe, "failureThreshold", 3)
            _http_get(probe)
    for hook in ("postStart", "preStop"):
        _http_get((c.get("lifecycle") or {}).get(hook))


def _field_refs(items: list[dict[str, Any]] | None) -> None:
    for item in items or []:
        if isinstance(item.get("fieldRef"), dict):
            _default(item["fieldRef"], "apiVersion", "v1")


def volume(v: dict[str, Any]) -> None:
    """``SetDefaults_Volume`` and the defaults of its sources."""
    if set(v) <= {"name"}:
        v["emptyDir"] = {}  # no source at all is an emptyDir
    for source in ("secret", "configMap", "downwardAPI", "projected"):
        if isinstance(v.get(source), dict):
            _default(v[source], "defaultMode", 420)
    if isinstance(v.get("hostPath"), dict) and v["hostPath"].get("type") is None:
        v["hostPath"]["type"] = ""
    if isinstance(v.get("downwardAPI"), dict):
        _field_refs(v["downwardAPI"].get("items"))
    for source in (v.get("projected") or {}).get("sources") or []:
        if isinstance(source.get("downwardAPI"), dict):
            _field_refs(source["downwardAPI"].get("items"))
        if isinstance(source.get("serviceAccountToken"), dict):
            _default(source["serviceAccountToken"], "expirationSeconds", 3600)
    claim = (v.get("ephemeral") or {}).get("volumeClaimTemplate")
    if isinstance(claim, dict):
        _default(_default(claim, "spec", {}), "volumeMode", "Filesystem")


def pod_spec(spec: dict[str, Any]) -> None:
    """``SetDefaults_PodSpec`` and everything under it: what every PodSpec (Pod or template) gets."""
    _default(spec, "dnsPolicy", "ClusterFirst")
    _default(spec, "restartPolicy", "Always")
    _default(spec, "securityContext", {})
    _default(spec, "terminationGracePeriodSeconds", 30)
    _default(spec, "schedulerName", "default-scheduler")
    if not spec.get("serviceAccountName") and spec.get("serviceAccount"):
        spec["serviceAccountName"] = spec["serviceAccount"]  # the v1 conversion reads the old field
    if spec.get("serviceAccountName"):
        spec["serviceAccount"] = spec["serviceAccountName"]  # ... and writes it back
    else:
        spec.pop("serviceAccount", None)
    for v in spec.get("volumes") or []:
        volume(v)
    for key in _CONTAINER_LISTS:
        for c in spec.get(key) or []:
            container(c)


def template(tmpl: dict[str, Any] | None) -> None:
    """A PodTemplateSpec: its spec gets ``pod_spec`` (nothing Pod-only)."""
    if isinstance(tmpl, dict):
        pod_spec(_default(tmpl, "spec", {}))


def claim_templates(claims: list[dict[str, Any]] | None) -> None:
    """A StatefulSet's volumeClaimTemplates: ``SetDefaults_PersistentVolumeClaim`` and its spec's."""
    for claim in claims or []:
        _default(_default(claim, "spec", {}), "volumeMode", "Filesystem")
        _default(_default(claim, "status", {}), "phase", "Pending")


def pod(
    obj: dict[str, Any],
    old: dict[str, Any] | None,
    priority_of: Callable[[str | None], tuple[str | None, int, str] | None],
) -> None:
    """A Pod: ``SetDefaults_Pod``, ``pod_spec``, then the ServiceAccount, Priority and
    DefaultTolerationSeconds admission plugins. ``priority_of(name)`` answers (class name, value,
    preemption policy) for a PriorityClass name (None: the global default, if any) or None."""
    spec = obj.setdefault("spec", {})
    for key in ("initContainers", "containers"):
        for c in spec.get(key) or []:
            resources = c.get("resources") or {}
            if resources.get("limits"):
                requests = resources.setdefault("requests", {})
                for name, value in resources["limits"].items():
                    requests.setdefault(name, value)
    _default(spec, "enableServiceLinks", True)
    if old is None:
        _default(spec, "serviceAccountName", "default")
    pod_spec(spec)
    _priority(spec, old, priority_of)
    _tolerations(spec)


def should_automount(spec: dict[str, Any], account: dict[str, Any] | None) -> bool:
    """The pod's ``automountServiceAccountToken`` wins, then its account's; true when neither says."""
    if spec.get("automountServiceAccountToken") is not None:
        return bool(spec["automountServiceAccountToken"])
    if account is not None and account.get("automountServiceAccountToken") is not None:
        return bool(account["automountServiceAccountToken"])
    return True


def token_volume_source() -> dict[str, Any]:
    """``TokenVolumeSource()`` of the ServiceAccount admission plugin: token, CA bundle, namespace."""
    return {
        "defaultMode": 420,
        "sources": [
            {"serviceAccountToken": {"expirationSeconds": TOKEN_EXPIRATION_SECONDS, "path": "token"}},
            {"configMap": {"name": "kube-root-ca.crt", "items": [{"key": "ca.crt", "path": "ca.crt"}]}},
            {
                "downwardAPI": {
                    "items": [
                        {
                            "path": "namespace",
                            "fieldRef": {"apiVersion": "v1", "fieldPath": "metadata.namespace"},
                        }
                    ]
                }
            },
        ],
    }


def mount_token(spec: dict[str, Any], suffix: str) -> None:
    """``mountServiceAccountToken``: every container and initContainer not already mounting
    ``TOKEN_MOUNT_PATH`` gets a read-only mount of the ``kube-api-access-<suffix>`` projected volume
    (or of the pod's existing ``kube-api-access-*`` volume, which is then kept as it is)."""
    volumes = spec.get("volumes") or []
    existing = next(
        (v["name"] for v in volumes if str(v.get("name", "")).startswith(TOKEN_VOLUME_PREFIX)), None
    )
    name = existing or TOKEN_VOLUME_PREFIX + suffix
    needed = False
    for key in ("initContainers", "containers"):
        for c in spec.get(key) or []:
            mounts = c.get("volumeMounts") or []
            if not any(m.get("mountPath") == TOKEN_MOUNT_PATH for m in mounts):
                c["volumeMounts"] = [*mounts, {"name": name, "readOnly": True, "mountPath": TOKEN_MOUNT_PATH}]
                needed = True
    if existing is None and needed:
        spec["volumes"] = [*volumes, {"name": name, "projected": token_volume_source()}]


class PriorityClassNotFound(LookupError):
    pass


def _priority(
    spec: dict[str, Any],
    old: dict[str, Any] | None,
    priority_of: Callable[[str | None], tuple[str | None, int, str] | None],
) -> None:
    if old is not None:  # the plugin decides on create; updates may not change it
        before = old.get("spec") or {}
        for key in ("priority", "preemptionPolicy"):
            if spec.get(key) is None and before.get(key) is not None:
                spec[key] = before[key]
        return
    name = spec.get("priorityClassName") or None
    found = priority_of(name)
    if found is None and name:
        raise PriorityClassNotFound(name)
    class_name, value, policy = found or (None, DEFAULT_PRIORITY, "PreemptLowerPriority")
    if class_name and not name:
        spec["priorityClassName"] = class_name
    if spec.get("priority") is not None and spec["priority"] != value:
        raise ValueError(
            f"the integer value of priority ({spec['priority']}) must not be provided in pod spec; "
            f"priority admission controller computed {value} from the given PriorityClass name"
        )
    spec["priority"] = value
    _default(spec, "preemptionPolicy", policy)


def _tolerations(spec: dict[str, Any]) -> None:
    """DefaultTolerationSeconds: tolerate an unready or unreachable node for 300 s, unless told."""
    tolerations = spec.get("tolerations") or []
    for key in TOLERATED_TAINTS:
        if not any(
            t.get("key") in (key, None, "") and t.get("effect") in ("NoExecute", None, "")
            for t in tolerations
        ):
            tolerations.append(
                {
                    "key": key,
                    "operator": "Exists",
                    "effect": "NoExecute",
                    "tolerationSeconds": DEFAULT_TOLERATION_SECONDS,
                }
            )
    if tolerations:
        spec["tolerations"] = tolerations
