"""Mover Jobs: ``ferry-mover`` next to a volume in the target cluster, to fill it or to read it back.

Volume data is written where the volume lives (DESIGN.md): for each restored PVC the restore step
creates a Job running Ferry's image with ``ferry-mover restore <snapshot> /data``, the PVC mounted at
``/data``, before any workload that mounts the claim is created. The verify step runs
``ferry-mover backup /data --parent none`` into the same repository: every file is read and hashed
again (no metadata shortcut), deduplication means nothing but trees is stored, and the two trees are
compared in the repository (``checking.compare_trees``).

The Job and its credentials Secret are built by ``shared.runtime.movers`` (one Secret per request and
namespace, deleted with the Jobs when the step ends). Everything carries the request's labels so a
rollback or a cleanup finds it.
"""

from __future__ import annotations

import hashlib
from typing import Any

from services.restore.objects import Obj
from shared.runtime import movers as moverjobs
from shared.runtime.settings import Settings

MOUNT = moverjobs.MOUNT
ROLE_LABEL = moverjobs.ROLE_LABEL


def short_name(*parts: str, prefix: str = "ferry") -> str:
    """A DNS-1123 name that stays under 63 characters and is stable for the same parts."""
    digest = hashlib.sha256("/".join(parts).encode()).hexdigest()[:10]
    head = "-".join(p for p in parts if p)[: 63 - len(prefix) - 13].strip("-.").lower()
    head = "".join(c if c.isalnum() or c == "-" else "-" for c in head)
    return f"{prefix}-{head}-{digest}".replace("--", "-")


def credentials_secret(settings: Settings, namespace: str, name: str, labels: dict[str, str]) -> Obj:
    return moverjobs.credentials_secret(
        settings, name=name, namespace=namespace, labels={**labels, ROLE_LABEL: "mover-credentials"}
    )


def mover_job(
    settings: Settings, *, args: list[str], step: str, labels: dict[str, str], role: str, **job: Any
) -> Obj:
    """A Job running ``ferry-mover <args>`` with its claim mounted writable at /data (it fills it);
    ``shared.runtime.movers.mover_job``'s other arguments: name, namespace, claim, repository_url,
    secret, request_id."""
    return moverjobs.mover_job(
        settings, args=[*args, "--json", "--quiet", "--step", step], labels={**labels, ROLE_LABEL: role},
        read_only=False, backoff_limit=2, **job,
    )  # fmt: skip


def restore_args(snapshot_id: str, volume: str) -> list[str]:
    return ["restore", snapshot_id, MOUNT, "--name", volume]


def verify_args(name: str, group: str, request_id: str) -> list[str]:
    return ["backup", MOUNT, "--name", name, "--group", group, "--parent", "none",
            "--tag", f"ferry.dev/verification={request_id}"]  # fmt: skip


def job_state(job: Obj | None) -> tuple[bool, str]:
    """(finished, "" if it succeeded else why not) from a Job's status conditions."""
    if job is None:
        return True, "the Job disappeared"
    for condition in (job.get("status") or {}).get("conditions") or []:
        if condition.get("status") != "True":
            continue
        if condition.get("type") == "Complete":
            return True, ""
        if condition.get("type") == "Failed":
            reason = condition.get("message") or condition.get("reason") or "failed"
            return True, f"mover Job failed: {reason}"
    return False, ""
