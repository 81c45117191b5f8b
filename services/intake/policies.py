"""Replication policies: their CRUD on ``ferry.policies.*`` and the runs their slots start.

Runs in the intake process (``run(IntakeService, PolicyService)``), stateless like the intake: the
policies live in the ``ferry-policies`` bucket, their schedules in the ``FERRY_SCHEDULES`` stream,
and nats-server fires the slots. Each slot comes through one durable consumer shared by every
replica (``shared.bus.policies.SlotConsumer``) and becomes a ``replicate`` request submitted to the
intake over the bus, with the idempotency key ``policy-<name>-<slot second>``: a redelivered slot,
or one handled again by another replica, finds the request it already started. A slot is skipped,
with its reason in the status, when the policy is paused or failed over, or when its previous run is
not final; one that waited while Ferry was down and a later one fired is counted missed.

Drills, failover and failback (``ferry.policies.drill``, ``.failover``, ``.failback``, and the slots
of a drill schedule) are ``recovering.Recovery``'s; the end of a failover's or failback's request is
noticed here, by the same refresh as the RPO, which then makes the policy active again and restarts
its schedules (``recovery.settle``).

The RPO is refreshed from the last run's state on every slot, every ``get`` and ``list``, and every
``rpo_interval`` seconds (so the gauges and the ``RPOBreached`` event do not wait for a caller).
A change of ``breached`` is published once (compare-and-set decides who) on
``ferry.events.policy-<name>.warning`` (breached) or ``ferry.events.policy-<name>.report`` (met
again, a Report titled "rpo-met").
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import re
import time

import msgspec

from services.intake.recovering import FINISHED, Probe, Recovery, kube_probe
from services.intake.recovery import PolicyGauges, Transition, epoch, evaluate, observe, settle, skip
from services.intake.retaining import apply as apply_retention
from services.intake.retaining import sides as retention_sides
from shared.bus.client import BusClient
from shared.bus.micro import Request
from shared.bus.policies import PolicyStore, Slot, SlotConsumer, cancel_schedule, publish_schedule
from shared.bus.publishing import publish_event
from shared.bus.states import RequestNotFound, RequestStore, StateUnreadable, utcnow
from shared.bus.topology import ensure_schedules
from shared.contracts.errors import (
    CodedError,
    Conflict,
    FerryError,
    Invalid,
    Unavailable,
    shown,
)
from shared.contracts.events import Report, Warning
from shared.contracts.policies import (
    DRILL,
    POLICY_CREATE,
    POLICY_DELETE,
    POLICY_DRILL,
    POLICY_FAILBACK,
    POLICY_FAILOVER,
    POLICY_GET,
    POLICY_LIST,
    POLICY_PAUSE,
    POLICY_RESUME,
    Policy,
    PolicyDeleted,
    PolicyList,
    PolicyPhase,
    PolicyState,
    PolicyStatus,
    Unreadable,
    canonical,
    decode_policy,
    drill_call_decoder,
    encoder,
    event_id,
    run_request,
)
from shared.contracts.requests import encode_request
from shared.contracts.schedules import parse_schedule
from shared.contracts.states import Accepted, Phase, Rejected, RequestState
from shared.kube.clusters import find_kubeconfig
from shared.kube.probing import read_kubeconfig
from shared.runtime import Service
from shared.runtime.lifecycle import Handler

log = logging.getLogger("ferry.policies")


class PolicyService(Service):
    name = "policies"
    description = "Replication policies: schedules on JetStream, runs, RPO"
    rpo_interval = 15.0  # seconds between refreshes of every policy's RPO (tests shorten it)
    submit_timeout = 10.0
    retention_timeout = 600.0  # a retention's prune of a large repository takes a while
    probe: Probe | None = None  # whether a primary answers; None: its kubeconfig context (tests stub it)

    async def setup(self) -> None:
        kv = await ensure_schedules(self.js, replicas=self.settings.nats.replicas)
        self.store = PolicyStore(kv, self.js)
        self.requests = RequestStore(self.topology.requests, self.js)
        self.gauges = PolicyGauges(self.metrics.registry)
        assert self.nc is not None and self.micro is not None
        self.bus = BusClient(self.nc, timeout=self.submit_timeout)
        self.catalog = BusClient(self.nc, timeout=self.retention_timeout)
        self._retaining: dict[str, asyncio.Task[None]] = {}
        probe = self.probe or kube_probe(self.settings.kubeconfig)
        self.recovery = Recovery(self.js, self.store, self.requests, self.bus, self.refresh, probe)
        handlers: dict[str, tuple[str, Handler]] = {
            "create": (POLICY_CREATE, self._create),
            "get": (POLICY_GET, self._get),
            "list": (POLICY_LIST, self._list),
            "pause": (POLICY_PAUSE, self._pause),
            "resume": (POLICY_RESUME, self._resume),
            "delete": (POLICY_DELETE, self._delete),
            "drill": (POLICY_DRILL, self._drill),
            "failover": (POLICY_FAILOVER, self._failover),
            "failback": (POLICY_FAILBACK, self._failback),
        }
        await self.add_endpoints(handlers, queue_group="ferry-policies")
        self.slots = SlotConsumer(self.js, self.on_slot)
        self.spawn("slots", self.slots.run())
        self.spawn("rpo", self._watch_rpo())

    async def on_drain(self) -> None:
        slots: SlotConsumer | None = getattr(self, "slots", None)  # None if setup failed early
        if slots is not None:
            slots.stop()
            await slots.stopped.wait()
        retaining = list(getattr(self, "_retaining", {}).values())
        for task in retaining:  # the next refresh (here or in a replica) applies it again
            task.cancel()
        if retaining:
            await asyncio.wait(retaining, timeout=5.0)

    # --- CRUD -----------------------------------------------------------------------------------
    async def _create(self, req: Request) -> bytes:
        policy = decode_policy(req.data)
        await self._check_clusters(policy)
        now = utcnow()
        paused = PolicyPhase.PAUSED if policy.paused else PolicyPhase.ACTIVE
        state = PolicyState(
            policy=policy,
            status=PolicyStatus(state=paused, created_at=now, paused_at=now if policy.paused else ""),
        )
        try:
            await self.store.create(state)
        except Conflict:
            state, _ = await self.store.get(policy.name)
            if _spec(state) != _spec(PolicyState(policy=policy)):
                raise Conflict(
                    f"a policy named {policy.name} exists with another definition: delete it first, "
                    "or choose another name",
                    field="$.name",
                ) from None
        if state.status.state is PolicyPhase.ACTIVE:
            try:
                await publish_schedule(self.js, state.policy)  # again for a repeat: replaces it
            except CodedError:  # the server disagrees with our check: store nothing
                await self.store.delete(policy.name)
                raise
        log.info("policy %s: %s, %s", policy.name, policy.schedule, state.status.state.value)
        return encoder.encode(await self.refresh(policy.name))

    async def _check_clusters(self, policy: Policy) -> None:
        """A policy naming a cluster the configured kubeconfig does not know is refused now, naming the
        field, rather than failing at its first slot. Without a configured kubeconfig (the intake need
        not reach clusters) there is nothing to check against; the runs' preflight still checks."""
        if not self.settings.kubeconfig:
            return
        path = find_kubeconfig(self.settings.kubeconfig)
        if path is None:
            return
        contexts = sorted(
            str(entry.get("name", "")) for entry in (await read_kubeconfig(path)).get("contexts") or []
        )
        for where, cluster in (
            ("$.source.cluster", policy.source.cluster),
            ("$.target.cluster", policy.target.cluster),
        ):
            if cluster and cluster not in contexts:
                raise Invalid(
                    f"unknown cluster {shown(cluster)}: the kubeconfig has {', '.join(contexts) or 'no contexts'}",
                    field=where,
                )

    async def _get(self, req: Request) -> bytes:
        return encoder.encode(await self.refresh(_name(req)))

    async def _list(self, req: Request) -> bytes:
        budget = self.reply_budget
        page = PolicyList(items=[])
        used = 0
        async for entry in self.store.entries():
            if isinstance(entry, Unreadable):
                page.skipped.append(entry)
                continue
            try:
                state = await self.refresh(entry.policy.name)
            except FerryError as e:
                page.skipped.append(Unreadable(name=entry.policy.name, reason=str(e)))
                continue
            size = len(encoder.encode(state))
            if page.items and used + size > budget:
                page.more += 1
                continue
            page.items.append(state)
            used += size
        return encoder.encode(page)

    async def _pause(self, req: Request) -> bytes:
        name = _name(req)

        def pause(state: PolicyState) -> bool:
            _not_failed_over(state)
            if state.status.state is PolicyPhase.PAUSED:
                return False
            state.status.state, state.status.paused_at = PolicyPhase.PAUSED, utcnow()
            state.policy = msgspec.structs.replace(state.policy, paused=True)
            return True

        await self.store.update(name, pause)
        await cancel_schedule(self.js, name)  # after the state: a slot in between is skipped "paused"
        log.info("policy %s paused", name)
        return encoder.encode(await self.refresh(name))

    async def _resume(self, req: Request) -> bytes:
        name = _name(req)
        now = dt.datetime.now(dt.UTC)

        def resume(state: PolicyState) -> bool:
            _not_failed_over(state)
            status = state.status
            if status.state is PolicyPhase.ACTIVE:
                return False
            if status.paused_at:
                schedule = parse_schedule(state.policy.schedule)
                paused_at = dt.datetime.fromtimestamp(epoch(status.paused_at), dt.UTC)
                status.missed += schedule.count_between(paused_at, now, state.policy.time_zone)
            status.state, status.paused_at = PolicyPhase.ACTIVE, ""
            state.policy = msgspec.structs.replace(state.policy, paused=False)
            return True

        state = await self.store.update(name, resume)
        await publish_schedule(self.js, state.policy)
        log.info("policy %s resumed", name)
        return encoder.encode(await self.refresh(name))

    async def _delete(self, req: Request) -> bytes:
        name = _name(req)
        await self.store.get(name)  # not-found for a name that never was
        await cancel_schedule(self.js, name, slots=True)
        await self.store.delete(name)
        self.gauges.forget(name)
        log.info("policy %s deleted", name)
        return encoder.encode(PolicyDeleted(name=name))

    # --- disaster recovery (recovering.Recovery) -------------------------------------------------
    async def _drill(self, req: Request) -> bytes:
        try:
            call = drill_call_decoder.decode(req.data)
        except msgspec.ValidationError as e:
            raise Invalid(f"not a drill call: {e}", field="$") from e
        except msgspec.DecodeError as e:
            raise Invalid(f'not JSON: {e} (send {{"name": ..., "snapshot": "latest"}})', field="$") from e
        return encoder.encode(await self.recovery.drill(call))

    async def _failover(self, req: Request) -> bytes:
        return encoder.encode(await self.recovery.failover(_name(req)))

    async def _failback(self, req: Request) -> bytes:
        return encoder.encode(await self.recovery.failback(_name(req)))

    # --- slots --------------------------------------------------------------------------------
    async def on_slot(self, slot: Slot) -> None:
        """Run one slot, or record why it did not run; a temporary failure is retried (NAK)."""
        try:
            state = await self.refresh(slot.policy)
        except CodedError as e:
            if e.code == "not-found":
                log.info("slot %s of deleted policy %s dropped", slot.at_text, slot.policy)
                return
            raise
        if slot.kind == DRILL:
            outcome = await self.recovery.drill_slot(state, slot)
            if outcome:
                self.gauges.slots.labels(slot.policy, outcome).inc()
            return
        if slot.kind != "replicate":
            log.warning(
                "slot %s of policy %s has an unknown kind %r: dropped", slot.at_text, slot.policy, slot.kind
            )
            return
        status = state.status
        if status.last_slot_at and slot.at_text <= status.last_slot_at:
            return  # handled already (a redelivery after the record)
        reason = await self._skip_reason(state, slot)
        if reason:
            missed = slot.superseded
            await self.store.update(slot.policy, lambda s: _skipped(s, slot, reason, missed=missed))
            self.gauges.slots.labels(slot.policy, "missed" if missed else "skipped").inc()
            log.info("policy %s: slot %s skipped: %s", slot.policy, slot.at_text, reason)
            return
        request = run_request(state.policy, slot.key)
        reply = await self.bus.submit_raw(encode_request(request))
        if isinstance(reply, Rejected):
            await self._refused(slot, reply)
            return
        await self.store.update(slot.policy, lambda s: _ran(s, slot, reply))
        self.gauges.slots.labels(slot.policy, "submitted").inc()
        log.info("policy %s: slot %s started %s", slot.policy, slot.at_text, reply.id)

    async def _skip_reason(self, state: PolicyState, slot: Slot) -> str:
        status = state.status
        if status.state is PolicyPhase.PAUSED:
            return "policy paused"
        if status.state is PolicyPhase.FAILED_OVER:
            return "policy failed over: no replication from the old primary"
        if slot.superseded:
            return "missed: a later slot fired before this one was handled (Ferry down or behind)"
        if status.last_run_request and status.last_run_phase not in _FINAL:
            return f"previous run {status.last_run_request} still running ({status.last_run_phase})"
        return ""

    async def _refused(self, slot: Slot, reply: Rejected) -> None:
        """Intake refused the run: a temporary refusal is retried, any other is recorded."""
        if reply.code == Unavailable.code:
            raise reply.as_error()
        reason = f"run refused by intake ({reply.code}): {reply.error}"
        await self.store.update(slot.policy, lambda s: _skipped(s, slot, reason, missed=False))
        self.gauges.slots.labels(slot.policy, "skipped").inc()
        await publish_event(
            self.js,
            Warning(request_id=event_id(slot.policy), message=f"slot {slot.at_text}: {reason}"),
            msg_id=f"{event_id(slot.policy)}.refused.{slot.key}",
        )

    # --- status -------------------------------------------------------------------------------
    async def refresh(self, name: str) -> PolicyState:
        """The policy with its last run, drill, failover and failback observed and its RPO as of now;
        stored when it changed. A failback that completed (or a failover that failed) makes the
        policy active again here, and its schedules are published again."""
        current, _ = await self.store.get(name)
        status = current.status
        last = status.last_run_request
        run = await self._run_of(last)
        drill = await self._run_of(_pending(status.last_drill_request, status.last_drill_phase))
        failover = await self._run_of(_pending(status.failover_request, status.failover_phase))
        failback = await self._run_of(_pending(status.failback_request, status.failback_phase))
        transitions: list[Transition] = []
        resumed: list[bool] = []

        def change(state: PolicyState) -> bool:
            transitions.clear()
            changed = observe(state.status, run)
            if last and run is None and state.status.last_run_request == last:
                changed |= state.status.last_run_phase != GONE
                state.status.last_run_phase = GONE
            if drill is not None and drill.id == state.status.last_drill_request:
                changed |= state.status.last_drill_phase != drill.phase.value
                state.status.last_drill_phase = drill.phase.value
            settled, again = settle(state, failover, failback)
            resumed[:] = [again]
            transition = evaluate(state, time.time())
            if transition is not None:
                transitions.append(transition)
            return changed or settled or transition is not None

        state = await self.store.update(name, change)
        if any(resumed) and state.status.state is PolicyPhase.ACTIVE:
            await publish_schedule(self.js, state.policy)
            log.info("policy %s active again: schedules restarted", name)
        for transition in transitions:
            await self._announce(name, transition)
        self.gauges.show(state)
        self._retain_if_due(state)
        return state

    # --- retention (retaining.py) ---------------------------------------------------------------
    def _retain_if_due(self, state: PolicyState) -> None:
        """Apply the retention after a completed run once, in the background (a prune takes time;
        the refresh a caller waits for must not): one task per policy at a time."""
        status, name = state.status, state.policy.name
        run_id = status.last_run_request
        due = run_id and status.last_run_phase == Phase.COMPLETED.value and status.retained_run != run_id
        if not due or not retention_sides(state.policy):
            return
        running = self._retaining.get(name)
        if running is not None and not running.done():
            return
        self._retaining[name] = asyncio.create_task(self._retain(name, run_id), name=f"retain:{name}")

    async def _retain(self, name: str, run_id: str) -> None:
        try:
            current, _ = await self.store.get(name)
            run = await self._run_of(run_id)
            if run is None or current.status.retained_run == run_id:
                return
            applied = await apply_retention(self.catalog, current.policy, run)
        except FerryError as e:  # the catalog or the store unreachable: the next refresh tries again
            log.warning("policy %s: retention after %s not applied yet: %s", name, run_id, e)
            return
        except Exception:  # a bug: logged here (a background task's error is seen by nobody else)
            log.exception("policy %s: retention after %s failed", name, run_id)
            return
        now = utcnow()

        def record(state: PolicyState) -> bool:
            if state.status.retained_run == run_id:
                return False
            status = state.status
            status.retained_run, status.last_retention_at, status.last_retention = (
                run_id,
                now,
                applied.summary,
            )
            return True

        try:
            await self.store.update(name, record)
        except FerryError as e:
            log.warning("policy %s: retention after %s applied, not recorded: %s", name, run_id, e)
        log.info("policy %s: retention %s", name, applied.summary)
        if applied.failed:
            event: Warning | Report = Warning(
                request_id=event_id(name), message=f"retention {applied.summary}"
            )
        else:
            event = Report(request_id=event_id(name), title="retention", body=applied.body)
        await publish_event(self.js, event, msg_id=f"{event_id(name)}.retention.{run_id}")

    async def _run_of(self, request_id: str) -> RequestState | None:
        if not request_id:
            return None
        try:
            state, _ = await self.requests.get(request_id)
        except (RequestNotFound, StateUnreadable) as e:
            log.warning("the last run of a policy cannot be read: %s", e)
            return None
        return state

    async def _announce(self, name: str, transition: Transition) -> None:
        msg_id = f"{event_id(name)}.rpo.{transition.since}.{int(transition.breached)}"
        if transition.breached:
            log.warning("policy %s: %s", name, transition.message)
            event: Warning | Report = Warning(request_id=event_id(name), message=transition.message)
        else:
            log.info("policy %s: %s", name, transition.message)
            event = Report(
                request_id=event_id(name),
                title="rpo-met",
                body={"policy": name, "condition": "RPOBreached", "message": transition.message},
            )
        await publish_event(self.js, event, msg_id=msg_id)

    async def _watch_rpo(self) -> None:
        """Refresh every policy's RPO now and then, so a breach shows without a caller asking."""
        while True:
            await asyncio.sleep(self.rpo_interval)
            try:
                for name in await self.store.names():
                    try:
                        await self.refresh(name)
                    except FerryError as e:
                        log.debug("RPO of policy %s not refreshed: %s", name, e)
            except FerryError as e:
                log.warning("policies' RPO not refreshed: %s", e)


