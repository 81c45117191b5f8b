"""Failover, failback and drills of a policy: the requests they submit and what the policy records.

The policy service (``policies.PolicyService``) answers ``ferry.policies.drill``, ``.failover`` and
``.failback`` through ``Recovery``, which owns the order of the writes so that a crash, a lost reply
or two callers at once start one request, never two:

1. the policy's status is changed by compare-and-set first (``recovery.begin_failover`` /
   ``begin_failback``: refusals with a reason, the time asked, the failover's mode);
2. the schedules are stopped (failover) — a slot that still arrives is skipped "failed over";
3. the request is submitted to the intake with the idempotency key of that time
   (``recovery_key``), so a call repeated after a crash between 1 and 4 starts the same request;
4. the request id is recorded. The end of the request is noticed by the service's ``refresh``
   (``recovery.settle``), which makes the policy active again and restarts its schedules.

Whether the primary answers is decided by one ``GET /version`` of its kubeconfig context
(``shared.kube.probing``): a primary that answers is quiesced by a ``migrate`` cutover (nothing is
lost), one that does not gets the newest replica restored (the RPO of that instant is lost). A
primary the kubeconfig does not name is refused rather than guessed: restoring next to a primary
that still serves would run the application twice.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable

from services.intake.recovery import CUTOVER, RESTORE, begin_failback, begin_failover, may_fail_over, skip
from shared.bus.client import BusClient
from shared.bus.micro import JetStreamContext
from shared.bus.policies import PolicyStore, Slot, cancel_schedule, publish_schedule
from shared.bus.states import RequestNotFound, RequestStore, StateUnreadable, utcnow
from shared.contracts.errors import Conflict, Invalid, Unavailable
from shared.contracts.policies import (
    DrillCall,
    Policy,
    PolicyPhase,
    PolicyState,
    drill_key,
    drill_of,
    failback_of,
    failover_of,
    recovery_key,
)
from shared.contracts.requests import MobilityRequest, encode_request
from shared.contracts.states import Accepted, Phase, Rejected
from shared.kube.errors import KubeError
from shared.kube.probing import probe_clusters

log = logging.getLogger("ferry.policies")

Probe = Callable[[str], Awaitable[tuple[bool, str]]]  # cluster -> (answers, what was seen)
Refresh = Callable[[str], Awaitable[PolicyState]]
# Phases a request is not followed in any more: final, gone from the store, or refused at once.
FINISHED = ("Gone", "Rejected", *(phase.value for phase in Phase if phase.final))


def kube_probe(kubeconfig: str) -> Probe:
    """A probe of clusters by their context in ``kubeconfig`` (the settings' one)."""

    async def probe(cluster: str) -> tuple[bool, str]:
        try:
            found = await probe_clusters(kubeconfig, only=cluster)
        except KubeError as e:
            raise Unavailable(f"cannot probe the primary cluster {cluster}: {e}") from e
        for info in found.items:
            if info.name == cluster:
                if info.reachable:
                    return True, f"{cluster} answered (HTTP {info.status})"
                return False, f"{cluster} did not answer: {info.error or f'HTTP {info.status}'}"
        raise Invalid(
            f"cluster {cluster} is not a context of the policy service's kubeconfig: it cannot tell "
            "whether the primary still serves, and will not restore next to it",
            field="$.source.cluster",
        )

    return probe


class Recovery:
    """The disaster-recovery calls of the policy service (see the module docstring)."""

    def __init__(
        self,
        js: JetStreamContext,
        store: PolicyStore,
        requests: RequestStore,
        bus: BusClient,
        refresh: Refresh,
        probe: Probe,
    ) -> None:
        self.js, self.store, self.requests, self.bus = js, store, requests, bus
        self.refresh, self.probe = refresh, probe

    # --- failover and failback ----------------------------------------------------------------
    async def failover(self, name: str) -> PolicyState:
        """Bring the application up on the DR cluster; the policy is failed over from now on."""
        state = await self.refresh(name)
        may_fail_over(state)  # before the probe: a refusal needs no cluster
        if state.status.state is PolicyPhase.FAILED_OVER:  # recorded, not submitted: resume it
            mode, why = state.status.failover_mode, state.status.failover_reason
        else:
            answers, why = await self.probe(state.policy.source.cluster)
            mode = CUTOVER if answers else RESTORE
        at, now = utcnow(), time.time()
        state = await self.store.update(name, lambda s: begin_failover(s, at, mode, why, now))
        await cancel_schedule(self.js, name)  # after the record: a slot in between is skipped
        status = state.status
        key = recovery_key(name, "failover", status.failover_at)
        request = failover_of(state.policy, cutover=status.failover_mode == CUTOVER, key=key)
        accepted = await self._submit(request, name, "failover")
        state = await self.store.update(name, lambda s: _started(s, "failover", key, accepted))
        log.info(
            "policy %s failed over (%s: %s): %s",
            name,
            status.failover_mode,
            status.failover_reason,
            accepted.id,
        )
        return state

    async def failback(self, name: str) -> PolicyState:
        """Bring the application back to the primary; the policy is active again once it completed."""
        state = await self.refresh(name)
        _one_to_one(state.policy)
        at = utcnow()
        state = await self.store.update(name, lambda s: begin_failback(s, at))
        key = recovery_key(name, "failback", state.status.failback_at)
        accepted = await self._submit(failback_of(state.policy, key=key), name, "failback")
        state = await self.store.update(name, lambda s: _started(s, "failback", key, accepted))
        log.info("policy %s failing back: %s", name, accepted.id)
        return state

    async def _submit(self, request: MobilityRequest, name: str, action: str) -> Accepted:
        """Submit a failover's or failback's request; a refusal is recorded and undoes the action
        (a temporary one is raised as it is: the caller asks again and the same key is used)."""
        reply = await self.bus.submit_raw(encode_request(request))
        if isinstance(reply, Accepted):
            return reply
        if reply.code == Unavailable.code:
            raise reply.as_error()
        state = await self.store.update(name, lambda s: _refused(s, action, request.idempotency_key))
        if action == "failover" and state.status.state is PolicyPhase.ACTIVE:
            await publish_schedule(self.js, state.policy)
        raise reply.as_error()

    # --- drills ---------------------------------------------------------------------------------
    async def drill(self, call: DrillCall) -> Accepted:
        """A drill of the policy's replica, asked by a person (no idempotency key: each call drills)."""
        state = await self.refresh(call.name)
        _may_drill(state)
        reply = await self.bus.submit_raw(
            encode_request(drill_of(state.policy, call.snapshot, keep=call.keep))
        )
        if isinstance(reply, Rejected):
            raise reply.as_error()
        await self.store.update(call.name, lambda s: _drilled(s, reply, None))
        log.info("policy %s: drill %s (snapshot %s, keep %s)", call.name, reply.id, call.snapshot, call.keep)
        return reply

    async def drill_slot(self, state: PolicyState, slot: Slot) -> str:
        """Run one slot of the drill schedule; returns what happened for the slot counter ("" for a
        slot handled before: a redelivery)."""
        status = state.status
        if status.last_drill_slot_at and slot.at_text <= status.last_drill_slot_at:
            return ""
        reason = await self._drill_skip_reason(state, slot)
        if reason:
            await self.store.update(slot.policy, lambda s: _drill_skipped(s, slot, reason))
            log.info("policy %s: drill slot %s skipped: %s", slot.policy, slot.at_text, reason)
            return "missed" if slot.superseded else "skipped"
        request = drill_of(state.policy, key=drill_key(slot.policy, slot.key))
        reply = await self.bus.submit_raw(encode_request(request))
        if isinstance(reply, Rejected):
            if reply.code == Unavailable.code:
                raise reply.as_error()
            why = f"drill refused by intake ({reply.code}): {reply.error}"
            await self.store.update(slot.policy, lambda s: _drill_skipped(s, slot, why))
            return "skipped"
        await self.store.update(slot.policy, lambda s: _drilled(s, reply, slot))
        log.info("policy %s: drill slot %s started %s", slot.policy, slot.at_text, reply.id)
        return "drill"

    async def _drill_skip_reason(self, state: PolicyState, slot: Slot) -> str:
        status = state.status
        if status.state is not PolicyPhase.ACTIVE:
            return f"policy {status.state.value}"
        if slot.superseded:
            return "missed: a later drill slot fired before this one was handled"
        if status.last_drill_request:
            phase = await self._phase(status.last_drill_request)
            if phase not in FINISHED:
                return f"previous drill {status.last_drill_request} still running ({phase})"
        return ""

    async def _phase(self, request_id: str) -> str:
        try:
            state, _ = await self.requests.get(request_id)
        except (RequestNotFound, StateUnreadable):
            return "Gone"
        return state.phase.value


def _may_drill(state: PolicyState) -> None:
    if state.status.state is PolicyPhase.FAILED_OVER:
        raise Conflict(
            f"policy {state.policy.name} is failed over: the DR cluster serves the application, and "
            "its replica is the one a failback makes; drill after the failback",
            field="name",
        )


def _one_to_one(policy: Policy) -> None:
    """A failback maps the DR namespaces back: two namespaces onto one cannot be told apart again."""
    targets = [policy.target.namespace_map.get(ns, ns) for ns in policy.source.namespaces]
    if len(set(targets)) != len(targets):
        raise Invalid(
            f"policy {policy.name} maps two namespaces onto one in the DR cluster: a failback cannot "
            "tell them apart (fail back with a migrate of each namespace instead)",
            field="$.target.namespace_map",
        )


def _started(state: PolicyState, action: str, key: str, accepted: Accepted) -> bool:
    """Record the request of the failover or failback whose key is ``key`` (not a later one's)."""
    status = state.status
    if recovery_key(state.policy.name, action, getattr(status, f"{action}_at")) != key:
        return False
    if getattr(status, f"{action}_request") == accepted.id:
        return False
    setattr(status, f"{action}_request", accepted.id)
    setattr(status, f"{action}_phase", Phase.QUEUED.value)
    return True


def _refused(state: PolicyState, action: str, key: str) -> bool:
    """The intake refused the request of ``key``: the action did not happen."""
    status = state.status
    if recovery_key(state.policy.name, action, getattr(status, f"{action}_at")) != key:
        return False
    setattr(status, f"{action}_phase", "Rejected")
    if action == "failover":
        status.state, status.data_lost_seconds = PolicyPhase.ACTIVE, None
    else:
        status.failback_at = ""
    return True


def _drilled(state: PolicyState, accepted: Accepted, slot: Slot | None) -> bool:
    status = state.status
    if slot is not None:
        if status.last_drill_slot_at and slot.at_text <= status.last_drill_slot_at:
            return False
        status.last_drill_slot_at = slot.at_text
        status.drills += 1
    status.last_drill_request, status.last_drill_phase = accepted.id, Phase.QUEUED.value
    return True


def _drill_skipped(state: PolicyState, slot: Slot, reason: str) -> bool:
    """A drill slot that did not run: kept with the skipped slots (``drill: <why>``), its own mark."""
    status = state.status
    if status.last_drill_slot_at and slot.at_text <= status.last_drill_slot_at:
        return False
    last_slot = status.last_slot_at
    skip(status, slot.at_text, f"drill: {reason}", missed=slot.superseded)
    status.last_slot_at = last_slot  # the replication slots' mark is theirs alone
    status.last_drill_slot_at = slot.at_text
    return True
