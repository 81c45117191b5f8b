"""Verification at scale: the verify step's object comparison against the discover step, on one namespace.

    .venv/bin/python benchmarks/verify.py               # 5,000 ConfigMaps + 5,000 Secrets (make bench-verify)
    .venv/bin/python benchmarks/verify.py --count 2000  # a quicker look

The target of the issue "Verification at scale": on a namespace of 10,000 ConfigMaps and Secrets,
verifying the objects must take no longer than 1.5x discovering them on the same cluster. Verify
reads paged LISTs of each type (``services.verify.objects.check_objects``) where it once sent one
GET per object; this measures both against discovery, so a change that brings the GETs back shows.

It starts one sandbox API server as a process of its own (as a real cluster is: the client's event
loop and the server's do not share a GIL, and the peak RSS printed is the client's alone), creates
the namespace through the API, half ConfigMaps and half Secrets, then times on the same cluster:
1. discover: what the discovery step does with a request for the namespace, without NATS and the
   object store (``version``, API discovery, ``collect``, ``link``);
2. verify: ``check_objects`` over every object, each expected as the restore would have rendered it
   (the document created, Secret values digested);
3. one GET per object: the old way, for comparison.

Each phase opens its own client (so each pays for the API discovery it needs) and runs ``--runs``
times; the fastest run is kept, the least disturbed by other work on the machine. The table gives
seconds, objects/s and the peak RSS of this process after the phase (``ru_maxrss`` only grows), then
the ratios. Exit 1 with ``FAIL`` when verify takes more than 1.5x discover, or when either step did
not see every object. Timings belong to this machine: nothing here runs in the test suite.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import os
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from services.discovery.collecting import collect  # noqa: E402
from services.discovery.depending import link  # noqa: E402
from services.verify.objects import check_objects  # noqa: E402
from shared.contracts.reports import ExpectedObject, Outcome  # noqa: E402
from shared.contracts.requests import MobilityRequest, RequestKind, Source  # noqa: E402
from shared.kube import Cluster, Clusters  # noqa: E402
from shared.kube.comparing import digested  # noqa: E402
from shared.kube.objects import Manifest  # noqa: E402
from shared.runtime.clusters import KubeCluster  # noqa: E402

CLUSTER = "bench"
NAMESPACE = "verify-bench"
LIMIT = 1.5  # verify / discover, from the issue
CREATORS = 32  # concurrent creates while setting up
Obj = dict[str, Any]


class Sandbox:
    """One sandbox API server as a subprocess, without the controllers this does not need."""

    def __init__(self, data: Path) -> None:
        self.data = data
        self.kubeconfig = data / "kubeconfig"
        self.log = data / "server.log"
        self.proc: subprocess.Popen[str] | None = None

    def start(self) -> str:
        self.data.mkdir(parents=True, exist_ok=True)
        command = [sys.executable, "-m", "sandbox", "serve", "--name", CLUSTER, "--data", str(self.data),
                   "--no-storage", "--no-snapshots", "--no-workloads", "--no-kubelet"]  # fmt: skip
        with open(self.log, "w") as log:
            self.proc = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.PIPE, stderr=log, text=True)
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()  # "sandbox cluster 'bench' serving at http://127.0.0.1:PORT"
        if "serving at" not in line:
            self.stop()
            raise SystemExit(f"the sandbox did not start:\n{self.log.read_text()[-3000:]}")
        return line.rsplit(" ", 1)[-1].strip()

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


# -- the namespace -----------------------------------------------------------------------------------


def documents(count: int) -> list[Obj]:
    """``count`` small objects, ConfigMaps and Secrets alternately, as a restore would create them."""
    docs: list[Obj] = []
    for i in range(count):
        labels = {"app": "bench", "shard": str(i % 16)}
        if i % 2 == 0:
            docs.append({"apiVersion": "v1", "kind": "ConfigMap",
                         "metadata": {"name": f"config-{i:05d}", "namespace": NAMESPACE, "labels": labels},
                         "data": {"setting": f"value-{i}", "mode": "fast" if i % 3 else "safe"}})  # fmt: skip
        else:
            password = base64.b64encode(f"secret-{i:05d}".encode()).decode()
            docs.append({"apiVersion": "v1", "kind": "Secret", "type": "Opaque",
                         "metadata": {"name": f"secret-{i:05d}", "namespace": NAMESPACE, "labels": labels},
                         "data": {"username": base64.b64encode(b"bench").decode(), "password": password}})  # fmt: skip
    return docs


async def create_all(cluster: Cluster, docs: list[Obj]) -> None:
    await cluster.create({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NAMESPACE}})
    gate = asyncio.Semaphore(CREATORS)

    async def create(doc: Obj) -> None:
        async with gate:
            await cluster.create(doc)

    async with asyncio.TaskGroup() as tasks:
        for doc in docs:
            tasks.create_task(create(doc))


def expected(doc: Obj) -> ExpectedObject:
    """The restore's rendering of one created object (``services.restore.expecting``)."""
    plural = "configmaps" if doc["kind"] == "ConfigMap" else "secrets"
    key = f"{plural}/{doc['metadata']['namespace']}/{doc['metadata']['name']}"
    return ExpectedObject(key=key, target=key, object=digested(doc), outcome=Outcome.CREATED)


