"""Replication policies and DR drills over HTTP: a thin translation to ``ferry.policies.*`` and
``ferry.drills.*`` (``shared.contracts.policies``, ``shared.contracts.drills``) through the
gateway's ``BusClient``.

A new policy is decoded and checked here first with the policy service's own ``decode_policy``, so
a bad body is refused with the JSON path of the bad field (and no value quoted back) before anything
reaches the bus. Scopes: reading needs ``read``; creating, pausing, resuming and drilling need
``submit``, as submitting a request does. Failover and failback need ``submit`` too: each starts a
request (a cutover or a restore) that a failback undoes, like a migrate and its rollback, and the
person on call during an outage should not need the admin token for the one call that matters then
(every call is logged with the token's name). Deleting a policy needs ``admin``: it drops its
schedule and its recorded status for good, like deleting a snapshot.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Awaitable, Callable

import msgspec
from aiohttp import web

from services.gateway.config import Scope
from services.gateway.requests import REQUEST_ID
from services.gateway.web import CLIENT, IDENTITY, Handler, json_response, path_part, requires, without_values
from shared.bus.client import BusClient, RequestRejected
from shared.contracts.drills import MAX_DRILLS
from shared.contracts.errors import Invalid, NotFound, json_path
from shared.contracts.policies import PolicyState, decode_policy
from shared.contracts.requests import SnapshotId

log = logging.getLogger("ferry.gateway")

POLICY_NAME = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")


class DrillAsk(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """The body of ``POST /v1/policies/{name}/drill`` (optional): which replica, and whether the
    drill's namespaces stay for a look afterwards."""

    snapshot: SnapshotId = "latest"
    keep: bool = False


_drill_ask = msgspec.json.Decoder(DrillAsk)


async def _exists(client: BusClient, name: str) -> bool:
    """Whether a policy of this name is stored (the create's answer is the same either way)."""
    try:
        await client.policy_get(name)
    except RequestRejected as e:
        if e.rejected.code == NotFound.code:
            return False
        raise
    return True


def policy_name(request: web.Request) -> str:
    return path_part(
        request, "name", POLICY_NAME, "no policy with this name (a policy's name is a DNS-1123 label)"
    )


@requires(Scope.READ)
async def list_policies(request: web.Request) -> web.Response:
    """Every policy with its RPO as of now; ``skipped`` names those that could not be read."""
    return json_response(await request.app[CLIENT].policy_list())


@requires(Scope.SUBMIT)
async def create_policy(request: web.Request) -> web.Response:
    """201 and the PolicyState; the same body again answers the stored policy (200)."""
    body = await request.read()
    try:
        policy = decode_policy(body)
    except Invalid as e:
        raise Invalid(without_values(str(e)), field=e.field) from None
    client = request.app[CLIENT]
    fresh = not await _exists(client, policy.name)  # two creates racing both hear 201: harmless
    state = await client.policy_create(body)
    log.info("%s created policy %s (%s)", request[IDENTITY].name, policy.name, policy.schedule)
    headers = {"Location": f"/v1/policies/{policy.name}"}
    return json_response(state, 201 if fresh else 200, headers)


@requires(Scope.READ)
async def get_policy(request: web.Request) -> web.Response:
    return json_response(await request.app[CLIENT].policy_get(policy_name(request)))


@requires(Scope.ADMIN)
async def delete_policy(request: web.Request) -> web.Response:
    deleted = await request.app[CLIENT].policy_delete(policy_name(request))
    log.info("%s deleted policy %s", request[IDENTITY].name, deleted.name)
    return json_response(deleted)


def _changing(verb: str, change: Callable[[BusClient, str], Awaitable[PolicyState]], level: int) -> Handler:
    """The handler of one change of a policy (``submit`` scope): ``change`` it on the bus, log who
    did it at ``level``, answer the PolicyState."""

    @requires(Scope.SUBMIT)
    async def handler(request: web.Request) -> web.Response:
        state = await change(request.app[CLIENT], policy_name(request))
        log.log(level, "%s %s policy %s", request[IDENTITY].name, verb, state.policy.name)
        return json_response(state)

    return handler


pause_policy = _changing("paused", BusClient.policy_pause, logging.INFO)
resume_policy = _changing("resumed", BusClient.policy_resume, logging.INFO)
# Fail over to the DR side, or back to the primary: the PolicyState's ``failover_request`` or
# ``failback_request`` names the request started. Logged as warnings: someone moved an application.
failover_policy = _changing("failed over", BusClient.policy_failover, logging.WARNING)
failback_policy = _changing("failed back", BusClient.policy_failback, logging.WARNING)


@requires(Scope.SUBMIT)
async def drill_policy(request: web.Request) -> web.Response:
    """Start a drill of the policy's DR side: 201 ``accepted`` naming the drill request."""
    name, body = policy_name(request), await request.read()
    try:
        ask = _drill_ask.decode(body) if body.strip() else DrillAsk()
    except msgspec.ValidationError as e:
        raise Invalid(without_values(str(e).partition(" - at `")[0]), field=json_path(e) or "$") from None
    except msgspec.DecodeError:
        raise Invalid('the body is not JSON: {"snapshot": "latest", "keep": false}', field="$") from None
    accepted = await request.app[CLIENT].policy_drill(name, snapshot=ask.snapshot, keep=ask.keep)
    log.info("%s drilled policy %s: %s", request[IDENTITY].name, name, accepted.id)
    headers = {"Location": f"/v1/requests/{accepted.id}"}
    return json_response(accepted, 200 if accepted.duplicate else 201, headers)


@requires(Scope.READ)
async def list_drills(request: web.Request) -> web.Response:
    """Drill reports, newest first; ``?policy=`` for one policy's, ``?limit=`` (1..1000)."""
    unknown = sorted(set(request.query) - {"policy", "limit"})
    if unknown:
        raise Invalid("unknown query parameter (known: limit, policy)", field=unknown[0])
    policy = request.query.get("policy", "")
    if policy and not POLICY_NAME.match(policy):
        raise Invalid("not a policy name (a DNS-1123 label)", field="policy")
    raw = request.query.get("limit", "100")
    if not raw.isdigit() or not 1 <= int(raw) <= MAX_DRILLS:
        raise Invalid(f"limit must be an integer between 1 and {MAX_DRILLS}", field="limit")
    return json_response(await request.app[CLIENT].drills(policy, limit=int(raw)))


@requires(Scope.READ)
async def get_drill(request: web.Request) -> web.Response:
    drill = path_part(request, "id", REQUEST_ID, "no drill with this id")  # a drill is a request
    return json_response(await request.app[CLIENT].drill_report(drill))


def add_routes(router: web.UrlDispatcher) -> None:
    router.add_get("/v1/policies", list_policies)
    router.add_post("/v1/policies", create_policy)
    router.add_get("/v1/policies/{name}", get_policy)
    router.add_delete("/v1/policies/{name}", delete_policy)
    router.add_post("/v1/policies/{name}/pause", pause_policy)
    router.add_post("/v1/policies/{name}/resume", resume_policy)
    router.add_post("/v1/policies/{name}/drill", drill_policy)
    router.add_post("/v1/policies/{name}/failover", failover_policy)
    router.add_post("/v1/policies/{name}/failback", failback_policy)
    router.add_get("/v1/drills", list_drills)
    router.add_get("/v1/drills/{id}", get_drill)
