"""The console's disaster-recovery pages: policies (RPO against target, last drill), one policy
(its RPO over time, its drills, buttons to drill, pause and resume) and every drill.

Reads need the read scope; the buttons need submit and are checked on the server whatever the page
showed (``sessions.page``), as the migration buttons are. The calls are the gateway's own
``BusClient`` ones (``ferry.policies.*``, ``ferry.drills.*``); what a page shows is computed in
``charting`` (pure functions).
"""

from __future__ import annotations

import logging
import time
from typing import Any

from aiohttp import web

from services.gateway.config import Scope
from services.gateway.console import charting
from services.gateway.console.sessions import Session, page, render, see_other
from services.gateway.policies import policy_name
from services.gateway.web import CLIENT
from shared.contracts.drills import DrillReport
from shared.contracts.errors import FerryError
from shared.contracts.policies import POLICY_LABEL, PolicyState
from shared.contracts.requests import RequestKind
from shared.contracts.states import ListQuery

log = logging.getLogger("ferry.gateway.console")
RUNS = 200  # runs of a policy the RPO chart is drawn from (the newest)
DRILLS = 50


def row(state: PolicyState, last_drill: DrillReport | None) -> dict[str, Any]:
    """One policy as the overview and the list show it."""
    return {
        "state": state,
        "tone": charting.rpo_tone(state),
        "rpo": charting.rpo_words(state),
        "drill": last_drill,
    }


async def policy_rows(app: web.Application) -> tuple[list[dict[str, Any]], str]:
    """Every policy with its RPO tone and its last drill; or none and why (the page still shows)."""
    client = app[CLIENT]
    try:
        found = await client.policy_list()
    except FerryError as e:
        return [], f"The policies are not available: {e}"
    try:
        drills = (await client.drills(limit=500)).items
    except FerryError:
        drills = []  # the drill list is a detail: the policies show without it
    last: dict[str, DrillReport] = {}
    for report in drills:  # newest first: the first of each policy is its last drill
        last.setdefault(report.policy, report)
    return [row(state, last.get(state.policy.name)) for state in found.items], ""


@page(Scope.READ)
async def policy_list(request: web.Request, session: Session) -> web.Response:
    rows, problem = await policy_rows(request.app)
    return render(request, "policies.html", {"rows": rows, "problem": problem})


@page(Scope.READ)
async def policy_page(request: web.Request, session: Session) -> web.Response:
    """One policy: RPO against target, its RPO over time, its drills, and what can be done."""
    client, name = request.app[CLIENT], policy_name(request)
    state = await client.policy_get(name)
    query = ListQuery(kind=RequestKind.REPLICATE.value, label=f"{POLICY_LABEL}={name}", limit=RUNS)
    runs = await client.list(query)
    try:
        drills, drills_problem = (await client.drills(name, limit=DRILLS)).items, ""
    except FerryError as e:
        drills, drills_problem = [], f"The drill reports are not available: {e}"
    context = {
        "state": state,
        "rpo_tone": charting.rpo_tone(state),
        "rpo": charting.rpo_words(state),
        "chart": charting.rpo_chart(state, runs, time.time()),
        "runs": runs[:10],
        "drills": drills,
        "drills_problem": drills_problem,
        "can_act": session.can_submit,
        "paused": state.status.state.value == "paused",
        "failed_over": state.status.state.value == "failed-over",
    }
    return render(request, "policy.html", context)


@page(Scope.READ)
async def drill_list(request: web.Request, session: Session) -> web.Response:
    policy = request.query.get("policy", "")[:63]
    try:
        found, problem = (await request.app[CLIENT].drills(policy, limit=200)).items, ""
    except FerryError as e:
        found, problem = [], f"The drill reports are not available: {e}"
    return render(request, "drills.html", {"drills": found, "policy": policy, "problem": problem})


@page(Scope.SUBMIT)
async def pause(request: web.Request, session: Session) -> web.Response:
    state = await request.app[CLIENT].policy_pause(policy_name(request))
    log.info("%s paused policy %s from the console", session.identity.name, state.policy.name)
    return see_other(f"/policies/{state.policy.name}")


@page(Scope.SUBMIT)
async def resume(request: web.Request, session: Session) -> web.Response:
    state = await request.app[CLIENT].policy_resume(policy_name(request))
    log.info("%s resumed policy %s from the console", session.identity.name, state.policy.name)
    return see_other(f"/policies/{state.policy.name}")


@page(Scope.SUBMIT)
async def drill(request: web.Request, session: Session) -> web.Response:
    """Drill the policy's DR side from its newest replica; the drill's request page follows it."""
    name = policy_name(request)
    accepted = await request.app[CLIENT].policy_drill(name)
    log.info("%s drilled policy %s from the console: %s", session.identity.name, name, accepted.id)
    return see_other(f"/requests/{accepted.id}")


def add_routes(router: web.UrlDispatcher) -> None:
    router.add_get("/policies", policy_list)
    router.add_get("/policies/{name}", policy_page)
    router.add_post("/policies/{name}/pause", pause)
    router.add_post("/policies/{name}/resume", resume)
    router.add_post("/policies/{name}/drill", drill)
    router.add_get("/drills", drill_list)
