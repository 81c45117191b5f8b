"""Replication policies: what to replicate, where, how often, and the RPO it must hold.

A policy is one document (``Policy``) kept with its observed status (``PolicyStatus``) under the
policy's name in the ``ferry-policies`` KV bucket, together as a ``PolicyState``. Its slots are fired
by nats-server itself: the stream ``FERRY_SCHEDULES`` holds one schedule message per active policy on
``ferry.schedules.<policy>`` whose target is ``ferry.policy.slot.<policy>`` (JetStream message
schedules), and the intake process turns each slot into a ``replicate`` request. A policy with a
``drill_schedule`` has a second one, ``ferry.schedules.<policy>.drill`` firing
``ferry.policy.slot.<policy>.drill``, whose slots become ``drill`` requests.

Disaster recovery goes through the policy too, so the schedules stop and start with it: a
**failover** brings the application up on the DR cluster under its real namespaces — a ``migrate``
cutover from the primary when the primary answers (it is quiesced and left down, nothing is lost),
else a ``restore`` of the newest replica (the data lost is the RPO at that instant) — and the policy
is ``failed-over`` (no replication from the old primary) until a **failback**, a ``migrate`` cutover
from the DR cluster back to the primary through the primary's repository (only the chunks it lacks
travel, the primary's volumes are refreshed by delta), completes. The builders of those requests
are here, so what a failover does can be read without the service.

The names of that stream, bucket and the ``ferry.policies.*`` subjects live here rather than in
``subjects.py`` so this contract can be read (and moved there later) as one piece.

| subject | body | reply |
|---|---|---|
| ``ferry.policies.create`` | a Policy | its PolicyState (the same for the same body), or Rejected |
| ``ferry.policies.get`` | the name | its PolicyState, RPO refreshed, or Rejected ``not-found`` |
| ``ferry.policies.list`` | empty | a PolicyList |
| ``ferry.policies.pause`` / ``resume`` | the name | the PolicyState after the change |
| ``ferry.policies.delete`` | the name | a PolicyDeleted |
| ``ferry.policies.drill`` | a DrillCall ``{"name", "snapshot": "latest", "keep": false}`` | Accepted (the drill) |
| ``ferry.policies.failover`` | the name | the PolicyState, ``failover_request`` set |
| ``ferry.policies.failback`` | the name | the PolicyState, ``failback_request`` set |
"""

from __future__ import annotations

import re
from enum import StrEnum
from typing import Annotated, Any

import msgspec
from msgspec import Meta, Struct, field

