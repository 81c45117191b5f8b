"""The built-in resource table: what a v1.32 kube-apiserver serves, trimmed to what Ferry touches.

Short names, categories (``all``), scope and subresources follow the real server, because kubectl
(``get all``, ``api-resources``) and Ferry's discovery read them from here.
"""

from __future__ import annotations

from sandbox.types import ResourceType

# Groups whose objects carry metadata.generation (their strategies set it on create).
_GENERATION_GROUPS = {"apps", "batch", "networking.k8s.io", "policy", "autoscaling", "apiextensions.k8s.io"}

_POD_FIELDS = (
    "spec.nodeName",
    "spec.restartPolicy",
    "spec.schedulerName",
    "spec.serviceAccountName",
    "status.phase",
    "status.podIP",
)
_EVENT_FIELDS = (
    "involvedObject.kind",
    "involvedObject.namespace",
    "involvedObject.name",
    "involvedObject.uid",
    "involvedObject.apiVersion",
    "involvedObject.resourceVersion",
    "involvedObject.fieldPath",
    "reason",
    "source",
    "type",
)


def _t(
    gv: str,
    plural: str,
    kind: str,
    namespaced: bool = True,
    short: tuple[str, ...] = (),
    all_: bool = False,
    status: bool = False,
    scale: bool = False,
    extra: tuple[str, ...] = (),
    fields: tuple[str, ...] = (),
) -> ResourceType:
    group, _, version = gv.rpartition("/")
    return ResourceType(
        group=group,
        version=version,
        plural=plural,
        kind=kind,
        namespaced=namespaced,
        singular=kind.lower(),
        short_names=short,
        categories=("all",) if all_ else (),
        status=status,
        scale=scale,
        generation=group in _GENERATION_GROUPS,
        strategic=True,
        extra_subresources=extra,
        field_selectors=fields,
    )


BUILTIN_TYPES: tuple[ResourceType, ...] = (
    # core/v1
    _t(
        "v1",
        "namespaces",
        "Namespace",
        False,
        ("ns",),
        status=True,
        extra=("finalize",),
        fields=("status.phase",),
    ),
    _t("v1", "pods", "Pod", short=("po",), all_=True, status=True, extra=("exec", "log"), fields=_POD_FIELDS),
    _t(
        "v1",
        "services",
        "Service",
        short=("svc",),
        all_=True,
        status=True,
        fields=("spec.clusterIP", "spec.type"),
    ),
    _t("v1", "endpoints", "Endpoints", short=("ep",)),
    _t("v1", "configmaps", "ConfigMap", short=("cm",)),
    _t("v1", "secrets", "Secret", fields=("type",)),
    _t("v1", "serviceaccounts", "ServiceAccount", short=("sa",), extra=("token",)),
    _t("v1", "persistentvolumeclaims", "PersistentVolumeClaim", short=("pvc",), status=True),
    _t("v1", "persistentvolumes", "PersistentVolume", False, ("pv",), status=True),
    _t("v1", "events", "Event", short=("ev",), fields=_EVENT_FIELDS),
    _t("v1", "limitranges", "LimitRange", short=("limits",)),
    _t("v1", "resourcequotas", "ResourceQuota", short=("quota",), status=True),
    _t("v1", "nodes", "Node", False, ("no",), status=True),
    _t("v1", "podtemplates", "PodTemplate"),
    _t(
        "v1",
        "replicationcontrollers",
        "ReplicationController",
        short=("rc",),
        all_=True,
        status=True,
        scale=True,
    ),
    # apps/v1
    _t("apps/v1", "deployments", "Deployment", short=("deploy",), all_=True, status=True, scale=True),
    _t("apps/v1", "statefulsets", "StatefulSet", short=("sts",), all_=True, status=True, scale=True),
    _t("apps/v1", "daemonsets", "DaemonSet", short=("ds",), all_=True, status=True),
    _t("apps/v1", "replicasets", "ReplicaSet", short=("rs",), all_=True, status=True, scale=True),
    _t("apps/v1", "controllerrevisions", "ControllerRevision"),
    # batch/v1
    _t("batch/v1", "jobs", "Job", all_=True, status=True, fields=("status.successful",)),
    _t("batch/v1", "cronjobs", "CronJob", short=("cj",), all_=True, status=True),
    # autoscaling/v2 (preferred, stored) and autoscaling/v1, converted (sandbox.server.converting)
    *(
        _t(gv, "horizontalpodautoscalers", "HorizontalPodAutoscaler", short=("hpa",), all_=True, status=True)
        for gv in ("autoscaling/v2", "autoscaling/v1")
    ),
    # networking.k8s.io/v1
    _t("networking.k8s.io/v1", "ingresses", "Ingress", short=("ing",), status=True),
    _t("networking.k8s.io/v1", "ingressclasses", "IngressClass", False),
    _t("networking.k8s.io/v1", "networkpolicies", "NetworkPolicy", short=("netpol",)),
    # rbac.authorization.k8s.io/v1
    _t("rbac.authorization.k8s.io/v1", "roles", "Role"),
    _t("rbac.authorization.k8s.io/v1", "rolebindings", "RoleBinding"),
    _t("rbac.authorization.k8s.io/v1", "clusterroles", "ClusterRole", False),
    _t("rbac.authorization.k8s.io/v1", "clusterrolebindings", "ClusterRoleBinding", False),
    # storage.k8s.io/v1
    _t("storage.k8s.io/v1", "storageclasses", "StorageClass", False, ("sc",)),
    _t("storage.k8s.io/v1", "csidrivers", "CSIDriver", False),
    _t("storage.k8s.io/v1", "volumeattachments", "VolumeAttachment", False, status=True),
    # policy/v1
    _t("policy/v1", "poddisruptionbudgets", "PodDisruptionBudget", short=("pdb",), status=True),
    # scheduling.k8s.io/v1
    _t("scheduling.k8s.io/v1", "priorityclasses", "PriorityClass", False, ("pc",)),
    # discovery.k8s.io/v1
    _t("discovery.k8s.io/v1", "endpointslices", "EndpointSlice"),
    # coordination.k8s.io/v1
    _t("coordination.k8s.io/v1", "leases", "Lease"),
    # apiextensions.k8s.io/v1
    _t(
        "apiextensions.k8s.io/v1",
        "customresourcedefinitions",
        "CustomResourceDefinition",
        False,
        ("crd", "crds"),
        status=True,
    ),
)

# (group, plural) whose DELETE answers with the deleted object rather than a Status: the registries
# with ReturnDeletedObject, which is why the OpenAPI (so the typed clients) declares the kind as the
# answer — a Status there fails the client's validation (``delete_storage_class``: provisioner None).
RETURNS_DELETED_OBJECT = {
    ("", "pods"),
    ("", "namespaces"),
    ("", "services"),
    ("", "serviceaccounts"),
    ("", "persistentvolumeclaims"),
    ("", "persistentvolumes"),
    ("", "resourcequotas"),
    ("storage.k8s.io", "storageclasses"),
    ("storage.k8s.io", "csidrivers"),
    ("storage.k8s.io", "volumeattachments"),
}
