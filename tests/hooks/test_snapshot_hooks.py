"""Backup hooks in the snapshot step, on the ledger app in the sandbox: when they run, what a failing
one does, and that a service killed between pre and post still thaws the application."""

from __future__ import annotations

import asyncio
import json
import subprocess
from pathlib import Path
from typing import Any

import pytest

from sandbox import SandboxClusters, SandboxOptions
from shared.bus.client import BusClient
from shared.contracts.events import Report, Warning
from shared.contracts.requests import (
    ExecHook,
    HookErrorMode,
    Hooks,
    MobilityRequest,
    RequestKind,
    ResourceHook,
    Source,
)
from shared.contracts.states import Phase
from shared.kube import Cluster
from shared.runtime import Settings
from shared.runtime.hooking import PRE_HOOK_RAN
from tests.hooks.conftest import ledger_volume, running_pod, services
from tests.waiting import eventually

SNAPSHOTS = "volumesnapshots.snapshot.storage.k8s.io"


def request(*hooks: ResourceHook) -> MobilityRequest:
    return MobilityRequest(
        kind=RequestKind.REPLICATE,
        source=Source(cluster="east", namespaces=["ledger"], repository="east"),
        itinerary=["discover", "snapshot"],
        hooks=Hooks(resources=list(hooks)),
    )


def recorder(server: str, out: Path, phase: str) -> list[str]:
    """A hook that writes down what the cluster holds when it runs: VolumeSnapshots (ready or not) and
    mover Jobs — the order of events as the API server saw it."""
    script = (
        "import json, urllib.request as u\n"
        f"get = lambda p: json.load(u.urlopen('{server}' + p))['items']\n"
        "snaps = [bool((s.get('status') or {}).get('readyToUse')) for s in "
        "get('/apis/snapshot.storage.k8s.io/v1/namespaces/ledger/volumesnapshots')]\n"
        "jobs = [j['metadata']['name'] for j in get('/apis/batch/v1/namespaces/ledger/jobs')]\n"
        f"open({str(out)!r}, 'a').write(json.dumps({{'phase': {phase!r}, 'snapshots': snaps, 'jobs': jobs}}) + '\\n')\n"
        "print('recorded')"
    )
    return ["python3", "-c", script]


async def without_annotations(kube: Cluster) -> dict[str, Any]:
    """The ledger with no hook annotations (request hooks only), and its new pod."""
    patch = {"spec": {"template": {"metadata": {"annotations": None}}}}
    await kube.patch("deployments.apps", "ledger", patch, namespace="ledger")
    return await running_pod(kube, "ledger", "app=ledger")


async def events_of(client: BusClient, rid: str) -> list[Any]:
    return [e async for _, e in client.events(rid, follow=False, idle=0.3)]


@pytest.fixture
def cluster_options() -> SandboxOptions:
    return SandboxOptions(snapshot_ready_delay=1.0)  # the post hook must wait for readiness


async def test_pre_hooks_run_before_the_volume_snapshot_exists_and_post_hooks_once_it_is_ready_before_any_copy(
    settings: Settings, client: BusClient, clusters: SandboxClusters, kube: dict[str, Cluster], tmp_path: Path
) -> None:
    await ledger_volume(clusters, kube)
    pod = await without_annotations(kube["east"])
    out, server = tmp_path / "order.jsonl", clusters["east"].url
    hook = ResourceHook(
        name="order",
        namespaces=["ledger"],
        selector="app=ledger",
        pre=[ExecHook(command=recorder(server, out, "pre"))],
        post=[ExecHook(command=recorder(server, out, "post"))],
    )
    async with services(settings):
        rid = await client.submit(request(hook))
        state = await client.wait(rid, within=90)
        events = await events_of(client, rid)
    assert state.phase is Phase.COMPLETED, state.reason
    seen = [json.loads(line) for line in out.read_text().splitlines()]
    assert seen == [
        {"phase": "pre", "snapshots": [], "jobs": []},  # nothing captured yet
        {"phase": "post", "snapshots": [True], "jobs": []},  # captured and ready; no copy started
    ]
    runs = [e.body for e in events if isinstance(e, Report) and e.document == "hook"]
    assert [(r["phase"], r["exit_code"], r["output"]) for r in runs] == [
        ("pre", 0, "recorded"),
        ("post", 0, "recorded"),
    ]
    assert all(r["pod"] == f"ledger/{pod['metadata']['name']}" and r["duration"] > 0 for r in runs)
    live = await kube["east"].get("pods", pod["metadata"]["name"], "ledger")
    assert PRE_HOOK_RAN not in (live["metadata"].get("annotations") or {})


