"""Reading hooks as Velero writes them: annotations, request hooks, restore init containers."""

from __future__ import annotations

from typing import Any

import msgspec
import pytest

from shared.contracts.requests import ExecHook, HookErrorMode, Hooks, MobilityRequest, ResourceHook
from shared.runtime.hooking import tail
from shared.runtime.hooks import (
    POST,
    PRE,
    HookError,
    add_restore_init_container,
    backup_hooks,
    restore_exec_hook,
)


def pod(
    annotations: dict[str, str], labels: dict[str, str] | None = None, ns: str = "shop"
) -> dict[str, Any]:
    return {
        "kind": "Pod",
        "metadata": {"name": "db-0", "namespace": ns, "annotations": annotations, "labels": labels or {}},
        "spec": {"containers": [{"name": "db", "volumeMounts": [{"name": "d", "mountPath": "/data"}]}]},
    }


@pytest.mark.parametrize(
    ("annotations", "phase", "command", "container", "on_error", "timeout"),
    [
        pytest.param(
            {"pre.hook.backup.velero.io/command": '["/bin/fsfreeze", "--freeze", "/data"]'},
            PRE,
            ["/bin/fsfreeze", "--freeze", "/data"],
            "",
            HookErrorMode.FAIL,
            30.0,
            id="a JSON array is the words; Fail and 30s are the defaults",
        ),
        pytest.param(
            {"pre.hook.backup.velero.io/command": "sync"},
            PRE,
            ["sync"],
            "",
            HookErrorMode.FAIL,
            30.0,
            id="any other text is one word",
        ),
        pytest.param(
            {
                "post.hook.backup.velero.io/command": '["sh", "-c", "thaw"]',
                "post.hook.backup.velero.io/container": "db",
                "post.hook.backup.velero.io/on-error": "Continue",
                "post.hook.backup.velero.io/timeout": "2m",
            },
            POST,
            ["sh", "-c", "thaw"],
            "db",
            HookErrorMode.CONTINUE,
            120.0,
            id="container, on-error and timeout are read",
        ),
        pytest.param(
            {"hook.backup.velero.io/command": "sync"},
            PRE,
            ["sync"],
            "",
            HookErrorMode.FAIL,
            30.0,
            id="Velero's old unprefixed name is a pre hook",
        ),
    ],
)
def test_backup_annotations_are_read_as_velero_reads_them(
    annotations: dict[str, str],
    phase: str,
    command: list[str],
    container: str,
    on_error: HookErrorMode,
    timeout: float,
) -> None:
    [hook] = backup_hooks(pod(annotations), phase, Hooks())
    assert (hook.command, hook.container, hook.on_error, hook.timeout) == (
        command,
        container,
        on_error,
        timeout,
    )


@pytest.mark.parametrize(
    ("annotations", "named"),
    [
        pytest.param(
            {"pre.hook.backup.velero.io/command": '["sync", 3]'},
            "pre.hook.backup.velero.io/command",
            id="a command array of other things than strings",
        ),
        pytest.param(
            {"pre.hook.backup.velero.io/command": "[not json"},
            "pre.hook.backup.velero.io/command",
            id="a command that starts like an array but is not JSON",
        ),
        pytest.param(
            {"pre.hook.backup.velero.io/command": "sync", "pre.hook.backup.velero.io/on-error": "Ignore"},
            "pre.hook.backup.velero.io/on-error",
            id="an on-error that is not Fail or Continue",
        ),
        pytest.param(
            {"pre.hook.backup.velero.io/command": "sync", "pre.hook.backup.velero.io/timeout": "soon"},
            "pre.hook.backup.velero.io/timeout",
            id="a timeout that is not a duration",
        ),
    ],
)
def test_a_malformed_annotation_is_an_error_naming_it(annotations: dict[str, str], named: str) -> None:
    with pytest.raises(HookError, match=named.replace(".", r"\.")):
        backup_hooks(pod(annotations), PRE, Hooks())


