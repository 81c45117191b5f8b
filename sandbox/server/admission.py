"""Per-kind defaulting and validation: what the real strategies and admission plugins add on write.

Only what a migration tool notices is here: Secret ``stringData`` folded into base64 ``data``;
Namespace ``spec.finalizers: [kubernetes]`` and phase; Service cluster IPs; a PVC's default
StorageClass (the DefaultStorageClass admission plugin); Job selectors and controller-uid labels;
the defaults that make Deployments, StatefulSets, Jobs and CronJobs look like a real server's; every
PodSpec's defaults and the Pod admission plugins (``defaulting.py``; the ServiceAccount plugin's
account lookup and token volume here), a Pod's ``status.qosClass`` (``qos.py``); CRD name checks, cleanup
finalizer and Established status; the namespaces that may not be deleted.
"""

from __future__ import annotations

import base64
import ipaddress
import random
from typing import Any

from sandbox.server import defaulting, errors, qos
from sandbox.server.objects import Objects, now, random_suffix
from sandbox.types import ResourceType

SERVICE_CIDR = ipaddress.ip_network("10.96.0.0/12")
PROTECTED_NAMESPACES = {"default", "kube-system", "kube-public"}
CRD_FINALIZER = "customresourcecleanup.apiextensions.k8s.io"
DEFAULT_SC_ANNOTATION = "storageclass.kubernetes.io/is-default-class"
BETA_CLASS_ANNOTATION = "volume.beta.kubernetes.io/storage-class"
NODE_PORTS = range(30000, 32768)
SA_NAME_ANNOTATION = "kubernetes.io/service-account.name"
MIRROR_ANNOTATION = "kubernetes.io/config.mirror"
MAX_INT32 = 2**31 - 1  # a Job's backoffLimit when each index has its own
HPA_PERCENT_POLICY = {"type": "Percent", "value": 100, "periodSeconds": 15}
HPA_ROUND_TRIP_ANNOTATIONS = (
    "autoscaling.alpha.kubernetes.io/metrics",
    "autoscaling.alpha.kubernetes.io/behavior",
    "autoscaling.alpha.kubernetes.io/current-metrics",
    "autoscaling.alpha.kubernetes.io/conditions",
)


def _default(obj: dict[str, Any], key: str, value: Any) -> Any:
    """``obj[key]``, set to ``value`` first when absent or null (a Go nil pointer, or an empty string)."""
    if obj.get(key) in (None, ""):
        obj[key] = value
    return obj[key]


def _check_job_restart_policy(rt: ResourceType, name: str, job_spec: dict[str, Any], path: str) -> None:
    """A Job's pods must not restart: left out, the PodSpec default (Always) is refused, as for real."""
    policy = ((job_spec.get("template") or {}).get("spec") or {}).get("restartPolicy")
    if policy is not None and policy not in ("OnFailure", "Never"):
        field = f"{path}.template.spec.restartPolicy"
        why = f'Unsupported value: "{policy}": supported values: "OnFailure", "Never"'
        raise errors.invalid(rt, name, [("FieldValueNotSupported", field, why)])


