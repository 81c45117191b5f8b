"""The verify step: every object of the snapshot accounted for, every restored volume equal to it.

Consumes ``ferry.step.verify`` (same process as the restore step by default, see ``__main__``).

- **Objects.** The snapshot's objects are prepared again exactly as the restore did (same cleaning,
  modifiers, mappings — deterministic), and each one is looked up in the target cluster. Present and
  equal (every field the snapshot sets), or deliberately not restored (owned, generated, skipped
  by policy — with the reason), counts as accounted for. Missing or different is a problem, with the
  restore step's reason when it had one.
- **Volumes.** For every claim the restore filled, a mover Job backs the volume up again into the
  target repository with ``--parent none`` and the two trees are compared there
  (``checking.compare_trees``): presence, type, size, content hashes, symlink targets, modes, file by
  file. The verification records are forgotten afterwards.

The ``Verification`` document is stored with the request (``<request>/verification.json``), sent as
a ``Report`` event, and any problem makes the step — and the request — PartiallyFailed.
"""

from __future__ import annotations

import asyncio

import msgspec

from services.restore import jobs, manifests, modifiers
from services.restore.checking import compare_trees, forget_verification
from services.restore.clusters import KubeClusters
from services.restore.conflicts import differences, result_of, without_ferry_labels
from services.restore.objects import Manifest
from services.restore.ordering import references
from services.restore.restoring import prepare
from services.restore.service import ClusterFactory, RestoreOptions
from services.restore.sources import inventory_edges, open_target_repository, restore_labels, transforms_for
from services.restore.volumes import Movers
from shared.contracts.errors import PermanentError
from shared.contracts.events import Report
from shared.contracts.reports import (
    ObjectResult,
    Outcome,
    Verification,
    VolumeResult,
    report_encoder,
    restore_report_decoder,
)
from shared.contracts.steps import StepName, StepResult
from shared.repository import Repository
from shared.runtime import StepContext, StepService
from shared.runtime.repositories import for_repository, repository_url
from shared.runtime.settings import Settings


def _compare_volume(repo: Repository, volume: VolumeResult, group: str, request_id: str) -> VolumeResult:
    repo.reload_index()
    found = [
        sid
        for sid, record in repo.snapshots(group=group)
        if record.name == volume.claim and record.tags.get("ferry.dev/verification") == request_id
    ]
    if not found:
        return msgspec.structs.replace(volume, ok=False, reason="the verification backup left no snapshot")
    files, size, damaged = compare_trees(repo, volume.snapshot, found[-1])
    reason = f"{len(damaged)} path(s) differ from the snapshot" if damaged else ""
    return VolumeResult(claim=volume.claim, snapshot=volume.snapshot, ok=not damaged, files=files, bytes=size,
                        reason=reason, damaged=damaged)  # fmt: skip


def autoscaled_targets(items: list[Manifest]) -> set[str]:
    """Keys of the workloads a HorizontalPodAutoscaler of the snapshot scales (their replicas move)."""
    found = set()
    for item in items:
        if item.kind == "HorizontalPodAutoscaler":
            found |= {ref for ref in references(item) if not ref.startswith("namespaces/")}
    return found


