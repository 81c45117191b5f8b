"""What a staged migration asks of the restore step: claims that can bind, and the cutover's downtime.

A **stage** lands only the claims (``selecting``) and a **cutover** lands everything, after the
source was quiesced and left down. Both are parts of one plan, so this module holds what is theirs:

- **storage classes first.** A claim whose storage class the target lacks never binds: its mover
  Job's pod stays Pending until the mover timeout (an hour), and a cutover would keep the
  application down in both clusters all that time. So a stage or cutover checks, before it writes
  anything, that every class its claims use (after ``storage_class_map``) exists in the target or is
  written by this very restore (a claim without a class needs a default class), and fails at once
  naming the claims — for a cutover, the failure is what starts the automatic rollback;
- **downtime.** The snapshot step outputs when it first quiesced the source (``quiesced_at``); once
  the restore's readiness wait says every workload is available, the restore outputs
  ``available_at`` and ``downtime_seconds`` (the difference, to 0.1 s), emits a ``Quiesced`` event
  with both times (the CLI stops its downtime clock on it) and sets the gauge
  ``ferry_cutover_downtime_seconds``;
- **bytes per stage.** ``ferry_restore_bytes_written_total{mode}`` counts the volume bytes each kind
  of restore wrote (``stage``, ``cutover``, ``full``): a stage after the first writes only the
  files that changed, which this shows.

The metrics live on the service's own registry (``Service.metrics.registry``), which ``/metrics``
serves, so no shared module has to know about them.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping

from prometheus_client import CollectorRegistry, Counter, Gauge

from shared.contracts.migrations import AVAILABLE_AT, DOWNTIME, QUIESCED_AT
from shared.contracts.requests import MobilityRequest
from shared.kube.objects import Manifest, Obj, dig
from shared.runtime.clusters import Cluster

STORAGE_CLASS = ("storage.k8s.io/v1", "StorageClass")
DEFAULT_CLASS = "storageclass.kubernetes.io/is-default-class"
BETA_CLASS = "volume.beta.kubernetes.io/storage-class"


def mode_of(request: MobilityRequest) -> str:
    """Which part of a staged migration a restore is: ``stage``, ``cutover``, or ``full`` (any other)."""
    return "stage" if request.stage else "cutover" if request.cutover else "full"


class MigrationMetrics:
    """The cutover's downtime and the bytes each kind of restore wrote, on one service's registry."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.downtime = Gauge(
            "ferry_cutover_downtime_seconds",
            "Downtime of the last cutover: from the source's quiesce to the target's workloads available",
            registry=registry,
        )
        self.bytes_written = Counter(
            "ferry_restore_bytes_written_total",
            "Volume bytes a restore wrote, by mode (stage, cutover, full)",
            ["mode"],
            registry=registry,
        ).labels


def _class_of(claim: Manifest) -> str | None:
    """The storage class a claim asks for: a name, "" (none: a pre-provisioned volume) or None (the
    default class)."""
    name = dig(claim.obj, "spec", "storageClassName")
    if name is None:
        name = (claim.metadata.get("annotations") or {}).get(BETA_CLASS)
    return None if name is None else str(name)


def _is_default(storage_class: Obj) -> bool:
    return (dig(storage_class, "metadata", "annotations") or {}).get(DEFAULT_CLASS) == "true"


async def missing_storage_classes(cluster: Cluster, items: Iterable[Manifest]) -> list[str]:
    """Why claims of ``items`` could never bind in the target, one line per missing class ([] if none).

    Classes the restore itself writes (a snapshot holds the StorageClasses its claims use) count as
    present; they are written before the claims."""
    items = list(items)
    users: dict[str | None, list[str]] = {}
    for item in items:
        if item.kind == "PersistentVolumeClaim" and item.group == "" and (wanted := _class_of(item)) != "":
            users.setdefault(wanted, []).append(f"{item.namespace}/{item.name}")
    if not users:
        return []
    written = [item.obj for item in items if item.kind == "StorageClass"]
    live = [obj async for obj in cluster.iterate(*STORAGE_CLASS, "")]
    names = {dig(obj, "metadata", "name") for obj in live + written}
    has_default = any(_is_default(obj) for obj in live + written)
    problems = []
    for wanted, claims in sorted(users.items(), key=lambda pair: pair[0] or ""):
        used_by = f"used by {', '.join(sorted(claims))}"
        if wanted is None and not has_default:
            problems.append(f"the target has no default storage class ({used_by})")
        elif wanted is not None and wanted not in names:
            known = ", ".join(sorted(str(n) for n in names)) or "none"
            problems.append(
                f"storage class {wanted} does not exist in the target (it has {known}; {used_by})"
            )
    return problems


def downtime_outputs(outputs: Mapping[str, str], available_at: float) -> dict[str, str]:
    """``available_at`` and, when the snapshot step said when it quiesced the source, the downtime."""
    found = {AVAILABLE_AT: f"{available_at:.3f}"}
    since = quiesced_at(outputs)
    if since is not None:
        found[DOWNTIME] = f"{max(0.0, available_at - since):.1f}"
    return found


def quiesced_at(outputs: Mapping[str, str]) -> float | None:
    """When the snapshot step first quiesced the source (unix seconds), or None when it did not say."""
    try:
        return float(outputs[QUIESCED_AT])
    except (KeyError, ValueError):
        return None


def now() -> float:
    """Wall-clock seconds (the snapshot step's ``quiesced_at`` is one too, from another process)."""
    return time.time()
