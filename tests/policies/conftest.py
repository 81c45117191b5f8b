"""Fixtures for the policy tests: a fresh nats-server per test, settings, a BusClient, and a small
caller of the ``ferry.policies.*`` subjects (the bus contract, spoken as automation would)."""

from __future__ import annotations

from typing import Any

import msgspec
import pytest

from shared.bus.client import BusClient
from shared.contracts.policies import PolicyList, PolicyState
from shared.contracts.states import Rejected
from tests.bus.conftest import settings  # noqa: F401 — a fixture shared with the bus tests

_state = msgspec.json.Decoder(PolicyState)
_list = msgspec.json.Decoder(PolicyList)
_rejected = msgspec.json.Decoder(Rejected)


class Policies:
    """Request-reply on the policy subjects: the decoded reply, or the ``Rejected`` one."""

    def __init__(self, bus: BusClient) -> None:
        self.nc = bus.nc

    async def raw(self, subject: str, body: bytes) -> bytes:
        reply = await self.nc.request(subject, body, timeout=10)
        return bytes(reply.data)

    async def call(self, subject: str, body: bytes | str) -> PolicyState | Rejected:
        data = await self.raw(subject, body.encode() if isinstance(body, str) else body)
        if msgspec.json.decode(data).get("type") == "rejected":
            return _rejected.decode(data)
        return _state.decode(data)

    async def state(self, subject: str, body: bytes | str) -> PolicyState:
        reply = await self.call(subject, body)
        assert isinstance(reply, PolicyState), reply
        return reply

    async def list(self) -> PolicyList:
        return _list.decode(await self.raw("ferry.policies.list", b""))


def policy(policy_name: str, schedule: str = "@every 1s", **fields: Any) -> bytes:
    """A policy document as a user would post it; ``fields`` add or override keys."""
    body: dict[str, Any] = {
        "name": policy_name,
        "source": {"cluster": "east", "namespaces": ["shop"]},
        "target": {"cluster": "west", "repository": "dr"},
        "schedule": schedule,
        "rpo": "15m",
        "itinerary": ["echo"],
        **fields,
    }
    return msgspec.json.encode(body)


@pytest.fixture
def policies(client: BusClient) -> Policies:  # noqa: F811 — the fixture imported above
    return Policies(client)
