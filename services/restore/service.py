"""The restore step: land a Ferry snapshot in the target cluster, volumes first, every object reported.

Consumes ``ferry.step.restore``. Reads the snapshot from the target repository (the one the transfer
step filled), prepares and orders the objects (``restoring``), writes them under the request's
conflict policy through the target cluster's client, fills every new claim with a mover Job before a
workload mounts it, waits for the application to come up, and stores the per-object report with the
request (``ferry-inventories`` object store, ``<request>/restore-report.json``; a dry run also stores
``<request>/rendered.json``, the exact documents it would write). Any failed object, volume or
readiness makes the step PartiallyFailed, with the reasons in the result and in a ``Report`` event.

The parts of a staged migration (``migrating``): a stage restores only the claims, with their data,
while the source keeps serving; a cutover restores everything, fails outright when the target is
not fully up (so the automatic rollback brings the source back rather than leaving the application
down in both clusters), and reports its downtime. Both check the claims' storage classes before
writing anything. Every object a migrate restores carries its plan's ``ferry.dev/migration`` label.

The cluster client comes from a factory (``clusters.KubeClusters`` by default), so tests and other
deployments can plug another one in.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from collections.abc import Mapping
from typing import Any

import msgspec

from services.restore import manifests, modifiers
from services.restore.expecting import expectation
from services.restore.hooking import run_exec_hooks
from services.restore.isolating import isolate, isolated
from services.restore.manifests import VolumeRecord
from services.restore.migrating import (
    MigrationMetrics,
    downtime_outputs,
    missing_storage_classes,
    mode_of,
    now,
    quiesced_at,
)
from services.restore.restoring import Plan, Restore, prepare, rendered
from services.restore.selecting import Selection, select
from services.restore.sources import (
    inventory_edges,
    open_target_repository,
    plan_of,
    resolve_group,
    restore_labels,
    transforms_for,
)
from shared.contracts.errors import Cancelled
from shared.contracts.events import Quiesced, Report
from shared.contracts.migrations import AVAILABLE_AT, DOWNTIME
from shared.contracts.reports import (
    DocumentKind,
    ObjectResult,
    Outcome,
    RestoreReport,
    VolumeResult,
    report_encoder,
)
from shared.contracts.steps import StepName, StepResult
from shared.kube.objects import Manifest
from shared.runtime import StepContext, StepService
from shared.runtime.clusters import Cluster, ClusterFactory, KubeCluster, KubeClusters
from shared.runtime.moving import MOUNT, Movers
from shared.runtime.outcomes import Failed, Succeeded, WasCancelled
from shared.runtime.outcomes import Outcome as StepOutcome  # reports' Outcome is an object's
from shared.runtime.repositories import for_repository, repository_url
from shared.runtime.settings import Settings, load
from shared.runtime.stepping import throttled

log = logging.getLogger("ferry.restore")
CANCEL_CHECK = 0.5  # seconds between two cancellation checks while objects are written
REPORT_LIMIT = 200  # objects listed in a Report event body; the stored report has all of them


class RestoreOptions(msgspec.Struct, frozen=True, kw_only=True):
    """Tuning read from ``FERRY_RESTORE_*`` env vars (until they join the shared Settings)."""

    timeout: float = 600.0  # waiting for workloads, claims and Jobs
    mover_timeout: float = 3600.0  # one volume's mover Job


def restore_options(env: Mapping[str, str] | None = None) -> RestoreOptions:
    """``FERRY_RESTORE_TIMEOUT`` and ``FERRY_RESTORE_MOVER_TIMEOUT``, read like every setting."""
    return load(RestoreOptions, env, "FERRY_RESTORE_", what="restore setting")


@dataclasses.dataclass
class Prepared:
    """What the restore of one request writes, decided before the target cluster is touched."""

    cluster: str  # the target cluster's name
    repository: str  # the target repository's name
    group: str  # the snapshot id
    selection: Selection
    volumes: dict[tuple[str, str], VolumeRecord]
    plan: Plan
    labels: dict[str, str]


async def fill(movers: Movers, claim: Manifest, record: VolumeRecord, delta: bool) -> VolumeResult:
    """Fill a fresh claim from its volume snapshot, or refresh an existing one (``--delta``)."""
    label = f"{claim.namespace}/{claim.name}"
    args = ["restore", record.snapshot_id, MOUNT, "--name", label] + (["--delta"] if delta else [])
    args += ["--path", record.path] if record.path else []
    run = await movers.run(claim.namespace, claim.name, args, "refresh" if delta else "restore")
    said = run.summary
    files, size = int(said.get("files", 0)), int(said.get("bytes", 0))
    return VolumeResult(
        claim=label,
        snapshot=record.snapshot_id,
        ok=not run.why,
        reason=run.why,
        files=files,
        bytes=size,
        files_written=int(said.get("files_written", files)),
        bytes_written=int(said.get("bytes_written", size)),
        files_skipped=int(said.get("files_skipped", 0)),
        bytes_skipped=int(said.get("bytes_skipped", 0)),
        removed=int(said.get("removed", 0)),
        path=record.path,
    )


def summary(report: RestoreReport) -> dict[str, Any]:
    problems = [r for r in report.objects if r.outcome in (Outcome.FAILED,)]
    notable = problems + [r for r in report.objects if r.outcome is Outcome.SKIPPED]
    return {
        "snapshot": report.snapshot,
        "dry_run": report.dry_run,
        "counts": report.counts(),
        "objects": [msgspec.to_builtins(r) for r in (report.objects if report.dry_run else notable)][
            :REPORT_LIMIT
        ],
        "volumes": [msgspec.to_builtins(v) for v in report.volumes],
        "not_ready": {k: v for k, v in report.waited.items() if v != "ready"},
    }


def problems_of(report: RestoreReport) -> list[str]:
    found = [f"{r.target or r.key}: {r.reason}" for r in report.objects if r.outcome is Outcome.FAILED]
    found += [f"volume {v.claim}: {v.reason}" for v in report.volumes if not v.ok]
    found += [f"{k}: {v}" for k, v in report.waited.items() if v != "ready"]
    return found


Restored = tuple[RestoreReport, list[str]]  # the report, and the post-restore hooks' problems


def with_hook_problems(result: StepResult, problems: list[str]) -> StepResult:
    """A failed ``on-error: Fail`` restore hook makes the step partial, like a failed object."""
    if not problems:
        return result
    message = f"{len(problems)} hook problem(s): {'; '.join(problems[:3])}; " + result.message
    return msgspec.structs.replace(
        result, warnings=[*result.warnings, *problems][:100], partial=True, message=message
    )


def step_result(report: RestoreReport, selection: Selection, outputs: dict[str, str]) -> StepResult:
    """The counts; every problem as a warning and in the message, which makes the step partial."""
    problems = problems_of(report)
    counts = report.counts()
    if report.volumes:  # a delta restore's work: what it left as it was, and what it removed
        counts["files_skipped"] = sum(v.files_skipped for v in report.volumes)
        counts["bytes_skipped"] = sum(v.bytes_skipped for v in report.volumes)
        counts["files_removed"] = sum(v.removed for v in report.volumes)
    if selection.left_out:
        counts["not_selected"] = selection.left_out
    message = ", ".join(f"{v} {k}" for k, v in sorted(counts.items()) if v)
    if problems:
        message = f"{len(problems)} problem(s): {'; '.join(problems[:5])}" + (
            "; ..." if len(problems) > 5 else ""
        )
    return StepResult(
        outputs=outputs, counts=counts, warnings=problems[:100], partial=bool(problems), message=message
    )


async def _close(cluster: object) -> None:
    """Close a cluster client the factory handed out, when it has a ``close`` (a test double may not)."""
    close = getattr(cluster, "close", None)
    if close is not None:
        await close()


class RestoreService(StepService):
    name = "restore"
    description = "Restores a Ferry snapshot into the target cluster, volumes before workloads"
    step = StepName.RESTORE

    def __init__(
        self,
        settings: Settings,
        *,
        clusters: ClusterFactory | None = None,
        options: RestoreOptions | None = None,
        instance: str = "",
    ) -> None:
        super().__init__(settings, instance=instance)
        self.clusters = clusters or KubeClusters()
        self.options = options or restore_options()
        self.migration = MigrationMetrics(self.metrics.registry)

    async def teardown(self) -> None:
        close = getattr(self.clusters, "close", None)
        if close is not None:
            await close()

    async def handle(self, ctx: StepContext) -> StepOutcome:
        request = ctx.request
        if not request.target.cluster:
            return Failed("the request names no target cluster")
        try:
            rules = modifiers.parse(request.target.resource_modifiers)
        except modifiers.ModifierError as e:
            return Failed(f"target.resource_modifiers: {e}", error=e)
        prepared = await self._prepare(ctx, request.target.cluster, rules)
        for warning in prepared.plan.warnings:
            await ctx.warn(warning)
        ran = await self._restore(ctx, prepared)
        if isinstance(ran, WasCancelled | Failed):
            return ran
        ended = now()  # every workload waited for is available (or the wait gave up)
        restored, hook_problems = ran
        report = msgspec.structs.replace(restored, request_id=ctx.request_id, snapshot=prepared.group)
        outputs = await self._store(ctx, prepared, report)
        await ctx.emit(
            Report(
                request_id=ctx.request_id,
                step=StepName.RESTORE,
                title="dry run" if request.dry_run else "restore",
                body=summary(report),
                document=DocumentKind.DRY_RUN if request.dry_run else DocumentKind.RESTORE,
            )
        )
        result = with_hook_problems(step_result(report, prepared.selection, outputs), hook_problems)
        if request.dry_run:
            return Succeeded(result)
        written = sum(v.bytes_written for v in report.volumes)
        self.migration.bytes_written(mode=mode_of(request)).inc(written)
        if request.cutover:
            return await self._cut_over(ctx, result, ended)
        # When the application was up again: a drill's RTO ends here (its cleanup step reads it).
        return Succeeded(
            msgspec.structs.replace(result, outputs={**result.outputs, AVAILABLE_AT: f"{round(ended, 3)}"})
        )

    async def _cut_over(self, ctx: StepContext, result: StepResult, available_at: float) -> StepOutcome:
        """A cutover's end: a target that is not fully up fails the step (the source is down, so the
        automatic rollback must bring it back); else the downtime is output, emitted and measured."""
        if result.partial:
            return Failed(
                f"cutover: the target is not fully up ({result.message}); "
                f"the restore report is {result.outputs.get('restore_report', '')}"
            )
        available_at = round(available_at, 3)  # the event says what the output says
        found = downtime_outputs(ctx.outputs, available_at)
        since = quiesced_at(ctx.outputs)
        if since is not None:
            self.migration.downtime.set(float(found[DOWNTIME]))
            await ctx.emit(
                Quiesced(
                    request_id=ctx.request_id, step=StepName.RESTORE, since=since, available_at=available_at
                )
            )
        message = result.message + (f"; downtime {found[DOWNTIME]}s" if DOWNTIME in found else "")
        return Succeeded(
            msgspec.structs.replace(result, outputs={**result.outputs, **found}, message=message)
        )

    async def _prepare(self, ctx: StepContext, cluster: str, rules: list[modifiers.Rule]) -> Prepared:
        """Read the snapshot from the target repository; select, transform and order its objects."""
        request = ctx.request
        repo_name = (
            ctx.outputs.get("target_repository") or request.target.repository or request.source.repository
        )
        repo = await asyncio.to_thread(open_target_repository, self.settings, repo_name)
        group = await asyncio.to_thread(
            resolve_group, repo, ctx.outputs.get("snapshot") or request.source.snapshot
        )
        captured = await asyncio.to_thread(manifests.load, repo, group)
        request = isolated(ctx.request_id, request, captured.items)  # a drill: its own namespaces
        ctx.command = msgspec.structs.replace(ctx.command, request=request)  # _write's `reverse` needs it
        selection = select(captured.items, request)
        volumes = {
            key: dataclasses.replace(record, path=selection.paths.get(key, ""))
            for key, record in captured.volumes.items()
        }
        labels = restore_labels(ctx.request_id, group, plan_of(request))
        edges = captured.edges + await inventory_edges(ctx.outputs, self.topology.inventories)
        plan = prepare(
            selection.items,
            transforms_for(request, labels, captured.items),
            rules,
            keep_owned=request.keep_owned,
            completed_jobs=request.restore.completed_jobs,
            extra_edges=edges,
        )
        return Prepared(cluster, repo_name, group, selection, volumes, plan, labels)

    async def _restore(self, ctx: StepContext, prepared: Prepared) -> Restored | WasCancelled | Failed:
        """Check a stage's or cutover's storage classes, then run the restore; the client is closed after."""
        request = ctx.request
        cluster = await self.clusters(self.settings, prepared.cluster)
        try:
            for warning in await isolate(prepared.plan, request, prepared.labels, cluster):
                await ctx.warn(warning)
            if (request.stage or request.cutover) and not request.dry_run:
                if missing := await missing_storage_classes(cluster, prepared.plan.items):
                    what = "cutover" if request.cutover else "stage"
                    return Failed(
                        f"{what}: claims could never bind, nothing was written: {'; '.join(missing)}"
                    )
            return await self._write(ctx, prepared, cluster)
        finally:
            await _close(cluster)

    async def _write(self, ctx: StepContext, prepared: Prepared, cluster: Cluster) -> Restored | WasCancelled:
        """Write the plan into the target cluster, volumes filled by mover Jobs before their workloads;
        then the post-restore exec hooks, once the readiness wait is over."""
        request, plan = ctx.request, prepared.plan
        movers = Movers(
            cluster,
            for_repository(self.settings, prepared.repository),
            request_id=ctx.request_id,
            step=StepName.RESTORE.value,
            repository_url=repository_url(self.settings, prepared.repository),
            labels=prepared.labels,
            timeout=self.options.mover_timeout,
            checkpoint=ctx.checkpoint,
        )
        total, done = len(plan.items) + len(plan.results), len(plan.results)
        checkpoint = throttled(ctx.checkpoint, CANCEL_CHECK)

        async def on_result(result: ObjectResult) -> None:
            nonlocal done
            done += 1
            await checkpoint()  # a cancelled request stops at the next object
            await ctx.progress(
                items_done=done, items_total=total, message=f"{result.outcome.value} {result.target}"
            )
            if result.failed:
                await ctx.warn(result.reason, obj=result.target)

        reverse = {v: k for k, v in request.target.namespace_map.items()}
        engine = Restore(
            cluster,
            plan,
            policy=request.conflict_policy,
            dry_run=request.dry_run,
            volumes=prepared.volumes,
            fill=lambda claim, record, delta: fill(movers, claim, record, delta),
            source_namespace=lambda ns: reverse.get(ns, ns),
            timeout=self.options.timeout,
            on_result=on_result,
            existing=request.volumes.existing,
        )
        try:
            report = await engine.run()
            return report, await self._exec_hooks(ctx, cluster, plan)
        except Cancelled as e:
            await self._cancelled(ctx, engine, prepared.group)
            return WasCancelled(str(e))
        finally:
            await movers.close()

    async def _exec_hooks(self, ctx: StepContext, cluster: Cluster, plan: Plan) -> list[str]:
        """Velero's ``post.hook.restore`` execs in the restored pods (not in a dry run); the problems."""
        if ctx.request.dry_run or not isinstance(cluster, KubeCluster):
            return []
        _, problems = await run_exec_hooks(ctx, cluster.cluster, plan.items, self.options.timeout)
        return problems

    async def _store(self, ctx: StepContext, prepared: Prepared, report: RestoreReport) -> dict[str, str]:
        """Store the report with the request, and the rendered documents (a dry run) or what verify
        expects to find; the step's outputs name them."""
        request, rid = ctx.request, ctx.request_id
        put = self.topology.inventories.put
        outputs = {"restore_report": f"{rid}/restore-report.json", "snapshot": prepared.group}
        await put(outputs["restore_report"], report_encoder.encode(report))
        if request.dry_run:
            outputs["rendered"] = f"{rid}/rendered.json"
            await put(outputs["rendered"], report_encoder.encode(rendered(prepared.plan)))
        else:
            expected = expectation(
                report, prepared.plan, cluster=prepared.cluster, repository=prepared.repository
            )
            outputs["expectation"] = f"{rid}/expectation.json"
            await put(outputs["expectation"], report_encoder.encode(expected))
        return outputs

    async def _cancelled(self, ctx: StepContext, engine: Restore, group: str) -> None:
        """The request was cancelled mid-restore: store and report exactly what had been written."""
        written = [
            r for r in engine.results if r.outcome in (Outcome.CREATED, Outcome.UPDATED, Outcome.RECREATED)
        ]
        report = RestoreReport(request_id=ctx.request_id, snapshot=group, objects=engine.results, waited={})
        await self.topology.inventories.put(
            f"{ctx.request_id}/restore-report.json", report_encoder.encode(report)
        )
        names = ", ".join(r.target for r in written[:20]) + (" ..." if len(written) > 20 else "")
        body = {**summary(report), "written": [r.target for r in written]}
        await ctx.emit(
            Report(
                request_id=ctx.request_id,
                step=StepName.RESTORE,
                title="restore (cancelled)",
                document=DocumentKind.RESTORE,
                body=body,
            )
        )
        await ctx.warn(
            f"cancelled: {len(written)} object(s) had been written ({names or 'none'}); "
            "the mover Jobs and their credentials were removed"
        )
