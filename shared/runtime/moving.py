"""Running mover Jobs in the target cluster and turning their outcome into a ``VolumeResult``.

Used by both steps: the restore step fills a fresh claim (``ferry-mover restore``), the verify step
reads it back (``ferry-mover backup --parent none``). Per namespace and request, one Secret carries
the repository password and S3 credentials; Jobs are named after the request and the claim, so a
redelivered step finds the Job it started before instead of starting a second one. A finished Job
that succeeded is deleted; a failed one is kept for ``kubectl logs`` and named in the reason.
"""

from __future__ import annotations

import asyncio
import json
import time

from services.restore import jobs
from services.restore.conflicts import AlreadyExists, ApiRefused, Cluster
from services.restore.objects import Manifest
from shared.contracts.reports import VolumeResult
from shared.runtime import movers as moverjobs
from shared.runtime.settings import Settings


def mover_said(log: str) -> str:
    """What a failed mover said: its JSON summary's error (and exit code), else its last log lines."""
    lines = [line for line in log.splitlines() if line.strip()]
    for line in reversed(lines):
        if not line.startswith("{"):
            continue
        try:
            summary = json.loads(line)
        except ValueError:
            continue
        if isinstance(summary, dict) and summary.get("error"):
            return f"{summary['error']} (ferry-mover exit code {summary.get('exit_code', '?')})"
    return " | ".join(lines[-3:])


class Movers:
    """Mover Jobs of one request in one cluster; ``close()`` removes the credentials Secrets."""

    def __init__(
        self,
        cluster: Cluster,
        settings: Settings,
        *,
        request_id: str,
        step: str,
        repository_url: str,
        labels: dict[str, str],
        timeout: float,
    ) -> None:
        self.cluster, self.settings, self.request_id, self.step = cluster, settings, request_id, step
        self.repository_url, self.labels, self.timeout = repository_url, labels, timeout
        self._secrets: dict[str, Manifest] = {}
        self._lock = asyncio.Lock()

    async def _secret(self, namespace: str) -> str:
        async with self._lock:
            if namespace not in self._secrets:
                name = jobs.short_name(self.request_id, prefix="ferry-mover")
                secret = Manifest(jobs.credentials_secret(self.settings, namespace, name, self.labels))
                try:
                    await self.cluster.create(secret)
                except AlreadyExists:
                    await self.cluster.merge_patch(secret, {"data": secret.obj["data"]})
                self._secrets[namespace] = secret
            return self._secrets[namespace].name

    async def run(self, namespace: str, claim: str, args: list[str], role: str) -> tuple[str, str]:
        """Run one mover Job on ``claim``; ("", job) when it succeeded, else (why, job)."""
        secret = await self._secret(namespace)
        name = jobs.short_name(self.request_id, claim, role, prefix="ferry")
        job = Manifest(
            jobs.mover_job(
                self.settings,
                name=name,
                namespace=namespace,
                claim=claim,
                args=args,
                repository_url=self.repository_url,
                secret=secret,
                request_id=self.request_id,
                step=self.step,
                labels=self.labels,
                role=role,
            )  # fmt: skip
        )
        try:
            await self.cluster.create(job)
        except AlreadyExists:
            pass  # started by an earlier attempt of this step: wait for that one
        deadline = time.monotonic() + self.timeout
        delay, polls = 0.1, 0
        while True:
            finished, why = jobs.job_state(await self.cluster.get(job))
            if finished:
                break
            polls += 1
            if polls % 5 == 0 and (pods := getattr(self.cluster, "job_pods", None)) is not None:
                if cannot := moverjobs.stuck(await pods(namespace, name)):
                    why = f"the mover cannot start ({self.settings.image}): {cannot}"
                    break
            if time.monotonic() > deadline:
                return f"mover Job {namespace}/{name} did not finish within {self.timeout:.0f}s", name
            await asyncio.sleep(delay)
            delay = min(delay * 1.5, 2.0)
        if not why:
            await self.cluster.delete(job)
        else:
            logs = getattr(self.cluster, "job_logs", None)
            tail = (await logs(namespace, name)).strip() if logs is not None else ""
            said = mover_said(tail)
            why = f"{why} (Job {namespace}/{name} kept for its logs)" + (f": {said}" if said else "")
        return why, name

    async def fill(self, claim: Manifest, snapshot_id: str) -> VolumeResult:
        label = f"{claim.namespace}/{claim.name}"
        try:
            why, _job = await self.run(
                claim.namespace, claim.name, jobs.restore_args(snapshot_id, label), "restore"
            )
        except ApiRefused as e:
            why = f"the mover Job was refused: {e}"
        return VolumeResult(claim=label, snapshot=snapshot_id, ok=not why, reason=why)

    async def close(self) -> None:
        for secret in self._secrets.values():
            try:
                await self.cluster.delete(secret)
            except ApiRefused:
                pass
        self._secrets.clear()
