from services.discovery.discovering import DiscoveryService
from shared.runtime import run

run(DiscoveryService)
