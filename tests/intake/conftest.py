"""Fixtures for the intake tests: the bus tests' fresh nats-server, settings and BusClient."""

from tests.bus.conftest import settings  # noqa: F401 — a fixture shared with the bus tests
