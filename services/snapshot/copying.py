"""Copy one volume into the repository: CSI snapshot → temporary claim → mover Job, or the live claim.

``capture`` takes one claim's CSI VolumeSnapshot and waits until it is ready, ``copy_volume`` copies
one claim (from that snapshot, or live) with a mover Job; ``sweep`` deletes what any attempt of the step left (found by label,
so a crashed attempt's objects are found too); ``Progress`` turns the movers' per-volume Progress
events (published by ``ferry-mover`` on the request's subject) into the request's aggregate.

A mover Job's outcome is read from its status; a failed Job's pod log ends with the mover's JSON
summary, whose exit code says whether trying again can help (locked repository, object store
unavailable: temporary) or not (wrong password, refused credentials: permanent).
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from services.snapshot import movers
from shared.contracts import subjects
from shared.contracts.errors import PermanentError, TemporaryError
from shared.contracts.events import Progress as ProgressEvent
from shared.contracts.events import event_decoder
from shared.contracts.inventory import Volume
from shared.kube import Cluster, KubeError, UnknownResource, condition, has_condition
from shared.runtime import movers as moverjobs
from shared.runtime.settings import Settings

log = logging.getLogger("ferry.snapshot")
TEMPORARY_EXIT_CODES = {11, 13}  # repository locked; object store unreachable
SNAPSHOT_READY_SECONDS = 600


@dataclass
class Job:
    """What one volume copy needs besides the volume."""

    cluster: Cluster
    settings: Settings
    request_id: str
    group: str
    repository_url: str
    secret: str
    parent: str
    tags: dict[str, str]
    method: str  # csi | live
    checkpoint: Callable[[], Awaitable[None]]


async def sweep(cluster: Cluster, namespaces: list[str], request_id: str) -> int:
    """Delete every temporary object of this request's snapshot step and wait until they are gone."""
    gone: list[tuple[str, str, str]] = []
    for namespace in namespaces:
        for resource in movers.TEMPORARY:
            try:
                found = await cluster.list(resource, namespace, label_selector=movers.selector(request_id))
            except UnknownResource:
                continue
            for obj in found:
                await cluster.delete(resource, obj["metadata"]["name"], namespace=namespace)
                gone.append((resource, obj["metadata"]["name"], namespace))
    for resource, name, namespace in gone:  # finalizers keep some a moment: names are reused next attempt
        await cluster.wait_deleted(resource, name, namespace=namespace, within=120)
    return len(gone)


async def _ready_snapshot(job: Job, name: str, namespace: str, claim: str) -> dict[str, Any]:
    """Wait (checking for cancellation every 2 s, at most 10 min) until the VolumeSnapshot is ready."""

    def settled(obj: dict[str, Any] | None) -> bool:
        status = (obj or {}).get("status") or {}
        return obj is None or bool(status.get("readyToUse")) or bool(status.get("error"))

    deadline = time.monotonic() + SNAPSHOT_READY_SECONDS
    while True:
        try:
            snap = await job.cluster.wait_for(
                movers.VOLUME_SNAPSHOTS, name, settled, namespace=namespace, within=2.0
            )
            break
        except TimeoutError:
            if time.monotonic() > deadline:
                raise TemporaryError(
                    f"the CSI snapshot of volume {namespace}/{claim} is not ready after {SNAPSHOT_READY_SECONDS}s"
                ) from None
            await job.checkpoint()
    if snap is None:
        raise TemporaryError(f"VolumeSnapshot {namespace}/{name} disappeared before it was ready")
    error = (snap.get("status") or {}).get("error")
    if error:
        message = error.get("message", error) if isinstance(error, dict) else error
        raise PermanentError(f"the CSI snapshot of volume {namespace}/{claim} failed: {message}")
    return snap


async def _mover_summary(cluster: Cluster, namespace: str, job_name: str) -> dict[str, Any]:
    """The JSON summary the mover printed last, from the newest pod of the Job (else its log's tail)."""
    pods = await cluster.list("pods", namespace, label_selector=f"job-name={job_name}")
    pods.sort(key=lambda p: p["metadata"].get("creationTimestamp", ""))
    for pod in reversed(pods):
        try:
            text = await cluster.logs(pod["metadata"]["name"], namespace, tail_lines=20)
        except KubeError:
            continue
        lines = text.strip().splitlines()
        for line in reversed(lines):
            if line.startswith("{"):
                try:
                    doc: dict[str, Any] = json.loads(line)
                    return doc
                except ValueError:
                    continue
        if lines:
            return {"error": " | ".join(lines[-3:])[-500:]}
    return {}


async def capture(job: Job, volume: Volume) -> str:
    """Take the CSI VolumeSnapshot of one claim and wait until it is ready; returns its restore size.

    Separate from the copy so that the step can run its post hooks as soon as every volume is captured,
    before any byte is uploaded: the application's freeze lasts as long as the snapshots take.
    """
    name = movers.short_name(job.request_id, volume.namespace, volume.claim)
    await job.cluster.create(
        movers.volume_snapshot(name, volume.namespace, volume.claim, volume.snapshot_class, job.request_id)
    )
    snap = await _ready_snapshot(job, name, volume.namespace, volume.claim)
    return str((snap.get("status") or {}).get("restoreSize") or volume.capacity or volume.size)


