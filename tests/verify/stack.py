"""The restore and verify steps with intake on a real nats-server, over the in-memory cluster of
tests/restore/fakes.py, and small helpers to submit restore requests and read their documents."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from typing import Any

import nats

from services.intake.intake import IntakeService
from services.restore.service import RestoreOptions, RestoreService
from services.verify.service import VerifyService
from shared.bus.client import BusClient
from shared.contracts.requests import MobilityRequest, RequestKind, Source, Target
from shared.contracts.states import RequestState
from shared.runtime import Settings
from shared.runtime.clusters import Cluster
from tests.restore.fakes import FakeCluster


@contextlib.asynccontextmanager
async def steps(settings: Settings, cluster: FakeCluster) -> AsyncIterator[BusClient]:
    async def clusters(_settings: Settings, _name: str) -> Cluster:
        return cluster

    nc = await nats.connect(settings.nats.url)
    async with (
        IntakeService(settings),
        RestoreService(settings, clusters=clusters, options=RestoreOptions(timeout=5, mover_timeout=60)),
        VerifyService(settings, clusters=clusters),
    ):
        yield BusClient(nc, timeout=5)
    await nc.close()


def request(group: str, ns: str = "shop-west", **changes: Any) -> MobilityRequest:
    target = Target(
        cluster="west", repository="west", namespace_map={"shop": ns}, storage_class_map={"gp2": "standard"}
    )
    fields: dict[str, Any] = {"source": Source(cluster="east", repository="west", snapshot=group), "target": target,
                              "itinerary": ["restore", "verify"], **changes}  # fmt: skip
    return MobilityRequest(kind=RequestKind.RESTORE, **fields)


async def run(client: BusClient, req: MobilityRequest) -> RequestState:
    return await client.wait(await client.submit(req), within=120)


def results(state: RequestState) -> tuple[Any, Any]:
    restored, verified = (s.result for s in state.steps)
    assert restored is not None and verified is not None
    return restored, verified


async def document(client: BusClient, name: str) -> bytes:
    stored = await client.nc.jetstream().object_store("ferry-inventories")
    return (await stored.get(name)).data or b""
