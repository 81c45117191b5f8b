"""Replication policies: what to replicate, where, how often, and the RPO it must hold.

A policy is one document (``Policy``) kept with its observed status (``PolicyStatus``) under the
policy's name in the ``ferry-policies`` KV bucket, together as a ``PolicyState``. Its slots are fired
by nats-server itself: the stream ``FERRY_SCHEDULES`` holds one schedule message per active policy on
``ferry.schedules.<policy>`` whose target is ``ferry.policy.slot.<policy>`` (JetStream message
schedules), and the intake process turns each slot into a ``replicate`` request.

The names of that stream, bucket and the ``ferry.policies.*`` subjects live here rather than in
``subjects.py`` so this contract can be read (and moved there later) as one piece.

| subject | body | reply |
|---|---|---|
| ``ferry.policies.create`` | a Policy | its PolicyState (the same for the same body), or Rejected |
| ``ferry.policies.get`` | the name | its PolicyState, RPO refreshed, or Rejected ``not-found`` |
| ``ferry.policies.list`` | empty | a PolicyList |
| ``ferry.policies.pause`` / ``resume`` | the name | the PolicyState after the change |
| ``ferry.policies.delete`` | the name | a PolicyDeleted |
"""

from __future__ import annotations

import re
from enum import StrEnum
from typing import Annotated

import msgspec
from msgspec import Meta, Struct, field

from shared.contracts.errors import VALUE_LIMIT, Invalid, clipped, json_path, shown
from shared.contracts.requests import (
    API_VERSION,
    LabelMap,
    MobilityRequest,
    Namespace,
    RequestInvalid,
    RequestKind,
    Source,
    Target,
    in_words,
)
from shared.contracts.requests import check as check_request
from shared.contracts.schedules import Schedule, ScheduleInvalid, check_zone, parse_schedule
from shared.durations import seconds

# --- names on the bus -----------------------------------------------------------------------------
SCHEDULES_STREAM = "FERRY_SCHEDULES"  # allow_msg_schedules: the server fires the slots
SCHEDULE_PREFIX = "ferry.schedules"  # ferry.schedules.<policy>: the one schedule message of a policy
SLOT_PREFIX = "ferry.policy.slot"  # ferry.policy.slot.<policy>: one message per slot, fired by NATS
SLOT_CONSUMER = "ferry-policy-slots"  # the durable consumer every intake replica shares
POLICIES_BUCKET = "ferry-policies"  # key: policy name -> PolicyState (compare-and-set)
POLICY_CREATE = "ferry.policies.create"
POLICY_GET = "ferry.policies.get"
POLICY_LIST = "ferry.policies.list"
POLICY_PAUSE = "ferry.policies.pause"
POLICY_RESUME = "ferry.policies.resume"
POLICY_DELETE = "ferry.policies.delete"
POLICY_LABEL = "ferry.dev/policy"  # on every replicate request a policy submits
MAX_SKIPPED = 50  # skipped slots a status keeps (the newest)
RPO_BREACHED = "RPOBreached"


def schedule_subject(policy: str) -> str:
    return f"{SCHEDULE_PREFIX}.{policy}"


def slot_subject(policy: str) -> str:
    return f"{SLOT_PREFIX}.{policy}"


def event_id(policy: str) -> str:
    """The id a policy's events carry as ``request_id``: ``ferry.events.policy-<name>.<kind>``."""
    return f"policy-{policy}"


def run_key(policy: str, slot: str) -> str:
    """The idempotency key of a slot's run: one request per slot, whoever handles it how often."""
    return f"policy-{policy}-{slot}"


# --- the policy -----------------------------------------------------------------------------------
Duration = Annotated[str, Meta(max_length=32, description="a duration: 90s, 15m, 12h, 7d, 2w")]
ScheduleText = Annotated[
    str,
    Meta(
        max_length=128,
        description="six-field cron with seconds ('0 */15 * * * *'), '@every <duration>' (90s, 15m, "
        "1h30m) or @hourly, @daily, @weekly, @monthly, @yearly",
    ),
]


