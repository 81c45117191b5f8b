"""The cleanup step: a drill's last step — measure it, remove what it restored, report.

Consumes ``ferry.step.cleanup`` (the last step of a ``drill``). It runs in the restore process: it
needs the same access to the DR cluster as the restore, and removes what the drill wrote with the
rollback's deletion (``rollingback.remove_labelled``: by the drill's ``ferry.dev/request`` label,
workloads first, claims before volumes, namespaces last and only when nothing else is left in
them). A verify that found problems ends PartiallyFailed, and a partial step forwards the slip, so a
drill whose data did not verify is still measured and cleaned up.

What it measures, from the request's state and the repository — nothing needs to have been kept in
memory, so an attempt after a crash measures the same:

* **RTO** = the drill's start (the request's ``created_at``) → the application available: the
  restore's ``available_at`` output when it gives one, else the end of the restore step (which
  ends after its readiness wait);
* **RPO** = the source time of the restored snapshot (its manifests record's time, kept by every
  copy between repositories) → the drill's start: what a failover at that moment would lose;
* the verification: the verify step's verdict and problems (the restore's problems after them).

The ``DrillReport`` is stored as ``<request>/drill.json`` (``ferry-inventories``), sent as a
``Report`` event of document kind ``drill``, summed up in the outputs (``rto_seconds``,
``rpo_seconds``, ``cleanup``) and in the gauges ``ferry_drill_last_*{policy}``. With ``keep`` the
step still measures and reports, and leaves everything in place ("kept").
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging

import msgspec
from prometheus_client import CollectorRegistry, Gauge

from services.restore.isolating import DRILL_OF, isolated
from services.restore.rollingback import NAMESPACES, remove_labelled
from services.restore.sources import open_target_repository
from shared.contracts.drills import (
    FAILED_PREFIX,
    KEPT,
    POLICY_LABEL,
    REMOVED,
    DrillReport,
    encoder,
    report_key,
)
from shared.contracts.errors import Cancelled, FerryError, TemporaryError
from shared.contracts.events import Report
from shared.contracts.migrations import AVAILABLE_AT
from shared.contracts.reports import DocumentKind
from shared.contracts.snapshots import MANIFESTS
from shared.contracts.states import Phase, RequestState, StepStatus
from shared.contracts.steps import StepName, StepResult
from shared.kube import Clusters, RetryPolicy
from shared.kube.comparing import REQUEST_LABEL
from shared.runtime import StepContext, StepService
from shared.runtime.outcomes import Outcome, RetryAfter, Succeeded, WasCancelled
from shared.runtime.settings import Settings

log = logging.getLogger("ferry.cleanup")


class DrillGauges:
    """The last drill of each policy ("" for ad hoc drills): when, its RTO, whether it passed."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.timestamp = Gauge(
            "ferry_drill_last_timestamp_seconds",
            "When the last drill was measured (unix seconds)",
            ["policy"],
            registry=registry,
        ).labels
        self.rto = Gauge(
            "ferry_drill_last_rto_seconds",
            "RTO of the last drill: its start to the application available in the DR cluster",
            ["policy"],
            registry=registry,
        ).labels
        self.success = Gauge(
            "ferry_drill_last_success",
            "1 when the last drill restored, verified and cleaned up without a problem, else 0",
            ["policy"],
            registry=registry,
        ).labels

    def observe(self, report: DrillReport) -> None:
        self.timestamp(policy=report.policy).set(dt.datetime.now(dt.UTC).timestamp())
        if report.rto_seconds is not None:
            self.rto(policy=report.policy).set(report.rto_seconds)
        self.success(policy=report.policy).set(1 if passed(report) else 0)


def passed(report: DrillReport) -> bool:
    return report.verified and not report.problems and not report.cleanup.startswith(FAILED_PREFIX)


def epoch(text: str) -> float | None:
    """Unix seconds of an ISO time as Ferry writes them ("…Z"); None for "" or a bad value."""
    try:
        return dt.datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp() if text else None
    except ValueError:
        return None