class Admission:
    def __init__(self, objects: Objects) -> None:
        self.objects = objects
        objects.admit.append(self.admit)
        objects.before_delete.append(self.check_delete)

    def admit(self, rt: ResourceType, old: dict[str, Any] | None, obj: dict[str, Any]) -> None:
        handler = getattr(self, "_" + rt.resource.replace(".", "_").replace("-", "_"), None)
        if handler is not None:
            handler(rt, old, obj)

    def check_delete(self, rt: ResourceType, obj: dict[str, Any]) -> None:
        name = obj["metadata"]["name"]
        if rt.resource == "namespaces" and name in PROTECTED_NAMESPACES:
            raise errors.forbidden(rt, name, "this namespace may not be deleted")

    # -- core ---------------------------------------------------------------------------------
    def _namespaces(self, rt: ResourceType, old: dict[str, Any] | None, obj: dict[str, Any]) -> None:
        meta = obj["metadata"]
        meta.setdefault("labels", {})["kubernetes.io/metadata.name"] = meta["name"]
        if old is None:
            obj.setdefault("spec", {}).setdefault("finalizers", ["kubernetes"])
            obj["status"] = {"phase": "Active"}
        else:
            obj.setdefault("spec", {})
            if "finalizers" not in obj["spec"] and "finalizers" in (old.get("spec") or {}):
                obj["spec"]["finalizers"] = old["spec"]["finalizers"]

    def _secrets(self, rt: ResourceType, old: dict[str, Any] | None, obj: dict[str, Any]) -> None:
        string_data = obj.pop("stringData", None) or {}
        data = obj.setdefault("data", {}) if string_data or "data" in obj else None
        for key, value in string_data.items():
            assert data is not None
            data[key] = base64.b64encode(str(value).encode()).decode()
        obj.setdefault("type", (old or {}).get("type", "Opaque"))
        annotations = obj["metadata"].get("annotations") or {}
        if obj["type"] == "kubernetes.io/service-account-token" and not annotations.get(SA_NAME_ANNOTATION):
            field = f"metadata.annotations[{SA_NAME_ANNOTATION}]"
            raise errors.invalid(
                rt, obj["metadata"]["name"], [("FieldValueRequired", field, "Required value")]
            )
        if old is not None and old.get("type") != obj["type"]:
            why = f'Invalid value: "{obj["type"]}": field is immutable'
            raise errors.invalid(rt, obj["metadata"]["name"], [("FieldValueInvalid", "type", why)])

    def _services(self, rt: ResourceType, old: dict[str, Any] | None, obj: dict[str, Any]) -> None:
        spec = obj.setdefault("spec", {})
        spec.setdefault("type", "ClusterIP")
        spec.setdefault("sessionAffinity", "None")
        name = obj["metadata"]["name"]
        before_spec = (old or {}).get("spec") or {}
        if spec["type"] != "ExternalName":
            before = before_spec.get("clusterIP")
            if old is not None and before and before_spec.get("type") != "ExternalName":
                # validateUpgradeDowngradeClusterIPs / IPFamilies: the primary may not change once set
                wanted = spec.get("clusterIP") or (spec.get("clusterIPs") or [None])[0]
                if wanted and wanted != before:
                    shown = (
                        "[]string{" + ", ".join(f'"{ip}"' for ip in spec.get("clusterIPs") or [wanted]) + "}"
                    )
                    why = f"Invalid value: {shown}: may not change once set"
                    raise errors.invalid(rt, name, [("FieldValueInvalid", "spec.clusterIPs[0]", why)])
                families, old_families = spec.get("ipFamilies") or [], before_spec.get("ipFamilies") or []
                if families and old_families and families[0] != old_families[0]:
                    shown = "[]core.IPFamily{" + ", ".join(f'"{f}"' for f in families) + "}"
                    why = f"Invalid value: {shown}: may not change once set"
                    raise errors.invalid(rt, name, [("FieldValueInvalid", "spec.ipFamilies[0]", why)])
                spec["clusterIP"] = before
            elif spec.get("clusterIP") and spec["clusterIP"] != "None":
                self._check_cluster_ip(rt, name, spec["clusterIP"])
            elif not spec.get("clusterIP"):
                spec["clusterIP"] = self._allocate_ip()
            spec["clusterIPs"] = [spec["clusterIP"]]
            spec.setdefault("ipFamilies", ["IPv4"])
            spec.setdefault("ipFamilyPolicy", "SingleStack")
            spec.setdefault("internalTrafficPolicy", "Cluster")
        for port in spec.get("ports") or []:
            port.setdefault("protocol", "TCP")
            port.setdefault("targetPort", port.get("port"))
        self._node_ports(rt, old, obj)
        if old is None:
            obj["status"] = {"loadBalancer": {}}

    def _node_ports(self, rt: ResourceType, old: dict[str, Any] | None, obj: dict[str, Any]) -> None:
        """NodePort and LoadBalancer Services get a free port of 30000-32767 per port (kept on update)."""
        spec, name = obj["spec"], obj["metadata"]["name"]
        if spec["type"] not in ("NodePort", "LoadBalancer"):
            for port in spec.get("ports") or []:
                port.pop("nodePort", None)
            return
        spec.setdefault("externalTrafficPolicy", "Cluster")
        if spec["type"] == "LoadBalancer":
            spec.setdefault("allocateLoadBalancerNodePorts", True)
        before = {
            (p.get("port"), p.get("protocol")): p.get("nodePort")
            for p in (old or {}).get("spec", {}).get("ports") or []
        }
        used = {
            p.get("nodePort")
            for s in self.objects.store.items("services")
            if s["metadata"].get("uid") != obj["metadata"].get("uid")
            for p in (s.get("spec") or {}).get("ports") or []
        }
        for i, port in enumerate(spec.get("ports") or []):
            wanted = port.get("nodePort") or before.get((port.get("port"), port.get("protocol")))
            if wanted:
                why = ""
                if wanted not in NODE_PORTS:
                    why = "provided port is not in the valid range. The range of valid ports is 30000-32767"
                elif wanted in used:
                    why = "provided port is already allocated"
                if why:
                    field = f"spec.ports[{i}].nodePort"
                    raise errors.invalid(
                        rt, name, [("FieldValueInvalid", field, f"Invalid value: {wanted}: {why}")]
                    )
            else:
                free = [p for p in NODE_PORTS if p not in used]
                wanted = random.choice(free)
            port["nodePort"] = wanted
            used.add(wanted)

    def _ips_in_use(self) -> set[str]:
        return {(s.get("spec") or {}).get("clusterIP", "") for s in self.objects.store.items("services")}

    def _allocate_ip(self) -> str:
        """A random free address of the service range, as the real allocator picks one."""
        used = self._ips_in_use()
        while True:
            candidate = str(SERVICE_CIDR[random.randint(16, SERVICE_CIDR.num_addresses - 2)])
            if candidate not in used:
                return candidate

    def _check_cluster_ip(self, rt: ResourceType, name: str, ip: str) -> None:
        field, shown = "spec.clusterIPs", f'[]string{{"{ip}"}}'
        try:
            inside = ipaddress.ip_address(ip) in SERVICE_CIDR
        except ValueError:
            inside = False
        if not inside:
            why = f"failed to allocate IP {ip}: the provided IP ({ip}) is not in the valid range. The range of valid IPs is {SERVICE_CIDR}"
        elif ip in self._ips_in_use():
            why = f"failed to allocate IP {ip}: provided IP is already allocated"
        else:
            return
        raise errors.invalid(rt, name, [("FieldValueInvalid", field, f"Invalid value: {shown}: {why}")])

    def _pods(self, rt: ResourceType, old: dict[str, Any] | None, obj: dict[str, Any]) -> None:
        spec = obj.setdefault("spec", {})
        name = obj["metadata"]["name"]
        if not spec.get("containers"):
            raise errors.invalid(rt, name, [("FieldValueRequired", "spec.containers", "Required value")])
        try:
            defaulting.pod(obj, old, self.priority_class)
        except defaulting.PriorityClassNotFound as e:
            raise errors.forbidden(rt, name, f"no PriorityClass with name {e} was found") from e
        except ValueError as e:
            raise errors.forbidden(rt, name, str(e)) from e
        if old is None:
            self._service_account(rt, obj)
            obj["status"] = {"phase": "Pending", "qosClass": qos.pod_qos(spec)}

    def _service_account(self, rt: ResourceType, pod: dict[str, Any]) -> None:
        """The ServiceAccount admission plugin on create: the account must exist (``default`` may
        still be on its way: the real plugin waits for it), its token is mounted unless the pod or
        the account opts out, and a pod without ``imagePullSecrets`` gets the account's."""
        meta, spec = pod["metadata"], pod["spec"]
        if MIRROR_ANNOTATION in (meta.get("annotations") or {}):
            return
        ns, account_name = meta["namespace"], spec["serviceAccountName"]
        account = self.objects.store.get("serviceaccounts", ns, account_name)
        if account is None and account_name != "default":
            why = (
                f"error looking up service account {ns}/{account_name}: "
                f'serviceaccount "{account_name}" not found'
            )
            raise errors.forbidden(rt, meta["name"], why)
        if defaulting.should_automount(spec, account):
            defaulting.mount_token(spec, random_suffix())
        pull_secrets = (account or {}).get("imagePullSecrets") or []
        if not spec.get("imagePullSecrets") and pull_secrets:
            spec["imagePullSecrets"] = [{"name": s.get("name", "")} for s in pull_secrets]

    def priority_class(self, name: str | None) -> tuple[str | None, int, str] | None:
        """(name, value, preemptionPolicy) of a PriorityClass, or of the global default for None."""
        for pc in self.objects.store.items("priorityclasses.scheduling.k8s.io"):
            if pc["metadata"]["name"] == name or (name is None and pc.get("globalDefault")):
                policy = pc.get("preemptionPolicy") or "PreemptLowerPriority"
                return pc["metadata"]["name"], int(pc.get("value") or 0), policy
        if name in defaulting.SYSTEM_PRIORITY_CLASSES:  # a real server creates these two at start
            return name, defaulting.SYSTEM_PRIORITY_CLASSES[name], "PreemptLowerPriority"
        return None

    def _podtemplates(self, rt: ResourceType, old: dict[str, Any] | None, obj: dict[str, Any]) -> None:
        defaulting.template(_default(obj, "template", {}))

    def _replicationcontrollers(
        self, rt: ResourceType, old: dict[str, Any] | None, obj: dict[str, Any]
    ) -> None:
        """SetDefaults_ReplicationController: selector and labels from the template's labels."""
        spec = obj.setdefault("spec", {})
        labels = ((spec.get("template") or {}).get("metadata") or {}).get("labels")
        if labels:
            if not spec.get("selector"):
                spec["selector"] = dict(labels)
            if not obj["metadata"].get("labels"):
                obj["metadata"]["labels"] = dict(labels)
        _default(spec, "replicas", 1)
        defaulting.template(spec.get("template"))

    def _persistentvolumeclaims(
        self, rt: ResourceType, old: dict[str, Any] | None, obj: dict[str, Any]
    ) -> None:
        spec = obj.setdefault("spec", {})
        spec.setdefault("volumeMode", "Filesystem")
        beta = (obj["metadata"].get("annotations") or {}).get(BETA_CLASS_ANNOTATION)
        if old is None:
            if spec.get("storageClassName") is None and beta is None:  # the annotation names its class
                default = self.default_storage_class()
                if default:
                    spec["storageClassName"] = default
            obj["status"] = {"phase": "Pending"}

    def _persistentvolumes(self, rt: ResourceType, old: dict[str, Any] | None, obj: dict[str, Any]) -> None:
        spec = obj.setdefault("spec", {})
        spec.setdefault("persistentVolumeReclaimPolicy", "Retain")
        spec.setdefault("volumeMode", "Filesystem")
        if old is None:
            obj["status"] = {"phase": "Pending"}

    def _storageclasses_storage_k8s_io(
        self, rt: ResourceType, old: dict[str, Any] | None, obj: dict[str, Any]
    ) -> None:
        """Defaults, and the fields a real server refuses to change (ValidateStorageClassUpdate)."""
        obj.setdefault("reclaimPolicy", "Delete")
        obj.setdefault("volumeBindingMode", "Immediate")
        if old is None:
            return
        causes = []
        for field in ("parameters", "provisioner", "reclaimPolicy"):
            if (obj.get(field) or None) != (old.get(field) or None):
                causes.append(("FieldValueForbidden", field, f"Forbidden: updates to {field} are forbidden."))
        if obj.get("volumeBindingMode") != old.get("volumeBindingMode"):
            mode = obj.get("volumeBindingMode")
            causes.append(
                ("FieldValueInvalid", "volumeBindingMode", f'Invalid value: "{mode}": field is immutable')
            )
        if causes:
            raise errors.invalid(rt, obj["metadata"]["name"], causes)

    def default_storage_class(self) -> str | None:
        for sc in self.objects.store.items("storageclasses.storage.k8s.io"):
            if (sc["metadata"].get("annotations") or {}).get(DEFAULT_SC_ANNOTATION) == "true":
                return str(sc["metadata"]["name"])
        return None

    # -- apps / batch ---------------------------------------------------------------------------
    def _require_selector(self, rt: ResourceType, obj: dict[str, Any]) -> dict[str, Any]:
        spec = obj.setdefault("spec", {})
        if not spec.get("selector"):
            raise errors.invalid(
                rt, obj["metadata"]["name"], [("FieldValueRequired", "spec.selector", "Required value")]
            )
        return spec  # type: ignore[no-any-return]

    def _deployments_apps(self, rt: ResourceType, old: dict[str, Any] | None, obj: dict[str, Any]) -> None:
        spec = self._require_selector(rt, obj)
        spec.setdefault("replicas", 1)
        spec.setdefault("revisionHistoryLimit", 10)
        spec.setdefault("progressDeadlineSeconds", 600)
        strategy = _default(spec, "strategy", {})  # kubectl create deployment sends "strategy": {}
        _default(strategy, "type", "RollingUpdate")
        if strategy["type"] == "RollingUpdate":
            rolling = _default(strategy, "rollingUpdate", {})
            _default(rolling, "maxUnavailable", "25%")
            _default(rolling, "maxSurge", "25%")
        defaulting.template(spec.get("template"))

    def _statefulsets_apps(self, rt: ResourceType, old: dict[str, Any] | None, obj: dict[str, Any]) -> None:
        spec = self._require_selector(rt, obj)
        spec.setdefault("replicas", 1)
        spec.setdefault("podManagementPolicy", "OrderedReady")
        spec.setdefault("revisionHistoryLimit", 10)
        strategy = _default(spec, "updateStrategy", {})
        _default(strategy, "type", "RollingUpdate")
        if strategy["type"] == "RollingUpdate":
            _default(_default(strategy, "rollingUpdate", {}), "partition", 0)
        retention = _default(spec, "persistentVolumeClaimRetentionPolicy", {})
        _default(retention, "whenDeleted", "Retain")
        _default(retention, "whenScaled", "Retain")
        defaulting.template(spec.get("template"))
        defaulting.claim_templates(spec.get("volumeClaimTemplates"))

    def _daemonsets_apps(self, rt: ResourceType, old: dict[str, Any] | None, obj: dict[str, Any]) -> None:
        spec = self._require_selector(rt, obj)
        spec.setdefault("revisionHistoryLimit", 10)
        defaulting.template(spec.get("template"))

    def _replicasets_apps(self, rt: ResourceType, old: dict[str, Any] | None, obj: dict[str, Any]) -> None:
        spec = self._require_selector(rt, obj)
        spec.setdefault("replicas", 1)
        defaulting.template(spec.get("template"))

    def _jobs_batch(self, rt: ResourceType, old: dict[str, Any] | None, obj: dict[str, Any]) -> None:
        """SetDefaults_Job of Kubernetes 1.32, then the create strategy's selector and labels."""
        spec = obj.setdefault("spec", {})
        if spec.get("completions") is None and spec.get("parallelism") is None:
            spec["completions"] = 1  # a single pod; with parallelism alone it is a work queue
        _default(spec, "parallelism", 1)
        _default(spec, "backoffLimit", MAX_INT32 if spec.get("backoffLimitPerIndex") is not None else 6)
        _default(spec, "completionMode", "NonIndexed")
        _default(spec, "suspend", False)
        failure_policy = spec.get("podFailurePolicy")
        for rule in (failure_policy or {}).get("rules") or []:
            for pattern in rule.get("onPodConditions") or []:
                _default(pattern, "status", "True")
        # JobPodReplacementPolicy: beta and on since 1.29
        _default(spec, "podReplacementPolicy", "Failed" if failure_policy else "TerminatingOrFailed")
        if old is None and not spec.get("manualSelector") and spec.get("selector"):
            # a Job exported from another cluster keeps its controller-uid selector: refused, as for real
            raise errors.invalid(
                rt,
                obj["metadata"]["name"],
                [
                    (
                        "FieldValueInvalid",
                        "spec.selector",
                        f"Invalid value: {spec['selector']!r}: `selector` will be auto-generated",
                    )
                ],
            )
        if old is None and not spec.get("manualSelector"):
            uid, name = obj["metadata"]["uid"], obj["metadata"]["name"]
            labels = {
                "batch.kubernetes.io/controller-uid": uid,
                "batch.kubernetes.io/job-name": name,
                "controller-uid": uid,
                "job-name": name,
            }
            spec["selector"] = {"matchLabels": {"batch.kubernetes.io/controller-uid": uid}}
            tmpl_meta = _default(_default(spec, "template", {}), "metadata", {})
            _default(tmpl_meta, "labels", {}).update(labels)
        template_labels = ((spec.get("template") or {}).get("metadata") or {}).get("labels")
        if template_labels and not obj["metadata"].get("labels"):
            # a Job without labels of its own shows its pods' (defaulting, run again on every read)
            obj["metadata"]["labels"] = dict(template_labels)
        defaulting.template(spec.get("template"))
        _check_job_restart_policy(rt, obj["metadata"]["name"], spec, "spec")

    def _cronjobs_batch(self, rt: ResourceType, old: dict[str, Any] | None, obj: dict[str, Any]) -> None:
        """SetDefaults_CronJob; the job template gets no Job defaults (its Jobs do), its pod template does."""
        spec = obj.setdefault("spec", {})
        _default(spec, "concurrencyPolicy", "Allow")
        _default(spec, "suspend", False)
        _default(spec, "successfulJobsHistoryLimit", 3)
        _default(spec, "failedJobsHistoryLimit", 1)
        job_spec = (spec.get("jobTemplate") or {}).get("spec") or {}
        defaulting.template(job_spec.get("template"))
        _check_job_restart_policy(rt, obj["metadata"]["name"], job_spec, "spec.jobTemplate.spec")

    # -- autoscaling ------------------------------------------------------------------------------
    def _horizontalpodautoscalers_autoscaling(
        self, rt: ResourceType, old: dict[str, Any] | None, obj: dict[str, Any]
    ) -> None:
        """SetDefaults_HorizontalPodAutoscaler of autoscaling/v2, on the stored (v2) form; the v1
        round-trip annotations are dropped as the strategy drops them."""
        spec = obj.setdefault("spec", {})
        _default(spec, "minReplicas", 1)
        if not spec.get("metrics"):
            spec["metrics"] = [
                {
                    "type": "Resource",
                    "resource": {"name": "cpu", "target": {"type": "Utilization", "averageUtilization": 80}},
                }
            ]
        behavior = spec.get("behavior")
        if isinstance(behavior, dict):
            for direction, window, policies in (
                ("scaleUp", 0, [{"type": "Pods", "value": 4, "periodSeconds": 15}, HPA_PERCENT_POLICY]),
                ("scaleDown", 300, [HPA_PERCENT_POLICY]),
            ):
                rules = _default(behavior, direction, {})
                _default(rules, "stabilizationWindowSeconds", window)
                _default(rules, "selectPolicy", "Max")
                _default(rules, "policies", [dict(p) for p in policies])
        annotations = obj["metadata"].get("annotations")
        if annotations:
            for key in HPA_ROUND_TRIP_ANNOTATIONS:
                annotations.pop(key, None)
            if not annotations:
                obj["metadata"].pop("annotations")

    # -- CRDs -----------------------------------------------------------------------------------
    def _customresourcedefinitions_apiextensions_k8s_io(
        self, rt: ResourceType, old: dict[str, Any] | None, obj: dict[str, Any]
    ) -> None:
        spec = obj.get("spec") or {}
        names = spec.get("names") or {}
        name = obj["metadata"]["name"]
        causes = []
        if not spec.get("group"):
            causes.append(("FieldValueRequired", "spec.group", "Required value"))
        if not names.get("plural"):
            causes.append(("FieldValueRequired", "spec.names.plural", "Required value"))
        if not names.get("kind"):
            causes.append(("FieldValueRequired", "spec.names.kind", "Required value"))
        if not spec.get("versions"):
            causes.append(("FieldValueRequired", "spec.versions", "Required value"))
        if not causes and name != f"{names['plural']}.{spec['group']}":
            causes.append(
                (
                    "FieldValueInvalid",
                    "metadata.name",
                    f'Invalid value: "{name}": must be spec.names.plural+"."+spec.group',
                )
            )
        if causes:
            raise errors.invalid(rt, name, causes)
        if old is None:
            obj["metadata"]["finalizers"] = [*obj["metadata"].get("finalizers", []), CRD_FINALIZER]
        if obj["metadata"].get("deletionTimestamp"):
            return
        stored = [v["name"] for v in spec["versions"] if v.get("storage")]
        accepted = dict(names)
        accepted.setdefault("singular", names["kind"].lower())
        accepted.setdefault("listKind", names["kind"] + "List")
        stamp = ((old or {}).get("status") or {}).get("conditions", [{}])[0].get(
            "lastTransitionTime"
        ) or now()
        obj["status"] = {
            "acceptedNames": accepted,
            "storedVersions": sorted(
                set(((old or {}).get("status") or {}).get("storedVersions", [])) | set(stored)
            ),
            "conditions": [
                {
                    "type": "NamesAccepted",
                    "status": "True",
                    "reason": "NoConflicts",
                    "message": "no conflicts found",
                    "lastTransitionTime": stamp,
                },
                {
                    "type": "Established",
                    "status": "True",
                    "reason": "InitialNamesAccepted",
                    "message": "the initial names have been accepted",
                    "lastTransitionTime": stamp,
                },
            ],
        }
