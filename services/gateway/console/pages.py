"""The console's read pages: overview, requests, one request, a document, snapshots (the policies and
drills have theirs in ``policies``; the overview shows the policies too).

Each handler asks Ferry through the gateway's own ``BusClient`` (or ``calls``) and hands plain
values to a template; ``views`` computes what is shown. A part of a page that changes while a
person watches (the running requests of the overview, the body of a request page) is also served
alone, so htmx can swap it in place: polled every two seconds on the overview, and refreshed when
the request page's event stream says the request has finished.
"""

from __future__ import annotations

import collections
from typing import Any

import msgspec
from aiohttp import web

from services.gateway.config import Scope
from services.gateway.console import calls, views
from services.gateway.console.policies import policy_rows
from services.gateway.console.sessions import Session, page, render
from services.gateway.requests import request_id
from services.gateway.web import CLIENT
from shared.bus.client import DOCUMENTS
from shared.contracts.errors import FerryError, NotFound
from shared.contracts.events import Progress
from shared.contracts.reports import RestoreReport, Verification
from shared.contracts.requests import RequestKind
from shared.contracts.snapshots import RetentionQuery, SnapshotQuery, SnapshotSummary
from shared.contracts.states import ListQuery, Phase, RequestState

RECENT = 50  # requests on the overview's and the list's first page
_verification = msgspec.json.Decoder(Verification)
_restore = msgspec.json.Decoder(RestoreReport)


async def running(request: web.Request) -> list[dict[str, Any]]:
    """The requests not finished yet, each with its steps done and the one running now."""
    page_ = await request.app[CLIENT].list_page(ListQuery(limit=RECENT))
    rows = []
    for state in page_.items:
        if state.phase.final:
            continue
        done, total, now = views.steps_done(state)
        rows.append({"state": state, "done": done, "total": total, "now": now})
    return rows


@page(Scope.READ)
async def overview(request: web.Request, session: Session) -> web.Response:
    found, problem = await calls.clusters(request.app)
    context = {"clusters": found.items, "kubeconfig": found.kubeconfig, "problem": problem}
    rows, policies_problem = await policy_rows(request.app)  # RPO against target, last drill
    context |= {"policies": rows, "policies_problem": policies_problem}
    return render(request, "overview.html", {**context, "running": await running(request)})


@page(Scope.READ)
async def overview_running(request: web.Request, session: Session) -> web.Response:
    return render(request, "_running.html", {"running": await running(request)})


@page(Scope.READ)
async def request_list(request: web.Request, session: Session) -> web.Response:
    phase, kind = request.query.get("phase", ""), request.query.get("kind", "")
    phase = phase if phase in {p.value for p in Phase} else ""
    kind = kind if kind in {k.value for k in RequestKind} else ""
    cursor = request.query.get("cursor", "")[:512]
    query = ListQuery(phase=phase, kind=kind, limit=RECENT, cursor=cursor if "|" in cursor else "")
    found = await request.app[CLIENT].list_page(query)
    context = {
        "items": found.items,
        "next": found.next,
        "phase": phase,
        "kind": kind,
        "phases": [p.value for p in Phase],
        "kinds": [k.value for k in RequestKind],
    }
    return render(request, "requests.html", context)


async def history(request: web.Request, state: RequestState) -> views.VolumeTracker:
    """The volume bars of a finished request, from its recorded progress events."""
    tracker = views.VolumeTracker()
    if state.phase.final:
        async for _, event in request.app[CLIENT].events(state.id, follow=False, idle=0.2):
            if isinstance(event, Progress):
                tracker.feed(event)
    return tracker


async def reports(request: web.Request, state: RequestState) -> dict[str, Any]:
    """The verification report (problems first) and a dry run's planned objects, when there are."""
    client, outputs = request.app[CLIENT], state.outputs
    found: dict[str, Any] = {}
    if outputs.get("verification"):
        try:
            report = _verification.decode(await client.document(state.id, "verification"))
            found["verification"] = views.verification_view(report)
        except (FerryError, msgspec.DecodeError) as e:
            found["verification_problem"] = str(e)
    if state.request.dry_run and outputs.get("restore_report"):
        try:
            restore = _restore.decode(await client.document(state.id, "restore_report"))
            found["planned"] = [o for o in restore.objects if o.outcome.value in ("planned", "failed")]
        except (FerryError, msgspec.DecodeError) as e:
            found["planned_problem"] = str(e)
    found["documents"] = [d for d in DOCUMENTS if d in outputs]
    return found