def iso(seconds: float) -> str:
    return (
        dt.datetime.fromtimestamp(seconds, dt.UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    )


def available_at(state: RequestState) -> float | None:
    """When the application was available: the restore's ``available_at``, else its step's end."""
    try:
        return float(state.outputs[AVAILABLE_AT])
    except (KeyError, ValueError):
        restore = next((s for s in state.steps if s.step is StepName.RESTORE), None)
        return epoch(restore.finished_at) if restore is not None else None


def snapshot_time(settings: Settings, repository: str, group: str) -> str:
    """The source time of a Ferry snapshot: when its manifests record was written (blocking)."""
    repo = open_target_repository(settings, repository)
    try:
        records = repo.snapshots(name=MANIFESTS, group=group)
    finally:
        repo.close()
    return records[-1][1].time if records else ""


def verdict(state: RequestState) -> tuple[bool, list[str]]:
    """The verify step's verdict and problems; the restore's when verify found none of its own (a
    workload not available in time leaves every object equal to the snapshot's)."""
    steps = {s.step: s for s in state.steps}
    verify, restore = steps.get(StepName.VERIFY), steps.get(StepName.RESTORE)
    problems: list[str] = []
    if verify is None or verify.result is None:
        problems.append(f"not verified: {verify.error if verify and verify.error else 'verify did not run'}")
    else:
        problems += verify.result.warnings
    if not problems and restore is not None and restore.result is not None and restore.result.partial:
        problems = [f"restore: {w}" for w in restore.result.warnings]  # e.g. not available in time
    verified = verify is not None and verify.status is StepStatus.SUCCEEDED
    return verified, problems


def measured(state: RequestState, snapshot: str, snapshot_at: str, namespaces: dict[str, str]) -> DrillReport:
    """The drill's report before its clean-up: times, RTO, RPO and the verification."""
    request = state.request
    start, ready, source = epoch(state.created_at), available_at(state), epoch(snapshot_at)
    verified, problems = verdict(state)
    return DrillReport(
        request_id=state.id,
        policy=request.labels.get(POLICY_LABEL, ""),
        source_cluster=request.source.cluster,
        namespaces=sorted(namespaces),
        target_cluster=request.target.cluster or "",
        drill_namespaces=namespaces,
        snapshot=snapshot,
        started_at=state.created_at,
        available_at=iso(ready) if ready is not None else "",
        snapshot_at=snapshot_at,
        rto_seconds=round(ready - start, 3) if ready is not None and start is not None else None,
        rpo_seconds=round(start - source, 3) if start is not None and source is not None else None,
        verified=verified,
        problems=problems,
        phase=Phase.PARTIALLY_FAILED.value if problems else Phase.COMPLETED.value,
    )


def step_result(report: DrillReport, key: str) -> StepResult:
    """The outputs and counts; a clean-up that failed makes the step (and the drill) partial."""
    outputs = {"drill_report": key, "cleanup": report.cleanup}
    if report.rto_seconds is not None:
        outputs["rto_seconds"] = str(report.rto_seconds)
    if report.rpo_seconds is not None:
        outputs["rpo_seconds"] = str(report.rpo_seconds)
    failed = report.cleanup.startswith(FAILED_PREFIX)
    rto = f"{report.rto_seconds}s" if report.rto_seconds is not None else "unknown"
    rpo = f"{report.rpo_seconds}s" if report.rpo_seconds is not None else "unknown"
    verdict_words = "verified" if report.verified else f"not verified ({len(report.problems)} problem(s))"
    return StepResult(
        outputs=outputs,
        counts={"removed": report.removed},
        warnings=report.warnings[:100],
        partial=failed,
        message=f"drill: RTO {rto}, RPO {rpo}, {verdict_words}, clean-up {report.cleanup}",
    )


class CleanupService(StepService):
    name = "cleanup"
    description = "Ends a drill: measures RTO and RPO, removes what it restored (unless kept), reports"
    step = StepName.CLEANUP

    async def setup(self) -> None:
        self.clusters = Clusters(self.settings.kubeconfig, retry=RetryPolicy(attempts=4))
        self.gauges = DrillGauges(self.metrics.registry)
        await super().setup()

    async def teardown(self) -> None:
        await self.clusters.close()
        await super().teardown()

    async def handle(self, ctx: StepContext) -> Outcome:
        request = ctx.request
        if request.dry_run:
            return Succeeded(StepResult(message="dry run: nothing was restored, nothing to clean up"))
        state, _ = await self.store.get(ctx.request_id)
        target = await self.clusters.get(request.target.cluster or request.source.cluster)
        selector = f"{REQUEST_LABEL}={ctx.request_id[:63]}"
        mapped = dict(isolated(ctx.request_id, request).target.namespace_map)
        for ns in await target.list(NAMESPACES, label_selector=selector):
            meta = ns.get("metadata") or {}
            if source := (meta.get("annotations") or {}).get(DRILL_OF):
                mapped[source] = meta["name"]
        report = measured(state, ctx.outputs.get("snapshot", ""), await self._snapshot_at(ctx), mapped)
        key = report_key(ctx.request_id)
        if request.keep:
            report = msgspec.structs.replace(report, cleanup=KEPT)
        else:
            await self.topology.inventories.put(key, encoder.encode(report))  # "pending" until done
            try:
                removed, warnings = await remove_labelled(ctx, target, selector, [None])
            except Cancelled as e:
                return WasCancelled(str(e))
            except TemporaryError as e:
                if ctx.attempt < self.settings.max_attempts:
                    return RetryAfter(f"clean-up not finished: {e}", error=e)
                report = msgspec.structs.replace(report, cleanup=f"{FAILED_PREFIX}{e}")
            except FerryError as e:
                report = msgspec.structs.replace(report, cleanup=f"{FAILED_PREFIX}{e}")
            else:
                report = msgspec.structs.replace(
                    report, cleanup=REMOVED, removed=len(removed), warnings=warnings
                )
        return Succeeded(await self._report(ctx, report, key))

    async def _snapshot_at(self, ctx: StepContext) -> str:
        """The restored snapshot's source time, or "" (with a warning) when the repository cannot say."""
        request, group = ctx.request, ctx.outputs.get("snapshot", "")
        name = ctx.outputs.get("target_repository") or request.target.repository or request.source.repository
        try:
            return await asyncio.to_thread(snapshot_time, self.settings, name, group) if group else ""
        except FerryError as e:
            await ctx.warn(f"RPO unknown: the snapshot's time could not be read from repository {name}: {e}")
            return ""

    async def _report(self, ctx: StepContext, report: DrillReport, key: str) -> StepResult:
        """Store the report, send it as an event, set the gauges; the step's result."""
        if report.cleanup.startswith(FAILED_PREFIX):
            report = msgspec.structs.replace(report, phase=Phase.PARTIALLY_FAILED.value)
        await self.topology.inventories.put(key, encoder.encode(report))
        await ctx.emit(
            Report(
                request_id=ctx.request_id,
                step=StepName.CLEANUP,
                title="drill",
                document=DocumentKind.DRILL,
                body=msgspec.to_builtins(report),
            )
        )
        self.gauges.observe(report)
        log.info(
            "drill %s: RTO %s, RPO %s, cleanup %s",
            ctx.request_id,
            report.rto_seconds,
            report.rpo_seconds,
            report.cleanup,
        )
        return step_result(report, key)
