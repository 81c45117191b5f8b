"""``ferry.requests.migrations`` on a real nats-server: the plans computed from every stored request,
in plain JSON on the documented subject, within one NATS message however large the requests."""

from __future__ import annotations

import json

import msgspec

from services.intake.intake import IntakeService
from shared.bus.client import BusClient
from shared.contracts import subjects
from shared.contracts.migrations import MigrationPlan, plan_key
from shared.contracts.requests import MobilityRequest, RequestKind, Source, Target
from shared.runtime import Settings
from tests.bus.stubs import running, stub_request
from tests.intake.test_listing import large_request

APP = MobilityRequest(
    kind=RequestKind.MIGRATE,
    source=Source(cluster="east", namespaces=["shop"]),
    target=Target(cluster="west"),
    itinerary=["echo"],  # no step service runs here: the requests stay Queued
)


async def test_the_subject_answers_the_plans_of_the_stored_migrations_as_json(
    settings: Settings, client: BusClient
) -> None:
    async with running(IntakeService(settings)):
        stage = await client.submit(msgspec.structs.replace(APP, stage=True))
        cutover = await client.submit(msgspec.structs.replace(APP, cutover=True))
        await client.submit(stub_request(["echo"]))  # a replicate: no plan
        await client.submit(msgspec.structs.replace(APP, dry_run=True))  # a dry run: no plan
        reply = await client.nc.request(subjects.MIGRATION_LIST, b"", timeout=5)
        (plan,) = json.loads(reply.data)
        assert plan["key"] == plan_key(APP)
        assert plan["requests"] == [stage, cutover]
        assert (plan["cutover"], plan["cutover_request"], plan.get("stages", 0)) == ("running", cutover, 0)
        assert await client.migrations() == [msgspec.convert(plan, MigrationPlan)]


async def test_the_plans_of_large_requests_fit_one_message(settings: Settings, client: BusClient) -> None:
    async with running(IntakeService(settings)):
        for n in range(20):  # 20 applications of 1,000 namespaces: about 1.3 MB of plans
            await client.submit(msgspec.structs.replace(large_request(n), stage=True))
        reply = await client.nc.request(subjects.MIGRATION_LIST, b"", timeout=10)
        assert len(reply.data) <= client.nc.max_payload
        found = await client.migrations()
        assert 10 <= len(found) < 20
        assert all(len(p.namespaces) == 1000 for p in found)