# -- the phases --------------------------------------------------------------------------------------


async def discover(cluster: Cluster, count: int) -> str:
    """``DiscoveryService.build`` for the namespace: what the discover step reads from the cluster."""
    request = MobilityRequest(
        kind=RequestKind.REPLICATE, source=Source(cluster=CLUSTER, namespaces=[NAMESPACE])
    )
    await cluster.version()
    await cluster.resources.refresh()
    collected = await collect(cluster, request)
    await link(cluster, collected, request)
    found = sum(1 for item in collected.items if item.kind in ("ConfigMap", "Secret"))
    return "" if found == count else f"discover found {found} of {count} objects"


async def verify(cluster: Cluster, objects: list[ExpectedObject]) -> str:
    checked = await check_objects(KubeCluster(cluster, owned=False), objects)
    if checked.present == len(objects) and not checked.problems:
        return ""
    first = checked.problems[0].reason if checked.problems else ""
    return (
        f"verify found {checked.present} of {len(objects)} objects, {len(checked.problems)} problems {first}"
    )


async def get_each(cluster: Cluster, objects: list[ExpectedObject]) -> str:
    target = KubeCluster(cluster, owned=False)
    found = 0
    for item in objects:
        found += await target.get(Manifest(dict(item.object))) is not None
    return "" if found == len(objects) else f"GETs found {found} of {len(objects)} objects"


@dataclass
class Timing:
    name: str
    seconds: float
    objects: int
    rss: int  # bytes: the peak of this process after the phase
    error: str = ""

    def line(self) -> str:
        rate = self.objects / self.seconds if self.seconds else 0.0
        return f"  {self.name:22} {self.seconds:8.2f} s {rate:10.0f} obj/s   peak RSS {self.rss / 2**20:5.0f} MiB"


def peak_rss() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # KiB on Linux


async def timed(
    name: str, kubeconfig: str, count: int, runs: int, phase: Callable[[Cluster], Awaitable[str]]
) -> Timing:
    """The fastest of ``runs`` runs of ``phase``, each with a client of its own."""
    best: Timing | None = None
    for _ in range(runs):
        clusters = Clusters(kubeconfig)
        try:
            cluster = await clusters.get(CLUSTER)
            started = time.perf_counter()
            error = await phase(cluster)
            seconds = time.perf_counter() - started
        finally:
            await clusters.close()
        if error:
            return Timing(name, seconds, count, peak_rss(), error)
        if best is None or seconds < best.seconds:
            best = Timing(name, seconds, count, peak_rss())
    assert best is not None
    return best


async def bench(kubeconfig: str, count: int, runs: int) -> list[Timing]:
    docs = documents(count)
    started = time.perf_counter()
    async with Clusters(kubeconfig) as clusters:
        await create_all(await clusters.get(CLUSTER), docs)
    print(f"created {count} objects in {time.perf_counter() - started:.1f} s", flush=True)
    objects = [expected(doc) for doc in docs]
    del docs
    timings = []
    phases: list[tuple[str, Callable[[Cluster], Awaitable[str]]]] = [
        ("discover", lambda cluster: discover(cluster, count)),
        ("verify (paged lists)", lambda cluster: verify(cluster, objects)),
        ("one GET per object", lambda cluster: get_each(cluster, objects)),
    ]
    for name, phase in phases:
        timing = await timed(name, kubeconfig, count, runs, phase)
        print(timing.line(), flush=True)
        timings.append(timing)
    return timings


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--count", type=int, default=10_000, help="objects in the namespace (default 10000)")
    parser.add_argument(
        "--runs", type=int, default=3, help="runs of each phase, the fastest kept (default 3)"
    )
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="ferry-bench-verify-"))
    sandbox = Sandbox(work / "sandbox")
    try:
        sandbox.start()
        print(f"{args.count} objects in namespace {NAMESPACE}; {os.cpu_count()} cores; best of {args.runs}")
        discovered, verified, fetched = asyncio.run(bench(str(sandbox.kubeconfig), args.count, args.runs))
    finally:
        sandbox.stop()
        shutil.rmtree(work, ignore_errors=True)
    ratio = verified.seconds / discovered.seconds
    print(f"  verify / discover      {ratio:8.2f}   (limit {LIMIT})")
    print(f"  one GET each / verify  {fetched.seconds / verified.seconds:8.2f}")
    errors = [t.error for t in (discovered, verified, fetched) if t.error]
    for error in errors:
        print(f"  {error}")
    if errors or ratio > LIMIT:
        print("FAIL")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
