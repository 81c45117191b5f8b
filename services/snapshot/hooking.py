"""The backup hooks of one snapshot attempt: pre hooks right before the capture, post hooks right after.

The step calls ``owed`` first (post hooks a crashed attempt left owing), ``pre`` just before the
VolumeSnapshots are created (or the live copies start), and ``post`` as soon as every snapshot is
ready (or every live copy's mover has finished reading) — in a ``finally``, so a failed capture
still thaws the application. A pod is marked ``ferry.dev/pre-hook-ran=<request>`` *before* its pre
hook runs and unmarked after its post hook, so a service killed in between leaves the mark and the
next attempt's ``owed`` runs the post hook it missed.

Pods are those of the inventory's namespaces matching its selector, Running, with a hook of either
phase (their Velero annotations, or a request hook that selects them). Pods are hooked in parallel
(one pod's hooks in order), so the freeze starts at nearly the same moment everywhere. ``on-error:
Fail`` fails the step with the hook's output (``HookFailed``); ``Continue`` is a warning. Each run is
a ``Report`` event (document ``hook``) and a line of ``records``, which the manifests record keeps.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from shared.contracts.errors import PermanentError
from shared.contracts.events import Report
from shared.contracts.requests import Hooks
from shared.contracts.steps import StepName
from shared.kube import Cluster
from shared.runtime import StepContext
from shared.runtime.hooking import HookRun, is_running, mark, marked_by, run_hook, unmark
from shared.runtime.hooks import POST, PRE, backup_hooks

log = logging.getLogger("ferry.snapshot")
HOOK_DOCUMENT = "hook"  # the Report events' document kind (clients select hook runs by it)


class HookFailed(PermanentError):
    """A hook with ``on-error: Fail`` failed: the step fails with its output."""


class BackupHooks:
    """The pre and post hooks of one attempt of the snapshot step."""

    def __init__(
        self,
        ctx: StepContext,
        cluster: Cluster,
        hooks: Hooks,
        namespaces: list[str],
        selector: str,
        warn: Callable[[str], Awaitable[None]],
    ) -> None:
        self.ctx, self.cluster, self.hooks = ctx, cluster, hooks
        self.namespaces, self.selector, self.warn = namespaces, selector, warn
        self.runs: list[HookRun] = []

    def records(self) -> list[dict[str, Any]]:
        return [run.record() for run in self.runs]

    async def _pods(self) -> list[dict[str, Any]]:
        found = []
        for namespace in self.namespaces:
            found += await self.cluster.list("pods", namespace, label_selector=self.selector)
        return found

    async def _ran(self, run: HookRun) -> None:
        """Tell people what one hook did: a Report event always, a warning when it failed."""
        self.runs.append(run)
        log.info("%s", run.summary())
        await self.ctx.emit(
            Report(
                request_id=self.ctx.request_id,
                step=StepName.SNAPSHOT,
                title=run.summary()[:500],
                body=run.record(),
                document=HOOK_DOCUMENT,
            )
        )
        if not run.ok and not run.fails_step:
            await self.warn(f"{run.summary()} (on-error Continue)")

    async def _run_phase(self, pod: dict[str, Any], phase: str) -> HookRun | None:
        """Run the pod's hooks of ``phase`` in order; the first that fails the step ends them."""
        for hook in backup_hooks(pod, phase, self.hooks):
            run = await run_hook(self.cluster, pod, hook)
            await self._ran(run)
            if run.fails_step:
                return run
        return None

    async def wanted(self) -> bool:
        """Whether any selected pod has a hook: without one, the step need not gather its captures."""
        return bool(await self._hooked())

    async def _hooked(self) -> list[dict[str, Any]]:
        return [
            p
            for p in await self._pods()
            if is_running(p) and (backup_hooks(p, PRE, self.hooks) or backup_hooks(p, POST, self.hooks))
        ]

    async def pre(self) -> None:
        """Mark every hooked pod, then run its pre hooks; the first failure that fails the step raises
        (after every pod's hooks ended: the post hooks owe a thaw to each one that froze)."""
        pods = await self._hooked()

        async def one(pod: dict[str, Any]) -> HookRun | None:
            await mark(self.cluster, pod, self.ctx.request_id)
            return await self._run_phase(pod, PRE)

        failed = [run for run in await asyncio.gather(*(one(p) for p in pods)) if run is not None]
        if failed:
            raise HookFailed(f"a pre hook failed (on-error Fail): {failed[0].summary()}")

    async def post(self, *, failing: bool = False) -> int:
        """Run the post hooks of every pod this request marked, and unmark it; returns how many pods.

        A post hook that fails the step raises — unless the step is already failing (``failing``):
        then it is a warning, and the first error stays the reason.
        """
        pods = [p for p in await self._pods() if marked_by(p, self.ctx.request_id)]

        async def one(pod: dict[str, Any]) -> HookRun | None:
            run = await self._run_phase(pod, POST) if is_running(pod) else None
            await unmark(self.cluster, pod)
            return run

        failed = [run for run in await asyncio.gather(*(one(p) for p in pods)) if run is not None]
        if failed and failing:
            await self.warn(f"a post hook failed while the step was failing: {failed[0].summary()}")
        elif failed:
            raise HookFailed(f"a post hook failed (on-error Fail): {failed[0].summary()}")
        return len(pods)

    async def owed(self) -> None:
        """Post hooks an earlier attempt owes (it crashed between pre and post): run them now."""
        try:
            count = await self.post()
        except HookFailed as e:  # the application is thawed as far as it can be; the new attempt goes on
            await self.warn(f"{e} (owed by an earlier attempt)")
            return
        if count:
            await self.warn(f"ran the post hooks of {count} pod(s) an earlier attempt had frozen")
