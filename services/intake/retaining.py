"""A policy's retention: after each completed run, ``source_retention`` applied to the source
repository and ``target_retention`` to the DR repository, each to the policy's series only.

The series is the ``app`` of the run's snapshot as the catalog lists it (``ferry snapshots``), read
back from the catalog rather than recomputed, so it is the one the snapshot step wrote. Retention
never removes a series' newest snapshot (``keep_last`` of 1 or more keeps it, ``keep_within`` counts
back from it), so the replica a failover or a drill restores stays. Only a Completed run triggers
it: a run that stopped part-way may have left a partial snapshot that must not push a whole one out.
When both sides name one repository, both retentions apply there: the stricter one decides.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from shared.bus.client import BusClient, RequestRejected
from shared.contracts.errors import TemporaryError, Unavailable
from shared.contracts.policies import Policy, Retention
from shared.contracts.snapshots import RetentionQuery, RetentionResult
from shared.contracts.states import RequestState


@dataclass(frozen=True)
class Side:
    name: str  # source | target
    repository: str  # "" is the default repository
    retention: Retention


def sides(policy: Policy) -> list[Side]:
    """The sides whose retention says what to keep (an empty one keeps everything)."""
    source_repo = policy.source.repository
    candidates = [
        Side("source", source_repo, policy.source_retention),
        Side("target", policy.target.repository or source_repo, policy.target_retention),
    ]
    return [s for s in candidates if s.retention.keep_last > 0 or s.retention.keep_within]


@dataclass(frozen=True)
class Applied:
    summary: str  # one line for the policy's status
    body: dict[str, Any]  # the report event's body
    failed: bool = False  # refused for good (a repository that does not exist): not retried


async def apply(bus: BusClient, policy: Policy, run: RequestState) -> Applied:
    """Apply the policy's retention after ``run``. Raises ``TemporaryError`` when the catalog
    cannot answer now (the caller tries again later)."""
    wanted = sides(policy)
    snapshot = run.outputs.get("snapshot", "")
    if not snapshot:
        return Applied(f"after {run.id}: nothing to apply (the run made no snapshot)", {"run": run.id})
    try:
        app = await _series(bus, policy, snapshot)
        results: list[tuple[Side, RetentionResult]] = []
        for side in wanted:
            query = RetentionQuery(
                app=app,
                keep_last=side.retention.keep_last or None,
                keep_within=side.retention.keep_within,
                repository=side.repository,
            )
            results.append((side, await bus.snapshots_retain(query)))
    except RequestRejected as e:
        if e.rejected.code == Unavailable.code:
            raise TemporaryError(str(e)) from e
        return Applied(f"after {run.id}: not applied: {e}", {"run": run.id, "error": str(e)}, failed=True)
    parts = []
    body: dict[str, Any] = {"run": run.id, "snapshot": snapshot, "series": app}
    for side, result in results:
        freed = f", {result.bytes_freed} bytes freed" if result.bytes_freed else ""
        where = side.repository or "default"
        parts.append(f"{side.name} ({where}): kept {len(result.kept)}, removed {len(result.removed)}{freed}")
        body[side.name] = {
            "repository": where,
            "kept": result.kept,
            "removed": result.removed,
            "bytes_freed": result.bytes_freed,
        }
    return Applied(f"after {run.id}: " + "; ".join(parts), body)


async def _series(bus: BusClient, policy: Policy, snapshot: str) -> str:
    """The run's snapshot's series, from the source repository's catalog (else the DR one's: a run
    whose source repository no longer holds it)."""
    repositories = [policy.source.repository, policy.target.repository or policy.source.repository]
    last: RequestRejected | None = None
    for repository in dict.fromkeys(repositories):
        try:
            return (await bus.snapshot_describe(snapshot, repository)).summary.app
        except RequestRejected as e:
            if e.rejected.code != "not-found":
                raise
            last = e
    assert last is not None
    raise last
