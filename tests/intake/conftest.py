"""Fixtures for the intake tests: the bus tests' fresh nats-server, settings and BusClient."""

from tests.bus.conftest import client, settings  # noqa: F401 — fixtures shared with the bus tests
