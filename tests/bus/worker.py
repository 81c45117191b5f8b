"""A step replica in its own process, so a test can kill it with SIGKILL mid-step.

``python -m tests.bus.worker NATS_URL MARKER_DIR`` runs the ECHO step; its handler writes
``MARKER_DIR/<request-id>.started`` and then blocks, like a mover copying a large volume.
"""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

from shared.contracts.steps import StepName, StepResult
from shared.runtime import StepContext, StepService, load_settings, serve


class BlockingStep(StepService):
    name = "echo-worker"
    step = StepName.ECHO
    markers = Path(".")

    async def handle(self, ctx: StepContext) -> StepResult:
        (self.markers / f"{ctx.request_id}.started").write_text(self.instance)
        await asyncio.sleep(3600)
        return StepResult()


if __name__ == "__main__":
    BlockingStep.markers = Path(sys.argv[2])
    settings = load_settings({}, nats={"url": sys.argv[1]}, http_port=0, ack_wait=2.0, lease=2.0)
    asyncio.run(serve(BlockingStep(settings, instance="doomed")))
