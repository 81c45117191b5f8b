"""The preflight step: check, in seconds, that a request can run before anything is copied.

Consumes ``ferry.step.preflight``, the first step of every default itinerary (and the only one of a
``preflight_only`` request, ``ferry migrate ... --preflight``). The checks themselves are data
(``shared.runtime.preflighting``): the clusters reachable and authorised for what the request will
do, the storage classes and VolumeSnapshotClasses it needs, the repositories and their key, the
target namespaces against the conflict policy. The step publishes the whole table as a ``Report``
(document ``preflight``) and then, if any check failed, fails the request with every problem in the
reason (a permanent failure: a retry would find the same), so the request stops before discovery
and long before a snapshot.

It runs in the discovery process (``python -m services.discovery``): both read the source cluster
through the same kubeconfig.
"""

from __future__ import annotations

import logging

from services.discovery.collecting import in_scope
from shared.contracts.events import Report
from shared.contracts.reports import DocumentKind
from shared.contracts.steps import StepName
from shared.kube import Clusters, Resource, RetryPolicy
from shared.runtime import StepContext, StepService
from shared.runtime.outcomes import Outcome
from shared.runtime.preflighting import preflight, problems, summary, verdict

log = logging.getLogger("ferry.preflight")
TIMEOUT = 10.0  # seconds for any one cluster or repository to answer


class PreflightService(StepService):
    name = "preflight"
    description = "Ferry preflight: clusters, permissions, storage classes and repositories, before any copy"
    step = StepName.PREFLIGHT
    timeout = TIMEOUT

    async def setup(self) -> None:
        # Few, quick retries: a cluster that does not answer is this step's finding, not a reason to wait.
        self.clusters = Clusters(self.settings.kubeconfig, retry=RetryPolicy(attempts=2, maximum=1.0))
        await super().setup()

    async def teardown(self) -> None:
        await self.clusters.close()
        await super().teardown()

    async def handle(self, ctx: StepContext) -> Outcome:
        request = ctx.request

        def scope(resource: Resource) -> bool:
            return in_scope(resource, request)

        checks = await preflight(request, self.settings, self.clusters, in_scope=scope, within=self.timeout)
        failed = problems(checks)
        title = (
            f"Preflight: {len(checks)} checks passed"
            if not failed
            else f"Preflight: {len(failed)} of {len(checks)} checks failed"
        )
        await ctx.emit(
            Report(
                request_id=ctx.request_id,
                step=StepName.PREFLIGHT,
                title=title,
                document=DocumentKind.PREFLIGHT,
                body=summary(checks),
            )
        )
        if failed:
            log.info("preflight found %d problem(s)", len(failed))
        return verdict(checks)
