"""A step replica in its own process, so a test can kill it with SIGKILL mid-step.

``python -m tests.bus.worker NATS_URL MARKER_DIR [--instance NAME] [--seconds S] [--defaults]
[--grace S]`` runs
the ECHO step; its handler writes ``MARKER_DIR/<request-id>.<instance>.<attempt>.started`` (the
unix time it started) and ``<request-id>.started``, then works for ``S`` seconds (an hour by
default), like a mover copying a large volume. ``--defaults`` keeps the default ack wait and lease
(what a deployment runs with); without it both are 2 s.
"""

from __future__ import annotations

import argparse
import asyncio
import time
from pathlib import Path

from shared.contracts.steps import StepName, StepResult
from shared.runtime import StepContext, StepService, load_settings, serve


class BlockingStep(StepService):
    name = "echo-worker"
    step = StepName.ECHO
    markers = Path(".")
    seconds = 3600.0

    async def handle(self, ctx: StepContext) -> StepResult:
        started = time.time()
        partial = self.markers / f"{ctx.request_id}.{self.instance}.tmp"
        partial.write_text(str(started))  # then renamed: a reader never sees half a marker
        partial.rename(self.markers / f"{ctx.request_id}.{self.instance}.{ctx.attempt}.started")
        (self.markers / f"{ctx.request_id}.started").write_text(self.instance)
        await asyncio.sleep(self.seconds)
        return StepResult(outputs={"echo_by": self.instance})


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("url")
    parser.add_argument("markers", type=Path)
    parser.add_argument("--instance", default="doomed")
    parser.add_argument("--seconds", type=float, default=3600.0)
    parser.add_argument("--defaults", action="store_true")
    parser.add_argument("--grace", type=float, default=None, help="drain grace period (s)")
    args = parser.parse_args()
    BlockingStep.markers, BlockingStep.seconds = args.markers, args.seconds
    timing: dict[str, float] = {} if args.defaults else {"ack_wait": 2.0, "lease": 2.0}
    if args.grace is not None:
        timing["drain_grace"] = args.grace
    settings = load_settings({}, nats={"url": args.url}, http_port=0, http_host="127.0.0.1", **timing)
    asyncio.run(serve(BlockingStep(settings, instance=args.instance)))


if __name__ == "__main__":
    main()
