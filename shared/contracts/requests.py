"""The mobility request: what to move, from where, to where, and how.

This is Ferry's public input contract — the gateway, the `ferry` command and any automation posting
on ``ferry.requests`` send exactly this document. Unknown fields are refused (a typo must not be
silently ignored) and every error names the field (msgspec reports ``$.source.cluster``).
"""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated, Any, cast, get_args, get_origin, get_type_hints

import msgspec
from msgspec import Meta, Struct, field

from shared.contracts.errors import VALUE_LIMIT, clipped, json_path, shown
from shared.contracts.itineraries import KIND_STEPS, StepName

API_VERSION = "ferry.dev/v1"

# Bounds of a request (docs/contracts.md, "Bounds"). Each is in the JSON Schema where msgspec can say
# it (``maxItems``, ``maxLength``, ``maxProperties``, ``pattern``); the encoded size is checked here.
MAX_REQUEST_BYTES = 128 * 1024  # the whole request, encoded as compact JSON
MAX_NAMESPACES = 1000  # source.namespaces, and entries of target.namespace_map
MAX_LABELS = 64
MAX_SELECTOR = 1024  # characters of source.selector
MAX_RESOURCE_TYPES = 256  # entries of include_resources / exclude_resources
MAX_MAP_ENTRIES = 256  # storage_class_map, registry_map, volumes.exclude_storage_classes
MAX_RESOURCE_MODIFIERS = 64 * 1024  # characters of target.resource_modifiers
MAX_RESTORE_RESOURCES = 1000  # restore.resources
MAX_VOLUME_PATHS = 256  # restore.volume_paths


def _whole(body: str) -> str:
    """A pattern that must match the whole value. Python's ``$`` also matches before a final newline
    (``"east\\n"`` would pass); the lookahead refuses that, and reads the same in the JSON Schema's
    ECMA-262 regexes, where ``$`` alone would already have been enough."""
    return f"^{body}$(?!\\n)"


_LABEL = r"[a-z0-9]([-a-z0-9]*[a-z0-9])?"  # DNS-1123 label
_SUBDOMAIN = r"[a-z0-9]([-a-z0-9.]*[a-z0-9])?"  # DNS-1123 subdomain
_QUALIFIED = r"[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?"  # the name part of a label key

Namespace = Annotated[
    str,
    Meta(
        min_length=1,
        max_length=63,
        pattern=_whole(_LABEL),
        description="a namespace: a DNS-1123 label (lowercase letters, digits, '-'; no dots; at most 63)",
    ),
]
Name = Annotated[
    str,
    Meta(
        min_length=1,
        max_length=253,
        pattern=_whole(_SUBDOMAIN),
        description="a Kubernetes object name: a DNS-1123 subdomain (lowercase, digits, '-', '.')",
    ),
]
ClusterName = Annotated[
    str,
    Meta(
        min_length=1,
        max_length=253,
        pattern=_whole(r"[A-Za-z0-9]([-A-Za-z0-9_.@:/]*[A-Za-z0-9])?"),
        description="a kubeconfig context name",
    ),
]
LabelKey = Annotated[
    str,
    Meta(
        min_length=1,
        max_length=317,
        pattern=_whole(f"({_SUBDOMAIN}/)?{_QUALIFIED}"),
        description="a label key as Kubernetes writes them: [prefix/]name",
    ),
]
LabelValue = Annotated[
    str,
    Meta(
        max_length=63,
        pattern=_whole(r"[^\x00-\x1f\x7f]*"),
        description="a label value: text without control characters, at most 63 characters",
    ),
]
LabelMap = Annotated[dict[LabelKey, LabelValue], Meta(max_length=MAX_LABELS)]
Selector = Annotated[
    str,
    Meta(
        max_length=MAX_SELECTOR,
        pattern=_whole(r"[A-Za-z0-9_./=!,() -]*"),
        description="a label selector, as kubectl -l takes it",
    ),
]
ResourceType = Annotated[str, Meta(min_length=1, max_length=253, pattern=_whole(r"[^\s]+"))]
ResourceTypes = Annotated[list[ResourceType], Meta(max_length=MAX_RESOURCE_TYPES)]
RegistryPrefix = Annotated[str, Meta(min_length=1, max_length=512, pattern=_whole(r"[^\s]+"))]
RepositoryName = Annotated[str, Meta(max_length=253, pattern=_whole(r"[^\s]*"))]
SnapshotId = Annotated[str, Meta(max_length=256, pattern=_whole(r"[^\s]*"))]
RequestId = Annotated[str, Meta(max_length=128, pattern=_whole(r"[^\s]*"))]

