"""Drill reports on the bus: ``ferry.drills.list`` and ``ferry.drills.get``.

Runs in the intake process (``run(IntakeService, PolicyService, DrillsService)``) and is stateless
like it: a drill is a ``drill`` request in the ``ferry-requests`` bucket, and its report is the
``<request>/drill.json`` document its cleanup step stored (``shared.contracts.drills``). A drill
that has not reached its cleanup yet is answered from its state alone (clean-up "pending"); one that
ended before its cleanup could run says so (clean-up "failed: …": what it restored may be left).
The phase is always the request's current one. A policy's drills carry ``ferry.dev/policy``.
"""

from __future__ import annotations

import logging

import msgspec

from shared.bus.micro import Request
from shared.bus.states import RequestNotFound, RequestStore
from shared.contracts.drills import (
    DRILLS_GET,
    DRILLS_LIST,
    FAILED_PREFIX,
    PENDING,
    POLICY_LABEL,
    DrillList,
    DrillReport,
    drill_namespace,
    encoder,
    query_decoder,
    report_decoder,
)
from shared.contracts.errors import (
    FerryError,
    Invalid,
    NotFound,
    json_path,
)
from shared.contracts.requests import RequestKind
from shared.contracts.states import Phase, RequestState, Unreadable
from shared.runtime import Service
from shared.runtime.lifecycle import Handler

log = logging.getLogger("ferry.drills")


def from_state(state: RequestState) -> DrillReport:
    """What the state alone says of a drill whose cleanup step has not stored a report."""
    request = state.request
    mapped = dict(request.target.namespace_map)
    for ns in request.source.namespaces:
        mapped.setdefault(ns, drill_namespace(ns, state.id))
    cleanup = PENDING
    if state.phase.final:
        cleanup = f"{FAILED_PREFIX}never ran: the drill ended {state.phase.value} before it ({state.reason})"
    return DrillReport(
        request_id=state.id,
        policy=request.labels.get(POLICY_LABEL, ""),
        source_cluster=request.source.cluster,
        namespaces=sorted(request.source.namespaces),
        target_cluster=request.target.cluster or "",
        drill_namespaces=mapped,
        snapshot=state.outputs.get("snapshot", request.source.snapshot),
        started_at=state.created_at,
        problems=[state.reason] if state.phase in (Phase.FAILED, Phase.CANCELLED) and state.reason else [],
        cleanup=cleanup,
        phase=state.phase.value,
    )


class DrillsService(Service):
    name = "drills"
    description = "Drill reports: RTO, RPO, verification and clean-up of every DR drill"

    async def setup(self) -> None:
        self.requests = RequestStore(self.topology.requests, self.js)
        handlers: dict[str, tuple[str, Handler]] = {
            "list": (DRILLS_LIST, self._list),
            "get": (DRILLS_GET, self._get),
        }
        await self.add_endpoints(handlers, queue_group="ferry-drills", unavailable=FerryError)

    async def report(self, state: RequestState) -> DrillReport:
        """The drill's stored report when its cleanup wrote one, else what its state says."""
        name = state.outputs.get("drill_report")
        if name:
            try:
                found = await self.topology.inventories.get(name)
                stored = report_decoder.decode(found.data or b"")
                return msgspec.structs.replace(stored, phase=state.phase.value)
            except Exception as e:  # noqa: BLE001 - an expired or unreadable document: the state still speaks
                log.warning("drill report %s unreadable, answered from the state: %s", name, e)
        return from_state(state)

    async def drills(self, policy: str = "", limit: int = 100) -> DrillList:
        """The drills (of ``policy`` when given), newest first, as many as one NATS message holds."""
        found: list[RequestState] = []
        async for entry in self.requests.entries():
            if isinstance(entry, Unreadable):
                log.warning("request %s left out of the drills: %s", entry.id, entry.reason)
                continue
            if entry.request.kind is not RequestKind.DRILL:
                continue
            if policy and entry.request.labels.get(POLICY_LABEL) != policy:
                continue
            found.append(entry)
        found.sort(key=lambda s: (s.created_at, s.id), reverse=True)
        budget = self.reply_budget
        items: list[DrillReport] = []
        for state in found[:limit]:
            item = await self.report(state)
            budget -= len(encoder.encode(item)) + 1
            if budget < 0:
                break
            items.append(item)
        return DrillList(items=items)

    async def _list(self, req: Request) -> bytes:
        try:
            query = query_decoder.decode(req.data or b"{}")
        except (msgspec.DecodeError, msgspec.ValidationError) as e:
            raise Invalid(f"bad drill query: {e}", field=json_path(e)) from e
        return encoder.encode(await self.drills(query.policy, query.limit))

    async def _get(self, req: Request) -> bytes:
        request_id = req.data.decode(errors="replace").strip()
        try:
            state, _ = await self.requests.get(request_id)
        except RequestNotFound as e:
            raise NotFound(str(e), field="id") from e
        if state.request.kind is not RequestKind.DRILL:
            raise NotFound(f"request {request_id} is a {state.request.kind.value}, not a drill", field="id")
        return encoder.encode(await self.report(state))
