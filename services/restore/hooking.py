"""Restore hooks: Velero's ``init.hook.restore`` init containers and ``post.hook.restore`` execs.

The init hook is added while the plan is prepared (``add_init_hook``, after the resource modifiers
and before the mappings, so the request's registry map applies to its image as to the others): a Pod
gets it among its own init containers, a workload (Deployment, StatefulSet, ...) in its pod template —
the pods of a restored workload are made by its controller, never restored themselves, so the
template is the only place that reaches them; Velero does the same for the pods it restores. It goes
first, mounts what the first container mounts, and is added once (a retry replaces it by name).

The exec hooks run once the restore's readiness wait is over (``run_exec_hooks``): for each restored
Pod or workload whose (template) annotations hold ``post.hook.restore.velero.io/command``, in each of
its pods once its container is ready (``wait-timeout``, else the step's timeout), within
``exec-timeout``. A failure is a warning with ``on-error: Continue`` (Velero's default for restore
hooks) and, with ``Fail``, a problem that makes the step PartiallyFailed — the objects are written
already, so failing the request outright would not undo anything.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

from shared.contracts.events import Report
from shared.contracts.steps import StepName
from shared.kube import Cluster
from shared.kube.objects import Manifest
from shared.kube.selecting import SelectorError, from_label_selector
from shared.runtime import StepContext
from shared.runtime.hooking import HookRun, container_of, is_ready, run_hook
from shared.runtime.hooks import (
    Hook,
    HookError,
    add_restore_init_container,
    pod_annotations,
    restore_exec_hook,
)

log = logging.getLogger("ferry.restore")
HOOK_DOCUMENT = "hook"


def add_init_hook(item: Manifest) -> str:
    """Add the init hook's container to a restored Pod or workload template; a note, or ""."""
    return add_restore_init_container(item.obj)


async def _pods_of(cluster: Cluster, item: Manifest) -> list[dict[str, Any]]:
    """The target's pods of a restored Pod (itself) or workload (by its selector: labels and
    expressions, as its controller selects them)."""
    if item.kind == "Pod":
        found = await cluster.find("pods", item.name, item.namespace)
        return [found] if found else []
    spec_selector = (item.obj.get("spec") or {}).get("selector")
    if not isinstance(spec_selector, dict):
        return []
    selector = from_label_selector(spec_selector)
    if not selector:  # an empty selector selects every pod: not this workload's
        return []
    return await cluster.list("pods", item.namespace, label_selector=selector)


async def _ready_pods(cluster: Cluster, item: Manifest, hook: Hook, within: float) -> list[dict[str, Any]]:
    """The pods whose hook container is ready, waiting (bounded) until at least one is."""
    deadline = time.monotonic() + within
    while True:
        pods = await _pods_of(cluster, item)
        ready = [p for p in pods if is_ready(p, (container_of(p, hook.container) or {}).get("name", ""))]
        if ready or time.monotonic() > deadline:
            return ready
        await asyncio.sleep(0.5)


async def _report(ctx: StepContext, run: HookRun) -> None:
    log.info("%s", run.summary())
    await ctx.emit(
        Report(
            request_id=ctx.request_id,
            step=StepName.RESTORE,
            title=run.summary()[:500],
            body=run.record(),
            document=HOOK_DOCUMENT,
        )
    )


async def run_exec_hooks(
    ctx: StepContext, cluster: Cluster, items: list[Manifest], wait: float
) -> tuple[list[HookRun], list[str]]:
    """Run every restored object's post-restore exec hook in its ready pods.

    Returns the runs and the problems (hooks with ``on-error: Fail`` that failed, or that could not
    run at all); a failed ``Continue`` hook is a warning event only.
    """
    runs: list[HookRun] = []
    problems: list[str] = []
    for item in items:
        try:
            hook = restore_exec_hook(pod_annotations(item.obj))
        except HookError as e:
            problems.append(f"{item.key}: {e}")
            continue
        if hook is None:
            continue
        try:
            pods = await _ready_pods(cluster, item, hook, hook.wait_timeout or wait)
        except SelectorError as e:
            problems.append(f"{item.key}: post-restore hook not run: its selector: {e}")
            continue
        if not pods:
            problems.append(
                f"{item.key}: post-restore hook not run: no ready pod after {hook.wait_timeout or wait:.0f}s"
            )
            continue
        for pod in pods:
            run = await run_hook(cluster, pod, hook)
            runs.append(run)
            await _report(ctx, run)
            if run.fails_step:
                problems.append(f"{item.key}: {run.summary()}")
            elif not run.ok:
                await ctx.warn(f"{run.summary()} (on-error Continue)", obj=item.key)
    return runs, problems