# What a pattern means, in words, for the error message (msgspec would quote the regex).
_PATTERN_WORDS = {
    _whole(_LABEL): "a DNS-1123 label (lowercase letters, digits and '-', no dots, at most 63 characters)",
    _whole(_SUBDOMAIN): "a DNS-1123 subdomain (lowercase letters, digits, '-' and '.')",
    _whole(r"[A-Za-z0-9]([-A-Za-z0-9_.@:/]*[A-Za-z0-9])?"): "a cluster (kubeconfig context) name",
    _whole(f"({_SUBDOMAIN}/)?{_QUALIFIED}"): "a label key ([prefix/]name, as Kubernetes writes them)",
    _whole(r"[^\x00-\x1f\x7f]*"): "text without control characters",
    _whole(r"[A-Za-z0-9_./=!,() -]*"): "a label selector",
    _whole(r"[^\s]+"): "a name without whitespace",
    _whole(r"[^\s]*"): "a name without whitespace",
}


class RequestKind(StrEnum):
    MIGRATE = "migrate"  # discover, snapshot, transfer, restore, verify
    REPLICATE = "replicate"  # discover, snapshot, transfer (a DR replica in the target region)
    RESTORE = "restore"  # an existing snapshot into a cluster: transfer (if needed), restore, verify
    DRILL = "drill"  # restore the latest replica into an isolated namespace, verify, clean up
    ROLLBACK = "rollback"  # undo a migrate (`rollback_of`): remove what it created, bring the source back


class ConflictPolicy(StrEnum):
    SKIP = "skip"  # leave the existing object, report it (Velero's default `none`)
    UPDATE = "update"  # patch the existing object to the snapshot's version
    RECREATE = "recreate"  # delete the existing object and create it again
    FAIL = "fail"  # the object fails with the conflict as its reason


class SnapshotMethod(StrEnum):
    AUTO = "auto"  # CSI VolumeSnapshot when a VolumeSnapshotClass exists, else the live volume
    CSI = "csi"  # require a CSI snapshot; a volume without one fails
    LIVE = "live"  # read the live volume (crash-consistent only)


