"""The verify step: the verdict is what the target holds now, proven against the snapshot.

Consumes ``ferry.step.verify``. Reads the restore's ``Expectation`` (output ``expectation``: every
object as rendered, the objects left out on purpose, every claim's result), then compares the
target cluster with it — objects from paged lists (``objects``), volumes by read-only mover Jobs
(``volumes``) — whatever the restore did (created, updated, kept, skipped). It imports nothing of
the restore service and prepares nothing again.

The ``Verification`` document is stored with the request (``<request>/verification.json``) and sent
as a ``Report`` event of document kind ``verification``. Any problem makes the step, and so the
request, PartiallyFailed (the CLI exits 3), with each difference named.
"""

from __future__ import annotations

import msgspec

from services.verify.objects import check_objects
from services.verify.volumes import check_volumes
from shared.contracts.events import Report
from shared.contracts.reports import (
    DocumentKind,
    Expectation,
    Verification,
    expectation_decoder,
    report_encoder,
)
from shared.contracts.steps import StepName, StepResult
from shared.kube.comparing import REQUEST_LABEL, SNAPSHOT_LABEL
from shared.runtime import StepContext, StepService
from shared.runtime.clusters import ClusterFactory, KubeClusters
from shared.runtime.moving import Movers
from shared.runtime.outcomes import Failed, Outcome, Succeeded
from shared.runtime.repositories import for_repository, repository_url
from shared.runtime.settings import Settings


def problem_lines(report: Verification) -> list[str]:
    lines = [
        f"{p.target}: {p.reason}" + (f" ({'; '.join(p.diff[:3])})" if p.diff else "") for p in report.objects
    ]
    lines += [f"volume {v.claim}: {v.reason}" for v in report.volumes if not v.ok]
    lines += [
        f"volume {v.claim}: {path}: {why}"
        for v in report.volumes
        for path, why in sorted(v.damaged.items())[:20]
    ]
    return lines


def step_result(report: Verification, output: str) -> StepResult:
    """The step's result: the counts, each problem as a warning; any problem makes it partial."""
    lines = problem_lines(report)
    volumes = report.volumes
    counts = {
        "objects_expected": report.objects_expected,
        "objects_accounted": report.objects_present,
        "objects_failed": len(report.objects),
        "objects_differing": report.objects_differing,
        "objects_missing": report.objects_missing,
        "volumes": len(volumes),
        "volumes_failed": sum(1 for v in volumes if not v.ok),
        "files_verified": sum(v.files for v in volumes),
    }
    message = verdict_line(report)
    if lines:
        message += f": {'; '.join(lines[:5])}"
    return StepResult(
        outputs={"verification": output},
        counts=counts,
        warnings=lines[:100],
        partial=not report.ok,
        message=message,
        bytes_moved=sum(v.bytes for v in volumes),
    )


def verdict_line(report: Verification) -> str:
    if report.ok:
        return "verified: every object accounted for, every volume equal to the snapshot"
    volumes = sum(1 for v in report.volumes if not v.ok)
    parts = [
        f"{report.objects_differing} object(s) differ",
        f"{report.objects_missing} missing",
        f"{volumes} volume(s) differ or failed",
    ]
    return "verification found problems: " + ", ".join(parts)


class VerifyService(StepService):
    name = "verify"
    description = "Proves a restore: the target's objects and volumes equal to the snapshot"
    step = StepName.VERIFY

    def __init__(
        self, settings: Settings, *, clusters: ClusterFactory | None = None, instance: str = ""
    ) -> None:
        super().__init__(settings, instance=instance)
        self.clusters = clusters or KubeClusters()

    async def teardown(self) -> None:
        close = getattr(self.clusters, "close", None)
        if close is not None:
            await close()

    async def handle(self, ctx: StepContext) -> Outcome:
        if ctx.request.dry_run:
            return Succeeded(StepResult(message="dry run: nothing was restored, nothing to verify"))
        name = ctx.outputs.get("expectation")
        if not name:
            return Failed(
                "nothing to verify: the verify step runs after a restore step, which names "
                "what the target must hold (output `expectation`)"
            )
        found = await self.topology.inventories.get(name)
        report = await self._compare(ctx, expectation_decoder.decode(found.data or b""))
        output = f"{ctx.request_id}/verification.json"
        await self.topology.inventories.put(output, report_encoder.encode(report))
        await ctx.emit(
            Report(
                request_id=ctx.request_id,
                step=StepName.VERIFY,
                title="verification",
                document=DocumentKind.VERIFICATION,
                body=msgspec.to_builtins(report),
            )
        )
        return Succeeded(step_result(report, output))

    async def _compare(self, ctx: StepContext, expected: Expectation) -> Verification:
        """The target's objects, then its volumes (by read-only mover Jobs), against the expectation."""
        cluster = await self.clusters(self.settings, expected.cluster)
        await ctx.progress(message=f"comparing {len(expected.objects)} object(s) with the target")
        objects = await check_objects(cluster, expected.objects)
        await ctx.checkpoint()
        labels = {REQUEST_LABEL: ctx.request_id[:63], SNAPSHOT_LABEL: expected.snapshot[:63]}
        movers = Movers(
            cluster,
            for_repository(self.settings, expected.repository),
            request_id=ctx.request_id,
            step=StepName.VERIFY.value,
            repository_url=repository_url(self.settings, expected.repository),
            labels=labels,
            timeout=self.settings.mover_timeout,
            checkpoint=ctx.checkpoint,
        )
        try:
            volumes = await check_volumes(movers, expected.volumes, ctx.request.volumes.parallel)
        finally:
            await movers.close()
        return Verification(
            request_id=ctx.request_id,
            snapshot=expected.snapshot,
            objects_expected=len(expected.objects) + len(expected.accounted),
            objects_present=objects.present + len(expected.accounted),
            objects=objects.problems,
            volumes=volumes,
            objects_differing=objects.differing,
            objects_missing=objects.missing,
        )