async def body_context(request: web.Request, state: RequestState, session: Session) -> dict[str, Any]:
    live = not state.phase.final
    tracker = await history(request, state)
    request_ = state.request
    return {
        "state": state,
        "live": live,
        "phase_class": views.phase_tone(state.phase),
        "timeline": views.timeline(state),
        "bars": tracker.bars(),
        "can_cancel": session.can_submit and live,
        "can_rollback": session.can_submit
        and state.phase.final
        and request_.kind is RequestKind.MIGRATE
        and not request_.dry_run
        and not state.rolled_back,
        "can_start": session.can_submit
        and request_.dry_run
        and request_.kind is RequestKind.MIGRATE
        and state.phase is Phase.COMPLETED,
        **(await reports(request, state) if not live else {"documents": []}),
    }


@page(Scope.READ)
async def request_page(request: web.Request, session: Session) -> web.Response:
    state = await request.app[CLIENT].get(request_id(request))
    return render(request, "request.html", await body_context(request, state, session))


@page(Scope.READ)
async def request_body(request: web.Request, session: Session) -> web.Response:
    """The request page's body alone: htmx swaps it in when the live stream ends."""
    state = await request.app[CLIENT].get(request_id(request))
    return render(request, "_request_body.html", await body_context(request, state, session))


@page(Scope.READ)
async def document_page(request: web.Request, session: Session) -> web.Response:
    """A step's document, pretty-printed with every Secret value hidden."""
    rid, name = request_id(request), request.match_info["document"]
    if name not in DOCUMENTS:
        raise NotFound(f"no document {name}: one of {', '.join(DOCUMENTS)}", field="document")
    data = calls.document(await request.app[CLIENT].document(rid, name))
    text = msgspec.json.format(msgspec.json.encode(views.redacted(data)), indent=2).decode()
    return render(request, "document.html", {"rid": rid, "name": name, "text": text})


def by_app(items: list[SnapshotSummary]) -> dict[str, list[dict[str, Any]]]:
    """The catalog per application (newest first), sizes in words."""
    grouped: dict[str, list[dict[str, Any]]] = collections.defaultdict(list)
    for s in items:
        name = s.app or (f"{s.cluster}/{','.join(s.namespaces)}" if s.namespaces else s.cluster)
        grouped[name or "(unnamed)"].append(
            {
                "snap": s,
                "size": views.human_bytes(s.bytes),
                "new": views.human_bytes(s.new_bytes),
            }
        )
    return dict(grouped)


@page(Scope.READ)
async def snapshot_list(request: web.Request, session: Session) -> web.Response:
    return await _snapshots(request, session, None)


@page(Scope.ADMIN)
async def retention_dry_run(request: web.Request, session: Session) -> web.Response:
    """What a retention policy would remove (admin, as the API's retention): shown, never applied."""
    form = await request.post()
    keep_last, within = str(form.get("keep_last", "")).strip(), str(form.get("keep_within", "")).strip()
    query = RetentionQuery(
        app=str(form.get("app", "")).strip(),
        keep_last=int(keep_last) if keep_last.isdigit() else None,
        keep_within=within,
        dry_run=True,
    )
    return await _snapshots(request, session, query)


async def _snapshots(
    request: web.Request, session: Session, retention: RetentionQuery | None
) -> web.Response:
    app_name = request.query.get("app", "")[:253]
    context: dict[str, Any] = {"app": app_name, "retention": retention, "groups": {}}
    try:
        found = await calls.snapshots(request.app, SnapshotQuery(app=app_name))
        context["groups"] = by_app(found.items)
    except FerryError as e:
        context["problem"] = str(e)
    if retention is not None:
        if retention.keep_last is None and not retention.keep_within:
            context["retention_problem"] = (
                "Say what to keep: the last N snapshots and/or those within a time."
            )
        else:
            try:
                context["result"] = await calls.retention_dry_run(request.app, retention)
            except FerryError as e:
                context["retention_problem"] = str(e)
    return render(request, "snapshots.html", context)


def add_routes(router: web.UrlDispatcher) -> None:
    router.add_get("/", overview)
    router.add_get("/overview/running", overview_running)
    router.add_get("/requests", request_list)
    router.add_get("/requests/{id}", request_page)
    router.add_get("/requests/{id}/body", request_body)
    router.add_get("/requests/{id}/documents/{document}", document_page)
    router.add_get("/snapshots", snapshot_list)
    router.add_post("/snapshots/retention", retention_dry_run)