class Source(Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """Where the application is read from."""

    cluster: ClusterName
    namespaces: Annotated[list[Namespace], Meta(max_length=MAX_NAMESPACES)] = field(default_factory=list)
    selector: Selector = ""  # a label selector, as kubectl -l takes it
    include_resources: ResourceTypes = field(default_factory=list)  # e.g. "deployments.apps", "configmaps"
    exclude_resources: ResourceTypes = field(default_factory=list)
    repository: RepositoryName = ""  # the source region's repository name ("" = the default)
    snapshot: SnapshotId = ""  # restore/drill: the snapshot id to start from ("latest" for the newest)


class Target(Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """Where the application lands, and the transforms applied on the way."""

    cluster: ClusterName | None = None
    repository: RepositoryName = ""  # the target region's repository ("" = same as the source's)
    namespace_map: Annotated[dict[Namespace, Namespace], Meta(max_length=MAX_NAMESPACES)] = field(
        default_factory=dict
    )
    storage_class_map: Annotated[dict[Name, Name], Meta(max_length=MAX_MAP_ENTRIES)] = field(
        default_factory=dict
    )
    registry_map: Annotated[dict[RegistryPrefix, RegistryPrefix], Meta(max_length=MAX_MAP_ENTRIES)] = field(
        default_factory=dict
    )
    # Velero's resource-modifier YAML (version: v1, resourceModifierRules)
    resource_modifiers: Annotated[str, Meta(max_length=MAX_RESOURCE_MODIFIERS)] = ""


class ExistingVolumes(StrEnum):
    """What a restore does with a claim that already exists in the target."""

    AUTO = "auto"  # refresh a claim Ferry restored before (it carries Ferry's labels), keep any other
    REFRESH = "refresh"  # delta-restore it to the snapshot's state (only changed files rewritten)
    KEEP = "keep"  # leave the target's data (Velero's behaviour); verify reports what differs
    FAIL = "fail"  # the volume fails: nothing is written into an existing claim


class VolumePolicy(Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """How volume data is captured and copied."""

    copy_data: bool = True
    method: SnapshotMethod = SnapshotMethod.AUTO
    parallel: Annotated[int, Meta(ge=1, le=64)] = 2
    exclude_storage_classes: Annotated[list[Name], Meta(max_length=MAX_MAP_ENTRIES)] = field(
        default_factory=list
    )
    existing: ExistingVolumes = ExistingVolumes.AUTO  # a claim that already exists in the target


class RestoreScope(Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """What a restore takes from a snapshot beyond ``source``'s types, selector and namespaces.

    A snapshot may hold more than one restore needs; these narrow it further, and the verify step
    then checks only what was selected.
    """

    # Named objects, "<kind or resource>/<name>" or "<kind or resource>/<namespace>/<name>" as captured,
    # e.g. "deployment/web", "configmaps/shop/app", "deployments.apps/web". Empty: every object.
    resources: Annotated[
        list[Annotated[str, Meta(min_length=3, max_length=512)]], Meta(max_length=MAX_RESTORE_RESOURCES)
    ] = field(default_factory=list)
    # Single paths of volumes, "<namespace>/<claim>:<path>" as captured, e.g. "shop/pgdata-db-0:/base/16":
    # only those paths of that claim are written (and verified). Empty: whole volumes.
    volume_paths: Annotated[
        list[Annotated[str, Meta(min_length=4, max_length=4096)]], Meta(max_length=MAX_VOLUME_PATHS)
    ] = field(default_factory=list)
    # With a namespace mapping, rewrite "<svc>.<ns>.svc[.cluster.local]" in values, namespaceSelector
    # matchNames and Helm release-namespace annotations (each rewrite is in the restore report).
    rewrite_references: bool = True
    # Restore Jobs that had completed in the source, or that a CronJob owns (they would run again).
    completed_jobs: bool = False


class HookErrorMode(StrEnum):
    """What a failing hook does to its step (Velero's ``onError``)."""

    FAIL = "Fail"  # the step fails with the hook's output
    CONTINUE = "Continue"  # a warning; the step goes on


HookCommand = Annotated[
    list[Annotated[str, Meta(max_length=16 * 1024)]]
    | Annotated[str, Meta(min_length=1, max_length=16 * 1024)],
    Meta(description="the command: a list of words, or one string (run as a single word, as Velero does)"),
]


class ExecHook(Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """One command run in a pod's container (Velero's ``exec`` hook)."""

    command: HookCommand
    container: Annotated[str, Meta(max_length=253)] = ""  # "" = the pod's first container
    on_error: HookErrorMode = HookErrorMode.FAIL
    timeout: Annotated[str, Meta(max_length=32)] = "30s"  # a duration: 30s, 2m


class ResourceHook(Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """Hooks for the pods a namespace list and a label selector choose (Velero's
    ``spec.hooks.resources[]``); a pod with hook annotations runs those instead, as in Velero."""

    name: Annotated[str, Meta(min_length=1, max_length=253)]
    namespaces: Annotated[list[Namespace], Meta(max_length=MAX_NAMESPACES)] = field(default_factory=list)
    excluded_namespaces: Annotated[list[Namespace], Meta(max_length=MAX_NAMESPACES)] = field(
        default_factory=list
    )
    selector: Selector = ""  # a label selector on the pods, as kubectl -l takes it
    pre: Annotated[list[ExecHook], Meta(max_length=32)] = field(default_factory=list)
    post: Annotated[list[ExecHook], Meta(max_length=32)] = field(default_factory=list)


class Hooks(Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """Backup hooks of the request: commands run in the selected pods right before the volumes are
    captured (``pre``) and right after (``post``)."""

    resources: Annotated[list[ResourceHook], Meta(max_length=64)] = field(default_factory=list)


class MobilityRequest(Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """One request to move, replicate, restore or drill an application."""

    kind: RequestKind
    source: Source
    target: Target = field(default_factory=Target)
    volumes: VolumePolicy = field(default_factory=VolumePolicy)
    restore: RestoreScope = field(default_factory=RestoreScope)
    conflict_policy: ConflictPolicy = ConflictPolicy.SKIP
    quiesce: bool = False  # scale workloads to zero while the final copy is taken, restore after
    # A staged migration: stages copy the volumes while the source keeps serving (claims only, delta
    # restore, repeatable); the cutover quiesces the source and leaves it down, takes the last delta
    # and restores everything. A cutover that fails after the quiesce is rolled back unless
    # auto_rollback is false.
    stage: bool = False
    cutover: bool = False
    auto_rollback: bool = True
    rollback_of: RequestId = ""  # a rollback request: the id of the migrate it undoes
    keep_owned: bool = False  # also capture objects owned by another captured object
    # A drill: leave what it restored in the DR cluster (its cleanup step then only measures)
    keep: bool = False
    # Backup hooks besides the pods' own Velero annotations (pre/post.hook.backup.velero.io/*)
    hooks: Hooks = field(default_factory=Hooks)
    dry_run: bool = False
    preflight_only: bool = False  # run the preflight checks (clusters, RBAC, storage, repositories) and stop
    idempotency_key: Annotated[str, Meta(max_length=256)] = ""
    labels: LabelMap = field(default_factory=dict)
    # Override the kind's steps (names from StepName), e.g. a replicate that stops after snapshot: a
    # part of the kind's own steps, in their order (``echo``, a stub step that only reports, anywhere).
    itinerary: Annotated[list[Annotated[str, Meta(max_length=32)]], Meta(max_length=16)] = field(
        default_factory=list
    )
    api_version: Annotated[str, Meta(max_length=64)] = API_VERSION


class RequestInvalid(ValueError):
    """A request that decodes but makes no sense; ``field`` is the JSON path of the culprit."""

    def __init__(self, field_path: str, message: str) -> None:
        super().__init__(f"{message} - at `{field_path}`")
        self.field = field_path
        self.reason = message


def check(request: MobilityRequest) -> MobilityRequest:
    """Rules across fields that a schema cannot say; raises RequestInvalid naming the field."""
    if request.api_version != API_VERSION:
        raise RequestInvalid(
            "$.api_version", f"unsupported api_version {shown(request.api_version)}, expected {API_VERSION!r}"
        )
    size = len(_encoder.encode(request))
    if size > MAX_REQUEST_BYTES:
        path, part = _largest_part(request)
        raise RequestInvalid(
            path,
            f"the request is {size} bytes as JSON, more than the {MAX_REQUEST_BYTES} a request may be; "
            f"its largest part is this one ({part} bytes)",
        )
    overlap = sorted(set(request.source.include_resources) & set(request.source.exclude_resources))
    if overlap:
        named = ", ".join(shown(r) for r in overlap[:3]) + (
            f" and {len(overlap) - 3} more" if len(overlap) > 3 else ""
        )
        raise RequestInvalid("$.source.exclude_resources", f"both included and excluded: {named}")
    if (
        request.kind in (RequestKind.MIGRATE, RequestKind.RESTORE, RequestKind.DRILL)
        and not request.target.cluster
    ):
        raise RequestInvalid("$.target.cluster", f"a {request.kind.value} request needs a target cluster")
    if request.kind in (RequestKind.RESTORE, RequestKind.DRILL) and not request.source.snapshot:
        raise RequestInvalid(
            "$.source.snapshot", f"a {request.kind.value} request needs a snapshot id (or 'latest')"
        )
    if request.kind is RequestKind.MIGRATE and not request.source.namespaces and not request.source.selector:
        raise RequestInvalid("$.source.namespaces", "name at least one namespace or a label selector")
    _check_staging(request)
    _check_itinerary(request)
    return request


def _check_staging(request: MobilityRequest) -> None:
    """A stage and a cutover are parts of a migrate; a rollback names the migrate it undoes."""
    for flag in ("stage", "cutover"):
        if getattr(request, flag) and request.kind is not RequestKind.MIGRATE:
            raise RequestInvalid(
                f"$.{flag}", f"only a migrate request has a {flag}, not a {request.kind.value}"
            )
    if request.stage and request.cutover:
        raise RequestInvalid("$.cutover", "a request is a stage or a cutover, not both")
    if request.stage and request.quiesce:
        raise RequestInvalid("$.quiesce", "a stage keeps the source serving; quiesce belongs to the cutover")
    if request.kind is RequestKind.ROLLBACK and not request.rollback_of:
        raise RequestInvalid("$.rollback_of", "a rollback request names the migrate request it undoes")
    if request.rollback_of and request.kind is not RequestKind.ROLLBACK:
        raise RequestInvalid(
            "$.rollback_of", f"only a rollback request names one, not a {request.kind.value}"
        )


def _check_itinerary(request: MobilityRequest) -> None:
    """An itinerary is a part of the kind's own steps, in their order, each once.

    Every step relies on what the steps before it in the kind's order leave (a restore needs the
    snapshot), so a reordered itinerary (``["verify", "discover"]``) could only fail later, or worse;
    a shorter one (a replicate that stops after the snapshot) is what the field is for. ``echo``, a
    stub step that only reports progress (tests, the backbone demo), may stand anywhere.
    """
    known = [s.value for s in StepName]
    for i, step in enumerate(request.itinerary):
        if step not in known:
            raise RequestInvalid(
                f"$.itinerary[{i}]", f"unknown step {shown(step)}, expected one of {', '.join(known)}"
            )
    if len(set(request.itinerary)) != len(request.itinerary):
        raise RequestInvalid("$.itinerary", "a step may appear only once")
    order = [s.value for s in KIND_STEPS[request.kind]]
    kind = request.kind.value
    previous = ""
    for i, step in enumerate(request.itinerary):
        if step == StepName.ECHO.value:
            continue
        if step not in order:
            raise RequestInvalid(
                f"$.itinerary[{i}]", f"a {kind} request has no step {step}; its steps: {', '.join(order)}"
            )
        if previous and order.index(step) < order.index(previous):
            raise RequestInvalid(
                f"$.itinerary[{i}]",
                f"{step} cannot run after {previous}: a {kind} request's steps go {' → '.join(order)}",
            )
        previous = step


def _largest_part(request: MobilityRequest) -> tuple[str, int]:
    """The JSON path of the largest part of a request, going down while it is a Struct, and its size."""
    path, value = "$", cast(Struct, request)
    size = len(_encoder.encode(value))
    while isinstance(value, Struct):
        parts = {name: getattr(value, name) for name in value.__struct_fields__}
        name = max(parts, key=lambda n: len(_encoder.encode(parts[n])))
        path, value = f"{path}.{name}", parts[name]
        size = len(_encoder.encode(value))
    return path, size


_decoder = msgspec.json.Decoder(MobilityRequest)
_encoder = msgspec.json.Encoder()


def decode_request(data: bytes) -> MobilityRequest:
    """Decode and check; raises RequestInvalid with the field path for any bad input.

    The message never quotes more than 100 characters of a value, and an error on a key of a map
    (a label key, a namespace mapped from) names that key in the path: ``$.labels["Bad Key"]``.
    """
    try:
        request = _decoder.decode(data)
    except msgspec.ValidationError as e:
        path, message = _located(data, e)
        raise RequestInvalid(path, in_words(clipped(message))) from e
    except msgspec.DecodeError as e:
        raise RequestInvalid("$", f"not valid JSON: {clipped(str(e))}") from e
    return check(request)


def _located(data: bytes, error: msgspec.ValidationError) -> tuple[str, str]:
    """The path and message of a validation error, the map key it concerns found when msgspec only
    says ``key in $.labels`` or ``$.labels[...]``."""
    text = str(error)
    message, _, where = text.partition(" - at `")
    path = json_path(error) or "$"
    on_key = "` in `" in where
    if on_key or path.endswith("[...]"):
        found = _culprit(data, path.removesuffix("[...]"), on_key=on_key)
        if found is not None:
            return found
    return path, message


def _culprit(data: bytes, map_path: str, *, on_key: bool) -> tuple[str, str] | None:
    """Find the first key (or value) of the map at ``map_path`` that its declared type refuses."""
    names = map_path.split(".")[1:]
    if not map_path.startswith("$.") or any("[" in n for n in names):
        return None
    try:
        raw: Any = msgspec.json.decode(data)
    except msgspec.DecodeError:
        return None
    kind: Any = MobilityRequest
    for name in names:
        if not (isinstance(kind, type) and issubclass(kind, Struct)) or not isinstance(raw, dict):
            return None
        kind, raw = _unwrapped(get_type_hints(kind, include_extras=True)[name]), raw.get(name)
    if get_origin(kind) is not dict or not isinstance(raw, dict):
        return None
    key_type, value_type = get_args(kind)
    for key, value in raw.items():
        try:
            msgspec.convert(key, key_type) if on_key else msgspec.convert(value, value_type)
        except msgspec.ValidationError as bad:
            where = f"{map_path}[{msgspec.json.encode(key[:VALUE_LIMIT]).decode()}]"
            what = str(bad).partition(" - at `")[0]
            return where, f"invalid key: {what}" if on_key else what
    return None


def _unwrapped(kind: Any) -> Any:
    return get_args(kind)[0] if get_origin(kind) is Annotated else kind


def in_words(message: str) -> str:
    """msgspec's ``Expected `str` matching regex '…'``, with the regex said in words."""
    for pattern, words in _PATTERN_WORDS.items():
        message = message.replace(f"`str` matching regex {pattern!r}", words)
    return message


def encode_request(request: MobilityRequest) -> bytes:
    return _encoder.encode(request)