from shared.contracts.errors import VALUE_LIMIT, Invalid, clipped, json_path, shown
from shared.contracts.requests import (
    API_VERSION,
    ConflictPolicy,
    ExistingVolumes,
    LabelMap,
    MobilityRequest,
    Namespace,
    RequestInvalid,
    RequestKind,
    SnapshotId,
    Source,
    Target,
    VolumePolicy,
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
POLICY_DRILL = "ferry.policies.drill"
POLICY_FAILOVER = "ferry.policies.failover"
POLICY_FAILBACK = "ferry.policies.failback"
POLICY_LABEL = "ferry.dev/policy"  # on every request a policy submits
DR_LABEL = "ferry.dev/dr"  # on a failover's or a failback's request: "failover" | "failback"
DRILL = "drill"  # the last token of a drill schedule's subjects
MAX_SKIPPED = 50  # skipped slots a status keeps (the newest)
RPO_BREACHED = "RPOBreached"


def schedule_subject(policy: str) -> str:
    return f"{SCHEDULE_PREFIX}.{policy}"


def slot_subject(policy: str) -> str:
    return f"{SLOT_PREFIX}.{policy}"


def drill_schedule_subject(policy: str) -> str:
    return f"{SCHEDULE_PREFIX}.{policy}.{DRILL}"


def drill_slot_subject(policy: str) -> str:
    return f"{SLOT_PREFIX}.{policy}.{DRILL}"


def event_id(policy: str) -> str:
    """The id a policy's events carry as ``request_id``: ``ferry.events.policy-<name>.<kind>``."""
    return f"policy-{policy}"


def run_key(policy: str, slot: str) -> str:
    """The idempotency key of a slot's run: one request per slot, whoever handles it how often."""
    return f"policy-{policy}-{slot}"


def drill_key(policy: str, slot: str) -> str:
    """The idempotency key of a drill slot's drill (``slot`` as ``Slot.key``)."""
    return f"policy-{policy}-drill-{slot}"


def recovery_key(policy: str, action: str, at: str) -> str:
    """The idempotency key of a failover or failback asked at ``at`` (ISO): a call repeated after a
    crash between the policy's record and the submission starts the same request, not a second."""
    stamp = "".join(ch for ch in at if ch.isalnum())
    return f"policy-{policy}-{action}-{stamp}"


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
    # Drills of the DR side (``ferry.policies.drill`` and the drill schedule's slots).
    last_drill_request: str = ""
    last_drill_phase: str = ""
    last_drill_slot_at: str = ""  # the newest drill slot handled (apart from ``last_slot_at``)
    drills: int = 0  # drills the schedule started
    # Failover: asked at ``failover_at``; ``failover_mode`` "cutover" (the primary answered: quiesced
    # and left down, ``data_lost_seconds`` 0) or "restore" (it did not: the newest replica restored,
    # the data lost is the RPO at that instant). A failover that fails makes the policy active again.
    failover_request: str = ""
    failover_at: str = ""
    failover_mode: str = ""
    failover_reason: str = ""  # why this mode (what the probe of the primary said)
    failover_phase: str = ""  # the Phase of the failover's request, as last seen
    data_lost_seconds: float | None = None
    rto_seconds: float | None = None  # failover_at -> the application available on the DR cluster
    downtime_seconds: float | None = None  # a cutover's: the primary's quiesce -> available on DR
    # Retention (``source_retention``, ``target_retention``): applied after each completed run.
    retained_run: str = ""  # the run after which it was last applied (or found nothing to apply)
    last_retention_at: str = ""
    last_retention: str = ""  # what it kept and removed on each side, or why it could not run
    # Failback: asked at ``failback_at``; when its request completes (``failed_back_at``) the policy
    # is active again and its schedules run; one that fails leaves it failed over (ask again).
    failback_request: str = ""
    failback_at: str = ""
    failback_phase: str = ""
    failed_back_at: str = ""


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


class DrillCall(Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """The body of ``ferry.policies.drill``: which replica to drill, and whether to keep it running."""

    name: Namespace
    snapshot: SnapshotId = "latest"
    keep: bool = False


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


def _labels(policy: Policy, **extra: str) -> dict[str, str]:
    return {**policy.labels, POLICY_LABEL: policy.name, **extra}


def drill_of(
    policy: Policy, snapshot: str = "latest", *, keep: bool = False, key: str = ""
) -> MobilityRequest:
    """A drill of the policy's replica: read from the DR repository, restored on the DR cluster.

    No namespace mapping is passed: the drill step generates isolated names itself, and the
    policy's own mapping names the real namespaces a drill must never touch.
    """
    source, target = policy.source, policy.target
    return MobilityRequest(
        kind=RequestKind.DRILL,
        source=msgspec.structs.replace(source, repository=target.repository, snapshot=snapshot or "latest"),
        target=msgspec.structs.replace(target, namespace_map={}),
        keep=keep,
        idempotency_key=key,
        labels=_labels(policy),
    )


def failover_of(policy: Policy, *, cutover: bool, key: str) -> MobilityRequest:
    """The failover's request: the application on the DR cluster under its real namespaces.

    ``cutover``: a ``migrate`` cutover from the primary (quiesced and left down, the last delta
    sent, the restore reports the downtime). Otherwise a ``restore`` of the newest replica from the
    DR repository. Either way existing objects are updated and existing claims refreshed by delta:
    a kept drill or an earlier failover may have left them there.
    """
    common: dict[str, Any] = {
        "target": policy.target,
        "conflict_policy": ConflictPolicy.UPDATE,
        "volumes": VolumePolicy(existing=ExistingVolumes.REFRESH),
        "idempotency_key": key,
        "labels": _labels(policy, **{DR_LABEL: "failover"}),
    }
    if cutover:
        return MobilityRequest(kind=RequestKind.MIGRATE, cutover=True, source=policy.source, **common)
    source = msgspec.structs.replace(policy.source, repository=policy.target.repository, snapshot="latest")
    return MobilityRequest(kind=RequestKind.RESTORE, source=source, **common)


def failback_of(policy: Policy, *, key: str) -> MobilityRequest:
    """The failback's request: a ``migrate`` cutover from the DR cluster back to the primary.

    Its snapshot goes into the DR repository (where the replicas' chunks are), the transfer sends
    the primary's repository only the chunks it lacks, and the restore refreshes the primary's
    existing claims by delta and updates its quiesced workloads to the DR side's replicas.
    """
    target, source = policy.target, policy.source
    mapping = target.namespace_map
    back = Source(
        cluster=target.cluster or source.cluster,
        namespaces=[mapping.get(ns, ns) for ns in source.namespaces],
        selector=source.selector,
        include_resources=source.include_resources,
        exclude_resources=source.exclude_resources,
        repository=target.repository,
    )
    home = Target(
        cluster=source.cluster,
        repository=source.repository,
        namespace_map={new: old for old, new in mapping.items() if new != old},
        storage_class_map=_inverse(target.storage_class_map),
        registry_map=_inverse(target.registry_map),
    )
    return MobilityRequest(
        kind=RequestKind.MIGRATE,
        cutover=True,
        source=back,
        target=home,
        conflict_policy=ConflictPolicy.UPDATE,
        volumes=VolumePolicy(existing=ExistingVolumes.REFRESH),
        idempotency_key=key,
        labels=_labels(policy, **{DR_LABEL: "failback"}),
    )


def _inverse(mapping: dict[str, str]) -> dict[str, str]:
    """A mapping read backwards; only the entries that map one-to-one (two names onto one cannot
    be told apart again: those stay as they are)."""
    counts: dict[str, int] = {}
    for new in mapping.values():
        counts[new] = counts.get(new, 0) + 1
    return {new: old for old, new in mapping.items() if counts[new] == 1 and new != old}


_decoder = msgspec.json.Decoder(Policy)
state_decoder = msgspec.json.Decoder(PolicyState)
drill_call_decoder = msgspec.json.Decoder(DrillCall)
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
