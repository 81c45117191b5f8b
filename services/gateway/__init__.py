"""Ferry's HTTP gateway: the REST API (``/v1``) in front of the bus, with bearer tokens and scopes.

Stateless by design: every call is translated to the bus contract (``shared.bus.client.BusClient``),
so any number of replicas can run behind a load balancer. See README.md in this folder.
"""