@pytest.mark.parametrize(
    ("on_error", "command", "limit", "phase", "says"),
    [
        pytest.param(
            HookErrorMode.FAIL,
            ["python3", "-c", "import sys; print('flush refused'); sys.exit(3)"],
            "30s",
            Phase.FAILED,
            "exit 3",
            id="a failing Fail hook fails the step with its output",
        ),
        pytest.param(
            HookErrorMode.CONTINUE,
            ["python3", "-c", "import sys; print('flush refused'); sys.exit(3)"],
            "30s",
            Phase.COMPLETED,
            "exit 3",
            id="a failing Continue hook is a warning",
        ),
        pytest.param(
            HookErrorMode.FAIL,
            ["python3", "-c", "import time; print('flush refused', flush=True); time.sleep(60)"],
            "1s",
            Phase.FAILED,
            "timed out",
            id="a hook past its timeout fails",
        ),
    ],
)
async def test_a_failing_pre_hook_follows_on_error_and_the_post_hook_still_thaws(
    settings: Settings,
    client: BusClient,
    clusters: SandboxClusters,
    kube: dict[str, Cluster],
    tmp_path: Path,
    on_error: HookErrorMode,
    command: list[str],
    limit: str,
    phase: Phase,
    says: str,
) -> None:
    volume = await ledger_volume(clusters, kube)
    pod = await without_annotations(kube["east"])
    thaw = ["python3", "-c", "open('/data/thawed', 'w').write('yes')"]
    hook = ResourceHook(
        name="flush",
        pre=[ExecHook(command=command, on_error=on_error, timeout=limit)],
        post=[ExecHook(command=thaw)],
    )
    async with services(settings):
        rid = await client.submit(request(hook))
        state = await client.wait(rid, within=90)
        events = await events_of(client, rid)
    assert state.phase is phase, state.reason
    if phase is Phase.FAILED:
        assert "pre hook failed (on-error Fail)" in state.reason and says in state.reason
        assert "flush refused" in state.reason
        assert not await kube["east"].list(SNAPSHOTS, "ledger")  # nothing was captured
    else:
        warnings = [e.message for e in events if isinstance(e, Warning)]
        assert any(says in w and "flush refused" in w and "Continue" in w for w in warnings), warnings
    assert (volume / "thawed").read_text() == "yes"  # the post hook ran all the same
    live = await kube["east"].get("pods", pod["metadata"]["name"], "ledger")
    assert PRE_HOOK_RAN not in (live["metadata"].get("annotations") or {})


async def test_a_service_killed_between_pre_and_post_hooks_has_the_post_hook_run_by_the_next_attempt(
    settings: Settings,
    client: BusClient,
    clusters: SandboxClusters,
    kube: dict[str, Cluster],
    snapshot_process: subprocess.Popen[bytes],
) -> None:
    volume = await ledger_volume(clusters, kube)
    pod = await without_annotations(kube["east"])
    name = pod["metadata"]["name"]
    # The pre hook takes long enough for the test to kill the service while it runs.
    freeze = ["python3", "-c", "import time; open('/data/frozen', 'w').write('1'); time.sleep(5)"]
    thaw = ["python3", "-c", "open('/data/thawed', 'a').write('thawed\\n')"]
    hook = ResourceHook(name="freeze", pre=[ExecHook(command=freeze)], post=[ExecHook(command=thaw)])
    async with services(settings, snapshot=False):
        rid = await client.submit(request(hook))

        async def frozen() -> bool:
            live = await kube["east"].get("pods", name, "ledger")
            marked = (live["metadata"].get("annotations") or {}).get(PRE_HOOK_RAN) == rid
            return marked and (volume / "frozen").exists()

        await eventually(frozen, within=60, what="the pre hook running, the pod marked")
        snapshot_process.kill()
        snapshot_process.wait(10)
        assert not (volume / "thawed").exists()
        from services.snapshot.snapshotting import SnapshotService

        async with SnapshotService(settings):
            state = await client.wait(rid, within=120)
        events = await events_of(client, rid)
    assert state.phase is Phase.COMPLETED, state.reason
    # Thawed by the second attempt (for the first one's freeze), and after its own pre hook.
    assert (volume / "thawed").read_text() == "thawed\nthawed\n"
    warnings = [e.message for e in events if isinstance(e, Warning)]
    assert any("an earlier attempt had frozen" in w for w in warnings), warnings
    live = await kube["east"].get("pods", name, "ledger")
    assert PRE_HOOK_RAN not in (live["metadata"].get("annotations") or {})
    await asyncio.sleep(0)
