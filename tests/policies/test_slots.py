"""Policies fired by nats-server's message schedules, with two policy-service replicas, on a real
server: every slot runs once, pausing stops the slots, a slot during a running run is skipped, and
the RPO breach shows (status, condition, event, gauge) and clears when a run catches up."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import ClassVar

import msgspec
import pytest

from services.intake.intake import IntakeService
from services.intake.policies import PolicyService
from shared.bus.client import BusClient
from shared.contracts.errors import PermanentError
from shared.contracts.events import Report, Warning
from shared.contracts.policies import SCHEDULES_STREAM, PolicyPhase, slot_subject
from shared.contracts.states import ListQuery, Rejected, RequestState
from shared.contracts.steps import StepName, StepResult
from shared.runtime import Settings, StepContext
from tests.bus.stubs import Journal, ScriptedStep, running, step_class
from tests.policies.conftest import Policies, policy
from tests.waiting import eventually


def replicas(settings: Settings, rpo_interval: float = 15.0) -> list[PolicyService]:
    services = [PolicyService(settings, instance="p1"), PolicyService(settings, instance="p2")]
    for service in services:
        service.rpo_interval = rpo_interval
    return services


async def runs_of(client: BusClient, name: str) -> list[RequestState]:
    return await client.list(ListQuery(label=f"ferry.dev/policy={name}", limit=1000))


async def slots_fired(client: BusClient, name: str) -> int:
    info = await client.nc.jetstream().stream_info(SCHEDULES_STREAM, subjects_filter=slot_subject(name))
    return (info.state.subjects or {}).get(slot_subject(name), 0)


async def test_every_slot_runs_once_across_two_replicas_and_pause_stops_it(
    settings: Settings, client: BusClient, policies: Policies
) -> None:
    echo = step_class(StepName.ECHO, Journal())
    async with running(IntakeService(settings), *replicas(settings), echo(settings)):
        created = await policies.state("ferry.policies.create", policy("shop"))
        assert created.status.state is PolicyPhase.ACTIVE
        await eventually(lambda: _runs_at_least(policies, "shop", 5), within=20, what="five runs")
        paused = await policies.state("ferry.policies.pause", "shop")
        assert paused.status.state is PolicyPhase.PAUSED and paused.policy.paused

        # Every slot the server fired was handled once: run, or skipped with its reason.
        fired = await slots_fired(client, "shop")

        async def all_handled() -> bool:
            status = (await policies.state("ferry.policies.get", "shop")).status
            return status.runs + len(status.skipped) == fired

        await eventually(all_handled, within=10, what="every fired slot handled")
        status = (await policies.state("ferry.policies.get", "shop")).status
        requests = await runs_of(client, "shop")
        keys = [r.request.idempotency_key for r in requests]
        assert len(requests) == status.runs >= 5
        assert len(set(keys)) == len(keys), f"a slot ran twice: {keys}"
        assert all(key.startswith("policy-shop-") for key in keys)
        assert {r.request.target.cluster for r in requests} == {"west"}

        await asyncio.sleep(2.5)  # proving an absence: two and a half slots' worth of nothing
        assert await slots_fired(client, "shop") == fired, "a paused policy still fired"
        assert len(await runs_of(client, "shop")) == status.runs

        resumed = await policies.state("ferry.policies.resume", "shop")
        assert resumed.status.state is PolicyPhase.ACTIVE
        assert resumed.status.missed >= 2, "the slots of the pause are not reported"
        await eventually(
            lambda: _runs_at_least(policies, "shop", status.runs + 2), within=15, what="runs again"
        )

        deleted = await policies.raw("ferry.policies.delete", b"shop")
        assert b'"deleted"' in deleted
        gone = await policies.call("ferry.policies.get", "shop")
        assert isinstance(gone, Rejected) and gone.code == "not-found"


async def _runs_at_least(policies: Policies, name: str, runs: int) -> bool:
    return (await policies.state("ferry.policies.get", name)).status.runs >= runs


async def test_a_slot_while_the_previous_run_goes_on_is_skipped_not_doubled(
    settings: Settings, client: BusClient, policies: Policies
) -> None:
    echo = step_class(StepName.ECHO, Journal())
    body = policy("slow", labels={"behaviour": "sleep", "seconds": "2.5"})
    async with running(IntakeService(settings), *replicas(settings), echo(settings)):
        await policies.state("ferry.policies.create", body)

        async def skipped_while_running() -> bool:
            status = (await policies.state("ferry.policies.get", "slow")).status
            return any("still running" in s.reason for s in status.skipped) and status.runs >= 2

        await eventually(skipped_while_running, within=20, what="a slot skipped while a run goes on")
        await policies.state("ferry.policies.pause", "slow")
        status = (await policies.state("ferry.policies.get", "slow")).status
        requests = sorted(await runs_of(client, "slow"), key=lambda r: r.created_at)
    reasons = [s.reason for s in status.skipped if "still running" in s.reason]
    assert reasons[0].startswith("previous run replicate-"), reasons
    for earlier, later in zip(requests, requests[1:], strict=False):  # never two at once
        assert later.created_at >= earlier.updated_at or earlier.phase.value != "Completed", (earlier, later)


class DrStep(ScriptedStep):
    """The replicate step; ``broken`` makes the DR repository unreachable."""

    step: ClassVar[StepName] = StepName.ECHO
    journal: ClassVar[Journal] = Journal()
    name = "echo"
    broken: ClassVar[bool] = True

    async def handle(self, ctx: StepContext) -> StepResult:
        if DrStep.broken:
            raise PermanentError("repository dr: s3://dr-bucket is unreachable")
        return await super().handle(ctx)


async def test_rpo_breach_shows_and_clears_when_a_run_catches_up(
    settings: Settings, client: BusClient, policies: Policies
) -> None:
    DrStep.broken = True
    services = replicas(settings, rpo_interval=0.2)
    async with running(IntakeService(settings), *services, DrStep(settings)):
        await policies.state("ferry.policies.create", policy("db", rpo="3s"))

        async def breached() -> bool:
            return (await policies.state("ferry.policies.get", "db")).status.breached

        await eventually(breached, within=20, what="the RPO breached")
        state = await policies.state("ferry.policies.get", "db")
        assert state.status.last_run_phase == "Failed" and state.status.rpo_seconds > 3
        assert [c.type for c in state.status.conditions] == ["RPOBreached"]
        assert "RPO target 3s breached" in state.status.conditions[0].message
        assert 1.0 in [
            s.metrics.registry.get_sample_value("ferry_policy_rpo_breached", {"policy": "db"})
            for s in services
        ]

        DrStep.broken = False  # access restored

        async def caught_up() -> bool:
            return not (await policies.state("ferry.policies.get", "db")).status.breached

        await eventually(caught_up, within=20, what="the RPO met again")
        state = await policies.state("ferry.policies.get", "db")
        await policies.state("ferry.policies.pause", "db")
    assert state.status.conditions == [] and state.status.last_success_at
    assert state.status.rpo_seconds <= 3
    events = [e async for _, e in client.events("policy-db", follow=False, idle=0.3)]
    warnings = [e for e in events if isinstance(e, Warning)]
    reports = [e for e in events if isinstance(e, Report) and e.title == "rpo-met"]
    assert len(warnings) == 1 and "breached" in warnings[0].message
    assert len(reports) == 1


@pytest.mark.parametrize(
    ("body", "field", "words"),
    [
        pytest.param(policy("p", schedule="0 0 * * *"), "$.schedule", "has 5 fields", id="five-field cron"),
        pytest.param(
            policy("p", schedule="0 0 9 * * *", time_zone="Nowhere/City"),
            "$.time_zone",
            "unknown time zone",
            id="an unknown time zone",
        ),
        pytest.param(
            policy("p", retention=3), "$.retention", "unknown field `retention`", id="an unknown field"
        ),
    ],
)
async def test_a_bad_policy_is_refused_on_the_bus_and_nothing_is_scheduled(
    settings: Settings, client: BusClient, policies: Policies, body: bytes, field: str, words: str
) -> None:
    async with running(*replicas(settings)):
        reply = await policies.call("ferry.policies.create", body)
        assert isinstance(reply, Rejected) and reply.code == "invalid"
        assert reply.field == field and words in reply.error
        assert (await policies.list()).items == []


async def test_a_second_create_is_the_same_policy_or_a_conflict(
    settings: Settings, policies: Policies
) -> None:
    async with running(*replicas(settings)):
        first = await policies.state("ferry.policies.create", policy("web", schedule="@hourly", paused=True))
        again = await policies.state("ferry.policies.create", policy("web", schedule="@hourly", paused=True))
        other = await policies.call("ferry.policies.create", policy("web", schedule="@daily"))
        listed = await policies.list()
    assert again.status.created_at == first.status.created_at and again.status.state is PolicyPhase.PAUSED
    assert isinstance(other, Rejected) and other.code == "conflict" and other.field == "$.name"
    assert [s.policy.name for s in listed.items] == ["web"]


async def test_slots_fired_while_ferry_was_down_are_reported_missed_and_run_once(
    settings: Settings, client: BusClient, policies: Policies
) -> None:
    echo = step_class(StepName.ECHO, Journal())
    async with running(IntakeService(settings), echo(settings)):
        async with running(*replicas(settings)):
            await policies.state("ferry.policies.create", policy("late"))
            await eventually(lambda: _runs_at_least(policies, "late", 1), within=15, what="a first run")
        before = await slots_fired(client, "late")
        await eventually(
            lambda: _fired_at_least(client, "late", before + 3), within=15, what="NATS firing without Ferry"
        )
        async with running(*replicas(settings)):
            await eventually(lambda: _missed_at_least(policies, "late", 2), within=15, what="missed slots")
            await policies.state("ferry.policies.pause", "late")
            fired = await slots_fired(client, "late")

            async def all_handled() -> bool:
                status = (await policies.state("ferry.policies.get", "late")).status
                return status.runs + len(status.skipped) == fired

            await eventually(all_handled, within=10, what="every fired slot handled once")
            state = await policies.state("ferry.policies.get", "late")
            requests = await runs_of(client, "late")
    missed = [s for s in state.status.skipped if s.reason.startswith("missed:")]
    assert len(missed) == state.status.missed >= 2
    assert len(requests) == state.status.runs and len(requests) < fired - 1  # the backlog was not replayed


async def _fired_at_least(client: BusClient, name: str, count: int) -> bool:
    return await slots_fired(client, name) >= count


async def _missed_at_least(policies: Policies, name: str, missed: int) -> bool:
    return (await policies.state("ferry.policies.get", name)).status.missed >= missed


async def test_a_policy_naming_a_cluster_the_kubeconfig_lacks_is_refused_naming_the_field(
    settings: Settings, policies: Policies, tmp_path: Path
) -> None:
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(
        "apiVersion: v1\nkind: Config\n"
        "clusters: [{name: e, cluster: {server: 'http://127.0.0.1:1'}}]\n"
        "users: [{name: u, user: {}}]\n"
        "contexts: [{name: east, context: {cluster: e, user: u}}, {name: west, context: {cluster: e, user: u}}]\n"
    )
    known = msgspec.structs.replace(settings, kubeconfig=str(kubeconfig))
    async with running(*replicas(known)):
        wrong_target = await policies.call(
            "ferry.policies.create", policy("p", target={"cluster": "nowhere", "repository": "dr"})
        )
        wrong_source = await policies.call(
            "ferry.policies.create", policy("q", source={"cluster": "east-1", "namespaces": ["shop"]})
        )
        fine = await policies.call("ferry.policies.create", policy("r", paused=True))
        listed = await policies.list()
    assert isinstance(wrong_target, Rejected) and wrong_target.field == "$.target.cluster"
    assert "unknown cluster 'nowhere': the kubeconfig has east, west" in wrong_target.error
    assert isinstance(wrong_source, Rejected) and wrong_source.field == "$.source.cluster"
    assert not isinstance(fine, Rejected)
    assert [s.policy.name for s in listed.items] == ["r"]