def test_request_hooks_select_pods_by_namespace_and_labels_and_annotations_win() -> None:
    hooks = Hooks(
        resources=[
            ResourceHook(
                name="dbs",
                namespaces=["shop"],
                selector="tier=db",
                pre=[
                    ExecHook(command="sync"),
                    ExecHook(command=["echo", "two"], on_error=HookErrorMode.CONTINUE),
                ],
            ),
            ResourceHook(name="elsewhere", namespaces=["other"], pre=[ExecHook(command="never")]),
        ]
    )
    chosen = backup_hooks(pod({}, {"tier": "db"}), PRE, hooks)
    assert [h.command for h in chosen] == [["sync"], ["echo", "two"]]
    assert chosen[1].source == "request hook dbs"
    assert backup_hooks(pod({}, {"tier": "web"}), PRE, hooks) == []
    own = backup_hooks(pod({"pre.hook.backup.velero.io/command": "mine"}, {"tier": "db"}), PRE, hooks)
    assert [h.command for h in own] == [["mine"]]  # as in Velero, the pod's annotation replaces the request's


def test_a_request_with_hooks_decodes_with_both_command_forms_and_refuses_unknown_fields() -> None:
    body = (
        b'{"kind": "replicate", "source": {"cluster": "east"}, "hooks": {"resources": [{"name": "db", '
        b'"selector": "app=db", "pre": [{"command": "sync"}, {"command": ["sh", "-c", "x"], "timeout": "5s"}]}]}}'
    )
    request = msgspec.json.decode(body, type=MobilityRequest)
    assert request.hooks.resources[0].pre[1].command == ["sh", "-c", "x"]
    with pytest.raises(msgspec.ValidationError, match="onError"):
        msgspec.json.decode(body.replace(b'"timeout"', b'"onError"'), type=MobilityRequest)


def test_restore_exec_hooks_continue_by_default_and_read_both_timeouts() -> None:
    hook = restore_exec_hook(
        {
            "post.hook.restore.velero.io/command": '["sh", "-c", "check"]',
            "post.hook.restore.velero.io/exec-timeout": "45s",
            "post.hook.restore.velero.io/wait-timeout": "2m",
        }
    )
    assert hook is not None
    assert (hook.on_error, hook.timeout, hook.wait_timeout) == (HookErrorMode.CONTINUE, 45.0, 120.0)
    assert restore_exec_hook({"post.hook.backup.velero.io/command": "x"}) is None


def test_the_init_hook_goes_first_in_a_workloads_pod_template_once_with_the_first_containers_mounts() -> None:
    annotations = {
        "init.hook.restore.velero.io/container-image": "busybox:1.36",
        "init.hook.restore.velero.io/container-name": "clear-pause",
        "init.hook.restore.velero.io/command": '["sh", "-c", "rm -f /data/.pause"]',
    }
    deployment = {
        "kind": "Deployment",
        "spec": {
            "template": {
                "metadata": {"annotations": annotations},
                "spec": {
                    "initContainers": [{"name": "migrate", "image": "app"}],
                    "containers": [{"name": "app", "volumeMounts": [{"name": "d", "mountPath": "/data"}]}],
                },
            }
        },
    }
    assert "clear-pause" in add_restore_init_container(deployment)
    add_restore_init_container(deployment)  # a retry does not add it twice
    inits = deployment["spec"]["template"]["spec"]["initContainers"]
    assert [c["name"] for c in inits] == ["clear-pause", "migrate"]
    assert inits[0]["command"] == ["sh", "-c", "rm -f /data/.pause"]
    assert inits[0]["volumeMounts"] == [{"name": "d", "mountPath": "/data"}]
    with pytest.raises(HookError, match="container-image"):
        add_restore_init_container(
            {
                "kind": "Pod",
                "metadata": {"annotations": {"init.hook.restore.velero.io/command": "x"}},
                "spec": {"containers": []},
            }
        )


def test_hook_output_keeps_its_last_lines_and_hides_secret_values() -> None:
    stdout = "\n".join(f"line {i}" for i in range(30)) + "\npassword is hunter22\n"
    shown = tail(stdout, "warning: hunter22 used\n", ["hunter22"])
    assert "hunter22" not in shown and "password is ***" in shown and "warning: *** used" in shown
    assert len(shown.splitlines()) == 10 and "line 0" not in shown