class Retention(Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """Replicas kept on one side: the newest ``keep_last``, and all within ``keep_within``."""

    keep_last: Annotated[int, Meta(ge=0, le=10000)] = 0
    keep_within: Duration = ""


class Policy(Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """One application's replication to its DR side (``target.cluster``, ``target.repository``)."""

    name: Namespace  # a DNS-1123 label: a subject token and a KV key as it is
    source: Source
    target: Target
    schedule: ScheduleText
    time_zone: Annotated[str, Meta(max_length=64)] = ""  # IANA name; "" = UTC; cron and aliases only
    rpo: Duration  # the recovery point objective: the newest replica is never older than this
    source_retention: Retention = field(default_factory=Retention)
    target_retention: Retention = field(default_factory=Retention)
    drill_schedule: Annotated[str, Meta(max_length=128)] = ""  # "" or a schedule, as ``schedule``
    paused: bool = False
    labels: LabelMap = field(default_factory=dict)  # copied to every run's request
    # The run's steps, as a MobilityRequest's ``itinerary`` (empty: the whole replicate).
    itinerary: Annotated[list[Annotated[str, Meta(max_length=32)]], Meta(max_length=16)] = field(
        default_factory=list
    )
    api_version: Annotated[str, Meta(max_length=64)] = API_VERSION


class PolicyPhase(StrEnum):
    ACTIVE = "active"
    PAUSED = "paused"
    FAILED_OVER = "failed-over"  # the DR side serves: no replication from the old primary


class Condition(Struct, kw_only=True):
    """A condition that holds now (``RPOBreached``), since when and why; absent when it does not."""

    type: str
    since: str
    message: str = ""


class SkippedSlot(Struct, kw_only=True):
    slot_at: str
    reason: str


class PolicyStatus(Struct, kw_only=True):
    """What happened to a policy's slots, and how old its newest replica is.

    ``last_replica_at`` is the creation time of the newest replicate request that completed: the
    snapshot is taken a little later, so the RPO shown errs on the safe side by the queueing time.
    Before any replica exists the RPO runs from ``created_at``.
    """

    state: PolicyPhase = PolicyPhase.ACTIVE
    created_at: str = ""
    updated_at: str = ""
    paused_at: str = ""  # when it was last paused: the slots since are counted missed on resume
    last_slot_at: str = ""  # the newest slot handled (run, skipped or missed)
    last_run_request: str = ""
    last_run_phase: str = ""  # the Phase of that request, as last seen
    last_run_duration_seconds: float = 0.0  # of the newest finished run
    last_success_at: str = ""  # when the newest completed run finished
    last_replica_at: str = ""  # source time of the newest replica (see the class docstring)
    rpo_seconds: float = 0.0
    rpo_target_seconds: float = 0.0
    breached: bool = False
    conditions: list[Condition] = field(default_factory=list)
    runs: int = 0
    skipped: list[SkippedSlot] = field(default_factory=list)  # the newest MAX_SKIPPED
    missed: int = 0  # slots that never ran: paused, or superseded while Ferry was down


class PolicyState(Struct, kw_only=True):
    """A policy and its status: the value stored under its name, and the reply to get/create."""

    policy: Policy
    status: PolicyStatus = field(default_factory=PolicyStatus)


class Unreadable(Struct, frozen=True, kw_only=True):
    name: str
    reason: str


class PolicyList(Struct, kw_only=True, omit_defaults=True):
    """Every policy, by name; ``more`` counts those left off to keep the reply in one NATS message."""

    items: list[PolicyState]
    skipped: list[Unreadable] = field(default_factory=list)
    more: int = 0


class PolicyDeleted(Struct, frozen=True, tag="deleted"):
    name: str


# --- checking ---------------------------------------------------------------------------------------
def check_policy(policy: Policy) -> Policy:
    """Rules a schema cannot say; raises ``Invalid`` naming the field (``$.schedule``)."""
    if policy.api_version != API_VERSION:
        raise Invalid(
            f"unsupported api_version {shown(policy.api_version)}, expected {API_VERSION!r}",
            field="$.api_version",
        )
    if not policy.target.cluster:
        raise Invalid("a policy needs its DR cluster", field="$.target.cluster")
    if not policy.source.namespaces and not policy.source.selector:
        raise Invalid("name at least one namespace or a label selector", field="$.source.namespaces")
    main = _schedule(policy.schedule, "$.schedule")
    try:
        check_zone(policy.time_zone)
    except ScheduleInvalid as e:
        raise Invalid(str(e), field="$.time_zone") from e
    if policy.time_zone and not main.cron:
        raise Invalid("a time zone applies to cron schedules and aliases, not @every", field="$.time_zone")
    if policy.drill_schedule:
        _schedule(policy.drill_schedule, "$.drill_schedule")
    if _duration(policy.rpo, "$.rpo") <= 0:
        raise Invalid("the RPO must be more than zero", field="$.rpo")
    for side in ("source_retention", "target_retention"):
        keep_within = getattr(policy, side).keep_within
        if keep_within:
            _duration(keep_within, f"$.{side}.keep_within")
    _check_run(policy)
    return policy


def _schedule(text: str, path: str) -> Schedule:
    try:
        return parse_schedule(text)
    except ScheduleInvalid as e:
        raise Invalid(str(e), field=path) from e


def _duration(text: str, path: str) -> float:
    try:
        return seconds(text)
    except ValueError as e:
        raise Invalid(str(e), field=path) from e


def _check_run(policy: Policy) -> None:
    """The replicate request a slot will submit must pass intake: check it now, at create."""
    try:
        check_request(run_request(policy, ""))
    except RequestInvalid as e:  # the request's paths are the policy's: source, target, itinerary
        raise Invalid(e.reason, field=e.field) from e


def run_request(policy: Policy, slot: str) -> MobilityRequest:
    """The ``replicate`` request of one slot: the policy's source and DR target, keyed by the slot."""
    return MobilityRequest(
        kind=RequestKind.REPLICATE,
        source=policy.source,
        target=policy.target,
        idempotency_key=run_key(policy.name, slot) if slot else "",
        labels={**policy.labels, POLICY_LABEL: policy.name},
        itinerary=policy.itinerary,
    )


_decoder = msgspec.json.Decoder(Policy)
state_decoder = msgspec.json.Decoder(PolicyState)
encoder = msgspec.json.Encoder()
canonical = msgspec.json.Encoder(order="deterministic")
_UNKNOWN = re.compile(r"^Object contains unknown field `([^`]*)`$")


def _path_of(error: msgspec.ValidationError, message: str) -> str:
    """The path msgspec names, down to the unknown field itself (``$.source.bogus``)."""
    path = json_path(error) or "$"
    unknown = _UNKNOWN.match(message)
    if unknown and len(unknown.group(1)) <= VALUE_LIMIT:
        return f"{path}.{unknown.group(1)}"
    return path


def decode_policy(data: bytes) -> Policy:
    """Decode and check a policy; ``Invalid`` naming the field for any bad input."""
    try:
        policy = _decoder.decode(data)
    except msgspec.ValidationError as e:
        message = str(e).partition(" - at `")[0]
        raise Invalid(in_words(clipped(message)), field=_path_of(e, message)) from e
    except msgspec.DecodeError as e:
        raise Invalid(f"not valid JSON: {clipped(str(e))}", field="$") from e
    return check_policy(policy)