class VerifyService(StepService):
    name = "verify"
    description = "Proves a restore: objects accounted for, volumes equal to the snapshot"
    step = StepName.VERIFY

    def __init__(
        self, settings: Settings, *, clusters: ClusterFactory | None = None, options: RestoreOptions | None = None,
        **kwargs: object,
    ) -> None:  # fmt: skip
        super().__init__(settings, **kwargs)
        self.clusters = clusters or KubeClusters()
        self.options = options or RestoreOptions.from_env()

    async def teardown(self) -> None:
        close = getattr(self.clusters, "close", None)
        if close is not None:
            await close()

    async def handle(self, ctx: StepContext) -> StepResult:
        request = ctx.request
        name = ctx.outputs.get("restore_report")
        if not name:
            raise PermanentError("no restore report to verify: the verify step runs after the restore step")
        restored = restore_report_decoder.decode((await self.topology.inventories.get(name)).data or b"")
        if restored.dry_run:
            return StepResult(message="dry run: nothing was restored, nothing to verify")
        group = restored.snapshot
        repo_name = (
            ctx.outputs.get("target_repository") or request.target.repository or request.source.repository
        )
        repo = await asyncio.to_thread(open_target_repository, self.settings, repo_name)
        captured = await asyncio.to_thread(manifests.load, repo, group)
        labels = restore_labels(ctx.request_id, group)
        edges = captured.edges + await inventory_edges(ctx.outputs, self.topology.inventories)
        plan = prepare(captured.items, transforms_for(request, labels), modifiers.parse(request.target.resource_modifiers),
                       keep_owned=request.keep_owned, extra_edges=edges)  # fmt: skip
        by_target = {r.target: r for r in restored.objects}
        cluster = await self.clusters(self.settings, request.target.cluster or "")
        problems: list[ObjectResult] = [r for r in plan.results if r.failed]
        present = sum(1 for r in plan.results if not r.failed)  # skipped on purpose, with the reason
        autoscaled = autoscaled_targets(plan.items)
        try:
            for item in plan.items:
                earlier = by_target.get(item.key)
                live = await cluster.get(item)
                if live is None:
                    why = (
                        f"missing in the target ({earlier.reason})"
                        if earlier and earlier.reason
                        else "missing in the target"
                    )
                    problems.append(result_of(item, Outcome.FAILED, reason=why))
                    continue
                present += 1
                diff = differences(without_ferry_labels(item.obj), live)
                if item.key in autoscaled:  # an HPA owns the replica count from now on
                    diff = [d for d in diff if not d.startswith("spec.replicas:")]
                if diff and not (earlier and earlier.outcome is Outcome.SKIPPED):
                    problems.append(result_of(item, Outcome.FAILED, "differs from the snapshot", diff[:20]))
            movers = Movers(cluster, for_repository(self.settings, repo_name), request_id=ctx.request_id, step=StepName.VERIFY.value,
                            repository_url=repository_url(self.settings, repo_name), labels=labels,
                            timeout=self.options.mover_timeout)  # fmt: skip
            checked: list[VolumeResult] = []
            verify_group = f"verify-{ctx.request_id}"
            try:
                for volume in restored.volumes:
                    if (
                        not volume.ok or volume.reason
                    ):  # failed, or existing data kept: nothing of ours to check
                        checked.append(volume)
                        continue
                    await ctx.checkpoint()
                    namespace, _, claim = volume.claim.partition("/")
                    await ctx.progress(message=f"reading back volume {volume.claim}", volume=volume.claim)
                    why, _job = await movers.run(namespace, claim, jobs.verify_args(volume.claim, verify_group,
                                                 ctx.request_id), "verify")  # fmt: skip
                    if why:
                        checked.append(
                            msgspec.structs.replace(volume, ok=False, reason=f"could not read it back: {why}")
                        )
                        continue
                    checked.append(
                        await asyncio.to_thread(_compare_volume, repo, volume, verify_group, ctx.request_id)
                    )
            finally:
                await movers.close()
                await asyncio.to_thread(forget_verification, repo, verify_group)
        finally:
            close = getattr(cluster, "close", None)
            if close is not None:
                await close()
        accounted = present
        report = Verification(request_id=ctx.request_id, snapshot=group, objects_expected=len(plan.items) + len(plan.results),
                              objects_present=accounted, objects=problems, volumes=checked)  # fmt: skip
        output = f"{ctx.request_id}/verification.json"
        await self.topology.inventories.put(output, report_encoder.encode(report))
        await ctx.emit(Report(request_id=ctx.request_id, step=StepName.VERIFY, title="verification",
                              body=msgspec.to_builtins(report)))  # fmt: skip
        lines = [
            f"{p.target}: {p.reason}" + (f" ({'; '.join(p.diff[:3])})" if p.diff else "") for p in problems
        ]
        lines += [f"volume {v.claim}: {v.reason}" for v in checked if not v.ok]
        lines += [
            f"volume {v.claim}: {path}: {why}"
            for v in checked
            for path, why in sorted(v.damaged.items())[:20]
        ]
        counts = {"objects_expected": report.objects_expected, "objects_accounted": accounted,
                  "objects_failed": len(problems), "volumes": len(checked),
                  "volumes_failed": sum(1 for v in checked if not v.ok),
                  "files_verified": sum(v.files for v in checked)}  # fmt: skip
        message = "verified: every object accounted for, every volume equal to the snapshot" if report.ok else (
            f"{len(lines)} problem(s): {'; '.join(lines[:5])}")  # fmt: skip
        return StepResult(outputs={"verification": output}, counts=counts, warnings=lines[:100],
                          partial=not report.ok, message=message,
                          bytes_moved=sum(v.bytes for v in checked))  # fmt: skip
