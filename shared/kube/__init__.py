"""Ferry's access to Kubernetes: the only package that imports kubernetes_asyncio.

    from shared.kube import Clusters, PatchType, NotFound, AlreadyExists

    async with Clusters(settings.kubeconfig) as clusters:      # contexts are cluster names
        east = await clusters.get("east")                      # one ApiClient per cluster, kept
        for r in await east.resources.preferred():             # every served type, CRDs included
            ...
        obj = await east.get("deployments.apps", "web", namespace="shop")
        await east.create(manifest)                            # AlreadyExists if taken
        await east.patch("deployments.apps", "web", {"spec": {"replicas": 0}}, namespace="shop")
        await east.apply(manifest, field_manager="ferry-restore")
        await east.delete("jobs.batch", "mover", namespace="shop")
        await east.wait_for("jobs.batch", "mover", lambda o: has_condition(o, "Complete"),
                            namespace="shop", within=600)

Errors are Ferry's (``shared.kube.errors``), each also a TemporaryError or a PermanentError;
429/5xx/connection failures are retried with backoff honouring Retry-After before they surface.
See cluster.py for every call, resources.py for discovery, watching.py for watches, execing.py for
``pod_exec`` (a command in a pod's container, over the ``pods/exec`` WebSocket).
"""

from shared.kube.cluster import FIELD_MANAGER, Cluster, Obj, PatchType, condition, has_condition, object_key
from shared.kube.clusters import IN_CLUSTER, Clusters, kubeconfig_file
from shared.kube.errors import (
    AlreadyExists,
    ApiError,
    BadRequest,
    Conflict,
    Expired,
    Forbidden,
    Invalid,
    KubeError,
    MethodNotAllowed,
    NoSuchCluster,
    NotFound,
    ServerError,
    TooManyRequests,
    Unauthorized,
    UnknownResource,
    Unreachable,
    UnsupportedMediaType,
)
from shared.kube.execing import ExecFailed, ExecResult, pod_exec
from shared.kube.requesting import RetryPolicy, Transport
from shared.kube.resources import Resource, ResourceMap
from shared.kube.watching import WatchEvent

__all__ = [
    "FIELD_MANAGER",
    "IN_CLUSTER",
    "AlreadyExists",
    "ApiError",
    "BadRequest",
    "Cluster",
    "Clusters",
    "Conflict",
    "ExecFailed",
    "ExecResult",
    "Expired",
    "Forbidden",
    "Invalid",
    "KubeError",
    "MethodNotAllowed",
    "NoSuchCluster",
    "NotFound",
    "Obj",
    "PatchType",
    "Resource",
    "ResourceMap",
    "RetryPolicy",
    "ServerError",
    "TooManyRequests",
    "Transport",
    "Unauthorized",
    "UnknownResource",
    "Unreachable",
    "UnsupportedMediaType",
    "WatchEvent",
    "condition",
    "has_condition",
    "kubeconfig_file",
    "object_key",
    "pod_exec",
]
