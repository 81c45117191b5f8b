"""Hooks as Velero writes them: which commands run in which pod, parsed once, for both steps.

A team brings the annotations it already has for Velero:

- backup, on a pod: ``pre.hook.backup.velero.io/{container,command,on-error,timeout}`` and the same
  under ``post.hook.backup.velero.io/`` (the unprefixed ``hook.backup.velero.io/`` is Velero's old
  name of the pre hook, read too);
- restore, on a pod or a workload's pod template: ``post.hook.restore.velero.io/{container,command,
  on-error,exec-timeout,wait-timeout}`` (run once the restored pod is ready) and
  ``init.hook.restore.velero.io/{container-image,container-name,command}`` (an init container).

The request adds hooks for pods chosen by namespace and label selector (``MobilityRequest.hooks``,
Velero's ``spec.hooks.resources``). As in Velero, a pod whose annotations declare a hook of a phase
runs that one, not the request's. ``command`` is a JSON array, or any other text taken as one word.
Defaults are Velero's: backup hooks fail the step on error, restore exec hooks continue; both time
out after 30 s. A malformed value raises ``HookError`` naming the annotation, so the person who wrote
it knows which line to fix. Running hooks is ``hooking``'s job; this module only reads.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from shared.contracts.errors import PermanentError
from shared.contracts.requests import ExecHook, HookErrorMode, Hooks, MobilityRequest, ResourceHook
from shared.durations import seconds
from shared.kube.selecting import matches, parse

PRE, POST = "pre", "post"
BACKUP_PREFIX = {PRE: "pre.hook.backup.velero.io/", POST: "post.hook.backup.velero.io/"}
LEGACY_PRE_PREFIX = "hook.backup.velero.io/"
RESTORE_EXEC_PREFIX = "post.hook.restore.velero.io/"
RESTORE_INIT_PREFIX = "init.hook.restore.velero.io/"
DEFAULT_TIMEOUT = 30.0
DEFAULT_INIT_NAME = "restore-hook"
# Workload kinds whose pod template carries the pod annotations (and gets the init container).
TEMPLATE_KINDS = {"Deployment", "StatefulSet", "DaemonSet", "ReplicaSet", "Job", "ReplicationController"}


class HookError(PermanentError):
    """A hook that cannot be read (a bad command, on-error value or timeout): the message names it."""


@dataclass(frozen=True)
class Hook:
    """One command to run in one pod: where it came from (for messages), how long it may take."""

    phase: str  # pre | post
    command: list[str]
    container: str = ""  # "" = the pod's first container
    on_error: HookErrorMode = HookErrorMode.FAIL
    timeout: float = DEFAULT_TIMEOUT
    wait_timeout: float = (
        0.0  # restore exec hooks: how long the container may take to be ready (0: the step's)
    )
    source: str = ""  # "annotation pre.hook.backup.velero.io" or "request hook <name>"


def parse_command(value: Any, where: str) -> list[str]:
    """A JSON array of strings, or a single string taken as one word (Velero's rule)."""
    if isinstance(value, list):
        words = value
    elif isinstance(value, str) and value.strip().startswith("["):
        try:
            words = json.loads(value)
        except ValueError as e:
            raise HookError(f"{where}: not a JSON array of strings: {e}") from None
        if not isinstance(words, list):
            raise HookError(f"{where}: not a JSON array of strings")
    elif isinstance(value, str):
        words = [value] if value.strip() else []
    else:
        raise HookError(f"{where}: a command is a list of strings or one string")
    if not words or not all(isinstance(w, str) for w in words):
        raise HookError(f"{where}: the command is empty or holds something other than strings")
    return list(words)


def parse_on_error(value: str, where: str, default: HookErrorMode) -> HookErrorMode:
    if not value:
        return default
    try:
        return HookErrorMode(value)
    except ValueError:
        raise HookError(f"{where}: {value!r} is not Fail or Continue") from None


def parse_timeout(value: str, where: str, default: float) -> float:
    if not value:
        return default
    try:
        return seconds(value)
    except ValueError as e:
        raise HookError(f"{where}: {e}") from None


def _annotation_hook(
    annotations: dict[str, str], prefix: str, phase: str, *, on_error: HookErrorMode, timeout_key: str
) -> Hook | None:
    if f"{prefix}command" not in annotations:
        return None
    return Hook(
        phase=phase,
        command=parse_command(annotations[f"{prefix}command"], f"annotation {prefix}command"),
        container=annotations.get(f"{prefix}container", ""),
        on_error=parse_on_error(
            annotations.get(f"{prefix}on-error", ""), f"annotation {prefix}on-error", on_error
        ),
        timeout=parse_timeout(
            annotations.get(f"{prefix}{timeout_key}", ""),
            f"annotation {prefix}{timeout_key}",
            DEFAULT_TIMEOUT,
        ),
        source=f"annotation {prefix.rstrip('/')}",
    )


def _request_hook(resource: ResourceHook, spec: ExecHook, phase: str, index: int) -> Hook:
    where = f"hooks.resources[{resource.name}].{phase}[{index}]"
    return Hook(
        phase=phase,
        command=parse_command(spec.command, f"{where}.command"),
        container=spec.container,
        on_error=spec.on_error,
        timeout=parse_timeout(spec.timeout, f"{where}.timeout", DEFAULT_TIMEOUT),
        source=f"request hook {resource.name}",
    )


def selects(resource: ResourceHook, pod: dict[str, Any]) -> bool:
    """Whether a request hook applies to this pod: its namespace and labels."""
    meta = pod.get("metadata") or {}
    namespace = meta.get("namespace", "")
    if resource.namespaces and namespace not in resource.namespaces:
        return False
    if namespace in resource.excluded_namespaces:
        return False
    return not resource.selector or matches(parse(resource.selector), meta.get("labels") or {})


def backup_hooks(pod: dict[str, Any], phase: str, hooks: Hooks) -> list[Hook]:
    """The hooks of ``phase`` for this pod: its annotation's, else every matching request hook's."""
    annotations = (pod.get("metadata") or {}).get("annotations") or {}
    found = _annotation_hook(
        annotations, BACKUP_PREFIX[phase], phase, on_error=HookErrorMode.FAIL, timeout_key="timeout"
    )
    if found is None and phase == PRE:
        found = _annotation_hook(
            annotations, LEGACY_PRE_PREFIX, phase, on_error=HookErrorMode.FAIL, timeout_key="timeout"
        )
    if found is not None:
        return [found]
    out: list[Hook] = []
    for resource in hooks.resources:
        if selects(resource, pod):
            specs = resource.pre if phase == PRE else resource.post
            out.extend(_request_hook(resource, spec, phase, i) for i, spec in enumerate(specs))
    return out


def check_request(request: MobilityRequest) -> None:
    """Every request hook readable (commands, timeouts, selectors), before anything runs."""
    for resource in request.hooks.resources:
        for phase, specs in ((PRE, resource.pre), (POST, resource.post)):
            for i, spec in enumerate(specs):
                _request_hook(resource, spec, phase, i)
        if resource.selector:
            try:
                parse(resource.selector)
            except ValueError as e:
                raise HookError(f"hooks.resources[{resource.name}].selector: {e}") from None


def pod_annotations(obj: dict[str, Any]) -> dict[str, str]:
    """The annotations a pod of ``obj`` carries: a Pod's own, a workload's pod template's."""
    if obj.get("kind") == "Pod":
        return dict((obj.get("metadata") or {}).get("annotations") or {})
    template = pod_template(obj)
    return dict(((template or {}).get("metadata") or {}).get("annotations") or {})


def pod_template(obj: dict[str, Any]) -> dict[str, Any] | None:
    """The pod template of a workload (a CronJob's is in its job template), or None."""
    spec = obj.get("spec") or {}
    if obj.get("kind") == "CronJob":
        spec = ((spec.get("jobTemplate") or {}).get("spec")) or {}
    elif obj.get("kind") not in TEMPLATE_KINDS:
        return None
    template = spec.get("template")
    return template if isinstance(template, dict) else None


def restore_exec_hook(annotations: dict[str, str]) -> Hook | None:
    """The post-restore exec hook of a pod's annotations, or None (on-error defaults to Continue)."""
    hook = _annotation_hook(
        annotations, RESTORE_EXEC_PREFIX, POST, on_error=HookErrorMode.CONTINUE, timeout_key="exec-timeout"
    )
    if hook is None:
        return None
    where = f"annotation {RESTORE_EXEC_PREFIX}wait-timeout"
    wait = parse_timeout(annotations.get(f"{RESTORE_EXEC_PREFIX}wait-timeout", ""), where, 0.0)
    return Hook(**{**hook.__dict__, "wait_timeout": wait})


def restore_init_container(
    annotations: dict[str, str], containers: list[dict[str, Any]]
) -> dict[str, Any] | None:
    """The init container the ``init.hook.restore.velero.io`` annotations describe, or None.

    It mounts what the pod's first container mounts, so a hook can prepare the restored data (remove a
    stale lock, fix ownership) — Velero's annotation form mounts nothing, which leaves it little to do.
    """
    p = RESTORE_INIT_PREFIX
    image, command = annotations.get(f"{p}container-image", ""), annotations.get(f"{p}command")
    if not image and command is None:
        return None
    if not image:
        raise HookError(f"annotation {p}container-image: an init hook needs an image")
    if command is None:
        raise HookError(f"annotation {p}command: an init hook needs a command")
    container: dict[str, Any] = {
        "name": annotations.get(f"{p}container-name") or DEFAULT_INIT_NAME,
        "image": image,
        "command": parse_command(command, f"annotation {p}command"),
    }
    mounts = (containers[0].get("volumeMounts") if containers else None) or []
    if mounts:
        container["volumeMounts"] = [dict(m) for m in mounts]
    return container


def add_restore_init_container(obj: dict[str, Any]) -> str:
    """Put the init hook's container first among the pod's (or template's) init containers, once.

    Returns a note for the restore report ("" when there is no init hook). A workload gets it in its
    pod template, so every pod it starts runs it — what Velero does for the pods it restores.
    """
    pod = obj if obj.get("kind") == "Pod" else pod_template(obj)
    if pod is None:
        return ""
    spec = pod.setdefault("spec", {})
    container = restore_init_container(pod_annotations(obj), spec.get("containers") or [])
    if container is None:
        return ""
    inits = [c for c in spec.get("initContainers") or [] if c.get("name") != container["name"]]
    spec["initContainers"] = [container, *inits]
    return f"init container {container['name']} ({container['image']}) added by the restore hook"