GONE = "Gone"  # the last run's request is no longer stored (or unreadable): it blocks nothing
_FINAL = ("", GONE, *(phase.value for phase in Phase if phase.final))
_LABEL = re.compile(r"[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?")


def _pending(request_id: str, phase: str) -> str:
    """The request to read: one whose last seen phase is not final yet ("" for none)."""
    return request_id if request_id and phase not in FINISHED else ""


def _spec(state: PolicyState) -> bytes:
    """A policy's definition, whatever pausing did to it: equal for a repeated create."""
    return canonical.encode(msgspec.structs.replace(state.policy, paused=False))


def _not_failed_over(state: PolicyState) -> None:
    if state.status.state is PolicyPhase.FAILED_OVER:
        raise Conflict(f"policy {state.policy.name} is failed over: fail back first", field="name")


def _skipped(state: PolicyState, slot: Slot, reason: str, *, missed: bool) -> bool:
    if state.status.last_slot_at and slot.at_text <= state.status.last_slot_at:
        return False
    skip(state.status, slot.at_text, reason, missed=missed)
    return True


def _ran(state: PolicyState, slot: Slot, accepted: Accepted) -> bool:
    status = state.status
    if status.last_slot_at and slot.at_text <= status.last_slot_at:
        return False
    status.last_slot_at = slot.at_text
    status.last_run_request, status.last_run_phase = accepted.id, "Queued"
    status.runs += 1
    return True


def _name(req: Request) -> str:
    name = req.data.decode(errors="replace").strip()
    if not _LABEL.fullmatch(name):
        raise Invalid(f"not a policy name: {name[:100]!r} (a DNS-1123 label)", field="name")
    return name