async def copy_volume(job: Job, volume: Volume, size: str = "") -> dict[str, Any]:
    """Back up one claim with a mover Job; returns the mover's summary (snapshot_id, bytes, ...).

    A CSI copy reads a claim made from the VolumeSnapshot ``capture`` took (``size`` is its restore
    size); a live copy reads the claim itself. The volume's own temporaries (Job, claim,
    VolumeSnapshot) are deleted as soon as it is done, so a large application never holds twice its
    claims (velero #6731); the step's sweep catches the rest.
    """
    cluster, ns, claim = job.cluster, volume.namespace, volume.claim
    name = movers.short_name(job.request_id, ns, claim)
    try:
        return await _copy(job, volume, name, size)
    finally:
        made = ["jobs.batch"] + (
            ["persistentvolumeclaims", movers.VOLUME_SNAPSHOTS] if job.method == "csi" else []
        )
        for resource in made:
            try:
                await cluster.delete(resource, name, namespace=ns)
            except KubeError as e:  # the sweep at the end of the step tries again
                log.warning("could not delete %s %s/%s: %s", resource, ns, name, e)
        log.debug("temporaries of %s/%s deleted", ns, claim)


async def _copy(job: Job, volume: Volume, name: str, size: str) -> dict[str, Any]:
    cluster, ns, claim = job.cluster, volume.namespace, volume.claim
    mounted = claim
    if job.method == "csi":
        await cluster.create(
            movers.claim_from_snapshot(name, ns, name, volume.storage_class, size, job.request_id)
        )
        mounted = name
    node = ""
    if job.method == "live" and "ReadWriteOnce" in volume.access_modes:
        node = movers.node_of(await cluster.list("pods", ns), claim)
    args = movers.backup_args(ns, claim, job.group, job.parent, job.tags)
    manifest = movers.mover_job(
        job.settings,
        name=name,
        namespace=ns,
        claim=mounted,
        args=args,
        repository_url=job.repository_url,
        secret=job.secret,
        request_id=job.request_id,
        node=node,
    )
    await cluster.create(manifest)
    polls = 0
    while True:
        obj = await cluster.find("jobs.batch", name, ns)
        if obj is None:
            raise TemporaryError(f"the mover Job {ns}/{name} disappeared")
        if has_condition(obj, "Complete"):
            break
        if has_condition(obj, "Failed"):
            summary = await _mover_summary(cluster, ns, name)
            why = summary.get("error") or (condition(obj, "Failed") or {}).get("message") or "failed"
            message = f"the mover of volume {ns}/{claim} failed: {why}"
            if summary.get("exit_code") in TEMPORARY_EXIT_CODES:
                raise TemporaryError(message)
            raise PermanentError(message)
        polls += 1
        if polls % 10 == 0:  # every few seconds: a pod that can never start fails the step now
            why = moverjobs.stuck(await cluster.list("pods", ns, label_selector=f"job-name={name}"))
            if why:
                raise PermanentError(
                    f"the mover of volume {ns}/{claim} cannot start ({job.settings.image}): {why}"
                )
        await job.checkpoint()
        await asyncio.sleep(0.3)
    summary = await _mover_summary(cluster, ns, name)
    log.info(
        "volume %s/%s copied: %s",
        ns,
        claim,
        {k: summary.get(k) for k in ("snapshot_id", "bytes", "new_bytes")},
    )
    return summary


class Progress:
    """Aggregates the movers' per-volume progress into one total for the request."""

    def __init__(
        self, nc: Any, request_id: str, volumes: list[str], emit: Callable[..., Awaitable[None]]
    ) -> None:
        self.nc, self.request_id, self.emit = nc, request_id, emit
        self.volumes = {v: (0, 0) for v in volumes}
        self.finished: set[str] = set()
        self.sub: Any = None

    async def __aenter__(self) -> Progress:
        self.sub = await self.nc.subscribe(subjects.event_subject(self.request_id, "progress"), cb=self._on)
        return self

    async def __aexit__(self, *_: object) -> None:
        if self.sub is not None:
            await self.sub.unsubscribe()

    async def _on(self, msg: Any) -> None:
        try:
            event = event_decoder.decode(msg.data)
        except Exception:  # noqa: BLE001 - not our event: ignore it
            return
        if not isinstance(event, ProgressEvent) or event.volume not in self.volumes:
            return
        self.volumes[event.volume] = (event.bytes_done, event.bytes_total)
        await self.publish()

    async def done(self, volume: str, total: int) -> None:
        self.volumes[volume] = (total, total)
        self.finished.add(volume)
        await self.publish()

    async def publish(self) -> None:
        done = sum(d for d, _ in self.volumes.values())
        total = sum(t for _, t in self.volumes.values())
        await self.emit(
            bytes_done=done,
            bytes_total=total,
            items_done=len(self.finished),
            items_total=len(self.volumes),
            message=f"{len(self.finished)}/{len(self.volumes)} volumes copied",
        )
