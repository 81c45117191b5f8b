"""Stub step services for the backbone tests: real StepService machinery, scripted behaviour.

A request's labels choose what the stub does: ``behaviour=ok`` (default), ``fail-temp`` (temporary
error the first ``failures`` times), ``fail-perm``, ``block`` (wait for cancellation at checkpoints),
``sleep`` (``seconds``). Every run is recorded in ``calls`` so tests can count real work done.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import ClassVar

from shared.contracts.errors import PermanentError, TemporaryError
from shared.contracts.requests import MobilityRequest, RequestKind, Source, Target
from shared.contracts.steps import StepName, StepResult
from shared.runtime import Service, StepContext, StepService


@dataclass
class Journal:
    calls: list[tuple[str, str, str, int]] = field(default_factory=list)  # (request, step, instance, attempt)

    def runs(self, request_id: str, step: str) -> list[tuple[str, str, str, int]]:
        return [c for c in self.calls if c[0] == request_id and c[1] == step]


class ScriptedStep(StepService):
    step: ClassVar[StepName] = StepName.ECHO
    journal: ClassVar[Journal] = Journal()

    async def handle(self, ctx: StepContext) -> StepResult:
        labels = ctx.request.labels
        self.journal.calls.append((ctx.request_id, self.step.value, self.instance, ctx.attempt))
        behaviour = labels.get("behaviour", "ok")
        if behaviour == "fail-temp" and ctx.attempt <= int(labels.get("failures", "1")):
            raise TemporaryError(f"store unavailable (attempt {ctx.attempt})")
        if behaviour == "fail-perm":
            raise PermanentError("namespace shop does not exist in cluster east")
        if behaviour == "block":
            for _ in range(600):
                await ctx.checkpoint()
                await asyncio.sleep(0.05)
        if behaviour == "sleep":
            await asyncio.sleep(float(labels.get("seconds", "0.2")))
        await ctx.progress(bytes_done=10, bytes_total=10, items_done=1, items_total=1)
        return StepResult(outputs={f"{self.step.value}_by": self.instance}, counts={"items": 1})


def step_class(step: StepName, journal: Journal) -> type[ScriptedStep]:
    """A ScriptedStep bound to another step name and a journal of its own."""
    return type(
        f"Scripted{step.value.title()}",
        (ScriptedStep,),
        {"step": step, "journal": journal, "name": step.value},
    )


def stub_request(itinerary: list[str], key: str = "", **labels: str) -> MobilityRequest:
    """A request through the given stub steps; its labels script them (see the module docstring)."""
    return MobilityRequest(
        kind=RequestKind.REPLICATE,
        source=Source(cluster="east", namespaces=["shop"]),
        target=Target(cluster="west"),
        itinerary=itinerary,
        idempotency_key=key,
        labels=labels,
    )


@contextlib.asynccontextmanager
async def running(*services: Service) -> AsyncIterator[None]:
    """Start the services in order, stop them in reverse."""
    async with contextlib.AsyncExitStack() as stack:
        for service in services:
            await stack.enter_async_context(service)
        yield
