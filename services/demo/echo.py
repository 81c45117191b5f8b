"""The ``echo`` step: a no-op step that reports progress, for smoke-testing a deployment's bus.

``python -m services.demo.echo`` runs it. A request with ``"itinerary": ["echo"]`` goes through
intake, the work-queue stream, this consumer and back to Completed — proof that the bus, the
state store and the routing slip work before any cluster is involved.
"""

from __future__ import annotations

import asyncio

from shared.contracts.steps import StepName, StepResult
from shared.runtime import StepContext, StepService, run
from shared.runtime.outcomes import Outcome, Succeeded


class EchoService(StepService):
    name = "echo"
    step = StepName.ECHO
    description = "No-op step that reports progress (smoke test of the bus)"

    async def handle(self, ctx: StepContext) -> Outcome:
        total = 10
        for done in range(1, total + 1):
            await ctx.checkpoint()
            await asyncio.sleep(0.05)
            await ctx.progress(
                items_done=done, items_total=total, bytes_done=done << 20, bytes_total=total << 20
            )
        return Succeeded(StepResult(counts={"items": total}, message="echoed", bytes_moved=total << 20))


if __name__ == "__main__":
    run(EchoService)
