"""What the restore hands the verify step: every object as the target must now hold it, every claim.

The restore already prepared each object (cleaned, modified, mapped); rather than have the verify
step prepare them all again, the restore stores the rendered documents it wrote, the objects it
left out on purpose (with the reason), and the result of every claim, as one typed ``Expectation``
(``<request>/expectation.json``). Verify then needs nothing but this document and the target.

Secret values never travel in it: each value of a Secret's ``data``/``stringData`` is replaced by
its digest, and verify compares digests of the live values (``shared.kube.comparing.digested``).
Fields another controller owns from now on are named, not compared: the replica count of a
workload that a HorizontalPodAutoscaler of the snapshot scales.
"""

from __future__ import annotations

from services.restore.ordering import references
from services.restore.restoring import Plan
from shared.contracts.reports import Expectation, ExpectedObject, RestoreReport
from shared.kube.comparing import digested, without_ferry_labels
from shared.kube.objects import Manifest


def autoscaled_targets(items: list[Manifest]) -> set[str]:
    """Keys of the workloads a HorizontalPodAutoscaler of the snapshot scales (their replicas move)."""
    found = set()
    for item in items:
        if item.kind == "HorizontalPodAutoscaler":
            found |= {ref for ref in references(item) if not ref.startswith("namespaces/")}
    return found


def expectation(report: RestoreReport, plan: Plan, *, cluster: str, repository: str) -> Expectation:
    results = {r.target: r for r in report.objects}
    autoscaled = autoscaled_targets(plan.items)
    objects = []
    for item in plan.items:
        result = results.get(item.key)
        if result is None:  # the engine records every item; a missing one was never attempted
            continue
        objects.append(
            ExpectedObject(
                key=item.source_key,
                target=item.key,
                object=digested(without_ferry_labels(item.obj)),
                outcome=result.outcome,
                reason=result.reason,
                ignore=["spec.replicas"] if item.key in autoscaled else [],
            )
        )
    return Expectation(
        request_id=report.request_id,
        snapshot=report.snapshot,
        cluster=cluster,
        repository=repository,
        objects=objects,
        accounted=list(plan.results),
        volumes=list(report.volumes),
    )
