"""``python -m services.discovery``: the discovery and preflight steps, one process, one lifecycle.

Both read the source cluster through the same kubeconfig; the preflight service's health endpoint
takes a free port (the configured one is discovery's).
"""

from services.discovery.discovering import DiscoveryService
from services.discovery.preflight import PreflightService
from shared.runtime import run

run(DiscoveryService, PreflightService)
