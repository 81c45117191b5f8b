"""Failover, failback and drills of a policy on a real nats-server, with stub steps: the requests
they submit (read back from the intake, as any client would), the policy's state machine, the
schedules stopped and restarted, and the refusals a person sees.

Whether the primary answers is the one thing stubbed at the service (``PolicyService.probe``): the
probe of a real kubeconfig context is exercised by the full-stack test (test_failback.py).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import msgspec
import pytest

from services.intake.intake import IntakeService
from services.intake.policies import PolicyService
from shared.bus.client import BusClient
from shared.contracts.policies import POLICY_LABEL, SCHEDULES_STREAM, PolicyPhase, PolicyState, slot_subject
from shared.contracts.requests import ConflictPolicy, ExistingVolumes, RequestKind
from shared.contracts.states import Accepted, Phase, Rejected
from shared.contracts.steps import StepName
from shared.runtime import Service, Settings
from tests.bus.stubs import Journal, running, step_class
from tests.policies.conftest import Policies, policy
from tests.policies.test_slots import runs_of, slots_fired
from tests.waiting import eventually

STEPS = (
    StepName.ECHO,
    StepName.PREFLIGHT,
    StepName.DISCOVER,
    StepName.SNAPSHOT,
    StepName.TRANSFER,
    StepName.RESTORE,
    StepName.VERIFY,
    StepName.CLEANUP,
    StepName.ROLLBACK,
)
DR = {"cluster": "west", "repository": "dr", "namespace_map": {"shop": "shop-dr"}}
SOURCE = {"cluster": "east", "namespaces": ["shop"], "repository": "east"}


def primary(answers: bool) -> Callable[[str], Awaitable[tuple[bool, str]]]:
    async def probe(cluster: str) -> tuple[bool, str]:
        return answers, f"{cluster} {'answered (HTTP 200)' if answers else 'did not answer: refused'}"

    return probe


def stack(settings: Settings, *, answers: bool = True) -> list[Service]:
    """The intake, one policy service whose probe says ``answers``, and a stub of every step."""
    service = PolicyService(settings)
    service.probe = primary(answers)
    journal = Journal()
    return [IntakeService(settings), service, *(step_class(step, journal)(settings) for step in STEPS)]


def body(name: str, **fields: Any) -> bytes:
    return policy(name, source=SOURCE, target=DR, **fields)


async def replicated(policies: Policies, name: str) -> PolicyState:
    """The policy once a run completed (so the DR repository has a replica)."""

    async def has_replica() -> bool:
        return bool((await policies.state("ferry.policies.get", name)).status.last_replica_at)

    await eventually(has_replica, within=20, what=f"a replica of {name}")
    return await policies.state("ferry.policies.get", name)


async def settled(
    policies: Policies, name: str, check: Callable[[PolicyState], bool], what: str
) -> PolicyState:
    async def done() -> bool:
        return check(await policies.state("ferry.policies.get", name))

    await eventually(done, within=30, what=what)
    return await policies.state("ferry.policies.get", name)


async def test_a_failover_with_the_primary_up_is_a_cutover_and_a_failback_makes_the_policy_active_again(
    settings: Settings, client: BusClient, policies: Policies
) -> None:
    async with running(*stack(settings, answers=True)):
        await policies.state("ferry.policies.create", body("shop"))
        await replicated(policies, "shop")
        over = await policies.state("ferry.policies.failover", "shop")
        status = over.status
        assert status.state is PolicyPhase.FAILED_OVER and status.failover_request
        assert status.failover_mode == "cutover" and status.data_lost_seconds == 0.0
        assert "east answered" in status.failover_reason
        failover = await client.wait(status.failover_request, within=30)
        fired = await slots_fired(client, "shop")
        runs = (await policies.state("ferry.policies.get", "shop")).status.runs
        await asyncio.sleep(1.5)  # proving an absence: the @every 1s schedule fires no more
        assert await slots_fired(client, "shop") == fired

        # A slot that still arrives (one fired before the schedule was purged) is skipped, not run.
        await client.nc.jetstream().publish(slot_subject("shop"), b"shop")
        skipped = await settled(
            policies,
            "shop",
            lambda s: any("failed over" in k.reason for k in s.status.skipped),
            "a skipped slot",
        )
        assert skipped.status.runs == runs and skipped.status.failover_phase == "Completed"
        assert skipped.status.rto_seconds is not None and skipped.status.rto_seconds >= 0

        again = await policies.call("ferry.policies.failover", "shop")
        assert (
            isinstance(again, Rejected) and again.code == "conflict" and "already failed over" in again.error
        )
        drill = await policies.call("ferry.policies.drill", b'{"name": "shop"}')
        assert isinstance(drill, Rejected) and drill.code == "conflict" and "failed over" in drill.error

        back = await policies.state("ferry.policies.failback", "shop")
        assert back.status.state is PolicyPhase.FAILED_OVER and back.status.failback_request
        failback = await client.wait(back.status.failback_request, within=30)
        active = await settled(
            policies, "shop", lambda s: s.status.state is PolicyPhase.ACTIVE, "active again"
        )
        await eventually(lambda: _runs_at_least(policies, "shop", runs + 2), within=15, what="runs again")
        await policies.state("ferry.policies.pause", "shop")

    assert failover.phase is Phase.COMPLETED
    cut = failover.request
    assert (cut.kind, cut.cutover, cut.conflict_policy) == (RequestKind.MIGRATE, True, ConflictPolicy.UPDATE)
    assert cut.volumes.existing is ExistingVolumes.REFRESH
    assert (cut.source.cluster, cut.source.namespaces, cut.source.repository) == ("east", ["shop"], "east")
    assert (cut.target.cluster, cut.target.repository) == ("west", "dr")
    assert cut.target.namespace_map == {"shop": "shop-dr"}  # the real namespaces, as replicated
    assert cut.labels[POLICY_LABEL] == "shop" and cut.labels["ferry.dev/dr"] == "failover"

    assert failback.phase is Phase.COMPLETED
    home = failback.request
    assert (home.kind, home.cutover, home.conflict_policy) == (
        RequestKind.MIGRATE,
        True,
        ConflictPolicy.UPDATE,
    )
    assert (home.source.cluster, home.source.namespaces, home.source.repository) == (
        "west",
        ["shop-dr"],
        "dr",
    )
    assert (home.target.cluster, home.target.repository) == ("east", "east")
    assert (
        home.target.namespace_map == {"shop-dr": "shop"} and home.volumes.existing is ExistingVolumes.REFRESH
    )
    assert active.status.failback_phase == "Completed" and active.status.failed_back_at
    assert active.status.last_replica_at >= failback.created_at  # its snapshot is in the DR repository


async def _runs_at_least(policies: Policies, name: str, runs: int) -> bool:
    return (await policies.state("ferry.policies.get", name)).status.runs >= runs


async def test_a_failover_with_the_primary_down_restores_the_newest_replica_and_loses_the_rpo(
    settings: Settings, client: BusClient, policies: Policies
) -> None:
    async with running(*stack(settings, answers=False)):
        await policies.state("ferry.policies.create", body("none", schedule="@every 1h"))
        refused = await policies.call("ferry.policies.failover", "none")
        unchanged = await policies.state("ferry.policies.get", "none")

        await policies.state("ferry.policies.create", body("db"))
        await replicated(policies, "db")
        over = await policies.state("ferry.policies.failover", "db")
        restore = await client.wait(over.status.failover_request, within=30)
        landed = await settled(policies, "db", lambda s: s.status.failover_phase == "Completed", "landed")
    assert isinstance(refused, Rejected) and refused.code == "conflict"
    assert "does not answer" in refused.error and "nothing to fail over to" in refused.error
    assert unchanged.status.state is PolicyPhase.ACTIVE and not unchanged.status.failover_at
    status = over.status
    assert status.failover_mode == "restore" and "east did not answer" in status.failover_reason
    assert status.data_lost_seconds is not None and status.data_lost_seconds > 0
    assert status.data_lost_seconds == status.rpo_seconds  # the RPO at the failover's instant
    request = restore.request
    assert request.kind is RequestKind.RESTORE and restore.phase is Phase.COMPLETED
    assert (request.source.repository, request.source.snapshot) == ("dr", "latest")
    assert (request.target.cluster, request.target.namespace_map) == ("west", {"shop": "shop-dr"})
    assert landed.status.state is PolicyPhase.FAILED_OVER and landed.status.rto_seconds is not None


async def test_a_failover_that_fails_leaves_the_policy_active_and_its_schedule_running(
    settings: Settings, client: BusClient, policies: Policies
) -> None:
    async with running(*stack(settings, answers=True)):
        await policies.state("ferry.policies.create", body("web", labels={"behaviour": "fail-perm"}))
        over = await policies.state("ferry.policies.failover", "web")
        failed = await client.wait(over.status.failover_request, within=30)
        active = await settled(
            policies, "web", lambda s: s.status.state is PolicyPhase.ACTIVE, "active again"
        )
        fired = await slots_fired(client, "web")
        await eventually(
            lambda: _fired_more(client, "web", fired), within=10, what="the schedule firing again"
        )
        refused = await policies.call("ferry.policies.failback", "web")
        await policies.state("ferry.policies.pause", "web")
    assert failed.phase is Phase.FAILED
    assert active.status.failover_phase == "Failed" and active.status.data_lost_seconds is None
    assert isinstance(refused, Rejected) and refused.code == "conflict" and "not failed over" in refused.error


async def _fired_more(client: BusClient, name: str, count: int) -> bool:
    return await slots_fired(client, name) > count


@pytest.mark.parametrize(
    ("subject", "call", "code", "words"),
    [
        pytest.param(
            "ferry.policies.failover",
            "nope",
            "not-found",
            "no policy named 'nope'",
            id="failover of an unknown policy",
        ),
        pytest.param(
            "ferry.policies.failover",
            "paused",
            "conflict",
            "is paused: resume it first",
            id="failover of a paused policy",
        ),
        pytest.param(
            "ferry.policies.failback",
            "paused",
            "conflict",
            "is not failed over (paused)",
            id="failback of a policy never failed over",
        ),
        pytest.param(
            "ferry.policies.failover",
            "Not A Name",
            "invalid",
            "not a policy name",
            id="failover of a bad name",
        ),
        pytest.param(
            "ferry.policies.drill",
            '{"name": "nope"}',
            "not-found",
            "no policy named",
            id="drill of an unknown policy",
        ),
        pytest.param(
            "ferry.policies.drill",
            '{"name": "paused", "keep": "yes"}',
            "invalid",
            "Expected `bool`",
            id="drill with a bad keep",
        ),
    ],
)
async def test_what_cannot_fail_over_back_or_drill_is_refused_with_a_reason(
    settings: Settings, policies: Policies, subject: str, call: str, code: str, words: str
) -> None:
    async with running(*stack(settings)):
        await policies.state("ferry.policies.create", body("paused", paused=True))
        reply = await policies.call(subject, call)
        state = await policies.state("ferry.policies.get", "paused")
    assert isinstance(reply, Rejected) and reply.code == code, reply
    assert words in reply.error
    assert state.status.state is PolicyPhase.PAUSED and not state.status.failover_request


async def test_a_drill_asked_and_a_drill_schedule_start_drills_of_the_dr_replica_each_slot_once(
    settings: Settings, client: BusClient, policies: Policies
) -> None:
    async with running(*stack(settings)):
        await policies.state(
            "ferry.policies.create", body("app", schedule="@every 1h", drill_schedule="@every 1s")
        )
        raw = await policies.raw("ferry.policies.drill", b'{"name": "app", "snapshot": "s-1", "keep": true}')
        asked = msgspec.json.decode(raw, type=Accepted)
        await eventually(
            lambda: _drills_at_least(policies, "app", 3), within=20, what="three scheduled drills"
        )
        await policies.state("ferry.policies.pause", "app")
        fired = await _drill_slots(client, "app")

        async def all_handled() -> bool:
            status = (await policies.state("ferry.policies.get", "app")).status
            return status.drills + len([s for s in status.skipped if s.reason.startswith("drill:")]) == fired

        await eventually(all_handled, within=10, what="every drill slot handled")
        state = await policies.state("ferry.policies.get", "app")
        drills = [r for r in await runs_of(client, "app") if r.request.kind is RequestKind.DRILL]
    ad_hoc = next(r for r in drills if r.id == asked.id)
    assert (ad_hoc.request.source.snapshot, ad_hoc.request.keep) == ("s-1", True)
    assert (ad_hoc.request.source.repository, ad_hoc.request.target.cluster) == ("dr", "west")
    assert ad_hoc.request.target.namespace_map == {}  # the drill isolates: never the real namespaces
    scheduled = [r for r in drills if r.id != asked.id]
    keys = [r.request.idempotency_key for r in scheduled]
    assert len(scheduled) == state.status.drills >= 3 and len(set(keys)) == len(keys)
    assert all(k.startswith("policy-app-drill-") for k in keys)
    assert all((r.request.source.snapshot, r.request.keep) == ("latest", False) for r in scheduled)
    assert state.status.runs == 0 and state.status.last_drill_phase in ("Completed", "Queued", "InProgress")


async def _drills_at_least(policies: Policies, name: str, count: int) -> bool:
    return (await policies.state("ferry.policies.get", name)).status.drills >= count


async def _drill_slots(client: BusClient, name: str) -> int:
    subject = f"{slot_subject(name)}.drill"
    info = await client.nc.jetstream().stream_info(SCHEDULES_STREAM, subjects_filter=subject)
    return (info.state.subjects or {}).get(subject, 0)
