"""Ferry's sandbox: a Kubernetes API server for tests and demos (a test double, not a real cluster).

Start clusters with ``SandboxCluster`` / ``sandbox_clusters`` (``sandbox.cluster``) or from the
command line with ``python -m sandbox serve``. See sandbox/README.md for what is faithful and what
is simplified.
"""

from sandbox.cluster import SandboxCluster, SandboxClusters, sandbox_clusters, write_kubeconfig
from sandbox.server.app import ApiServer, Request
from sandbox.server.serving import SandboxOptions

__all__ = [
    "Request",
    "ApiServer",
    "SandboxCluster",
    "SandboxClusters",
    "SandboxOptions",
    "sandbox_clusters",
    "write_kubeconfig",
]
