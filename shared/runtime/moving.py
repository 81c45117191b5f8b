"""Running mover Jobs next to a volume in a target cluster, and reading what they said.

Used by the restore step (``ferry-mover restore`` fills a fresh claim, ``restore --delta`` refreshes
an existing one) and by the verify step (``ferry-mover verify`` compares a claim with its snapshot
read-only). Per namespace and request, one Secret carries the repository password and S3
credentials; Jobs are named after the request, the claim and their role, so a redelivered step
finds the Job it started before instead of starting a second one. A finished Job that succeeded is
deleted once its JSON summary (the last line of its log) has been read; a failed one is kept for
``kubectl logs`` and named in the reason.

The Job itself is built by ``shared.runtime.movers`` (the one builder the snapshot step uses too).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from shared.kube.objects import Manifest, Obj
from shared.runtime import movers as moverjobs
from shared.runtime.clusters import AlreadyExists, ApiRefused, Cluster
from shared.runtime.settings import Settings

MOUNT = moverjobs.MOUNT
ROLE_LABEL = moverjobs.ROLE_LABEL


def short_name(*parts: str, prefix: str = "ferry") -> str:
    """A DNS-1123 name that stays under 63 characters and is stable for the same parts."""
    digest = hashlib.sha256("/".join(parts).encode()).hexdigest()[:10]
    head = "-".join(p for p in parts if p)[: 63 - len(prefix) - 13].strip("-.").lower()
    head = "".join(c if c.isalnum() or c == "-" else "-" for c in head)
    return f"{prefix}-{head}-{digest}".replace("--", "-")


def job_state(job: Obj | None) -> tuple[bool, str]:
    """(finished, "" if it succeeded else why not) from a Job's status conditions."""
    if job is None:
        return True, "the Job disappeared"
    for condition in (job.get("status") or {}).get("conditions") or []:
        if condition.get("status") != "True":
            continue
        if condition.get("type") == "Complete":
            return True, ""
        if condition.get("type") == "Failed":
            reason = condition.get("message") or condition.get("reason") or "failed"
            return True, f"mover Job failed: {reason}"
    return False, ""


def summary_of(log: str) -> dict[str, Any] | None:
    """The mover's ``--json`` summary: the last log line that is a JSON object, or None."""
    for line in reversed([line for line in log.splitlines() if line.strip()]):
        if not line.startswith("{"):
            continue
        try:
            found = json.loads(line)
        except ValueError:
            continue
        if isinstance(found, dict):
            return found
    return None


def mover_said(log: str) -> str:
    """What a failed mover said: its JSON summary's error (and exit code), else its last log lines."""
    found = summary_of(log)
    if found is not None and found.get("error"):
        return f"{found['error']} (ferry-mover exit code {found.get('exit_code', '?')})"
    lines = [line for line in log.splitlines() if line.strip()]
    return " | ".join(lines[-3:])


@dataclass
class MoverRun:
    """One mover Job's outcome: ``why`` is "" when it succeeded; ``summary`` is its JSON summary."""

    job: str
    why: str = ""
    summary: dict[str, Any] = field(default_factory=dict)


class Movers:
    """Mover Jobs of one request and step in one cluster; ``close()`` removes the credentials Secrets."""

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
        checkpoint: Callable[[], Awaitable[None]] | None = None,
    ) -> None:
        self.cluster, self.settings, self.request_id, self.step = cluster, settings, request_id, step
        self.repository_url, self.labels, self.timeout = repository_url, labels, timeout
        self.checkpoint = checkpoint  # raises Cancelled when the request was cancelled: the Job is deleted
        self._secrets: dict[str, Manifest] = {}
        self._lock = asyncio.Lock()

    async def _secret(self, namespace: str) -> str:
        async with self._lock:
            if namespace not in self._secrets:
                name = short_name(self.request_id, prefix="ferry-mover")
                labels = {**self.labels, ROLE_LABEL: "mover-credentials"}
                secret = Manifest(
                    moverjobs.credentials_secret(self.settings, name=name, namespace=namespace, labels=labels)
                )
                try:
                    await self.cluster.create(secret)
                except AlreadyExists:
                    await self.cluster.merge_patch(secret, {"data": secret.obj["data"]})
                self._secrets[namespace] = secret
            return self._secrets[namespace].name

    def job(
        self, namespace: str, claim: str, args: list[str], role: str, *, secret: str, read_only: bool = False
    ) -> Manifest:
        """The Job that runs ``ferry-mover <args>`` on ``claim`` with the credentials of ``secret``."""
        return Manifest(
            moverjobs.mover_job(
                self.settings,
                name=short_name(self.request_id, claim, role, prefix="ferry"),
                namespace=namespace,
                claim=claim,
                args=moverjobs.mover_args(args, self.step),
                repository_url=self.repository_url,
                secret=secret,
                request_id=self.request_id,
                labels={**self.labels, ROLE_LABEL: role},
                read_only=read_only,
                backoff_limit=2,
            )
        )

    async def run(
        self, namespace: str, claim: str, args: list[str], role: str, *, read_only: bool = False
    ) -> MoverRun:
        """Run one mover Job on ``claim`` and wait for it (bounded by the timeout)."""
        secret = await self._secret(namespace)
        job = self.job(namespace, claim, args, role, secret=secret, read_only=read_only)
        try:
            await self.cluster.create(job)
        except AlreadyExists:
            pass  # started by an earlier attempt of this step: wait for that one
        except ApiRefused as e:
            return MoverRun(job.name, f"the mover Job was refused: {e}")
        try:
            return await self._wait(job, namespace)
        except BaseException:  # cancelled (the request, or the step's task): the mover stops now
            with contextlib.suppress(Exception):
                await asyncio.shield(self.cluster.delete(job))
            raise

    async def _wait(self, job: Manifest, namespace: str) -> MoverRun:
        deadline = time.monotonic() + self.timeout
        delay, polls = 0.1, 0
        while True:
            finished, why = job_state(await self.cluster.get(job))
            if finished:
                break
            polls += 1
            if polls % 5 == 0 and (pods := getattr(self.cluster, "job_pods", None)) is not None:
                if cannot := moverjobs.stuck(await pods(namespace, job.name)):
                    why = f"the mover cannot start ({self.settings.image}): {cannot}"
                    break
            if time.monotonic() > deadline:
                return MoverRun(
                    job.name, f"mover Job {namespace}/{job.name} did not finish within {self.timeout:.0f}s"
                )
            if self.checkpoint is not None:
                await self.checkpoint()
            await asyncio.sleep(delay)
            delay = min(delay * 1.5, 1.0)
        logs = getattr(self.cluster, "job_logs", None)
        tail = (await logs(namespace, job.name)).strip() if logs is not None else ""
        if not why:
            await self.cluster.delete(job)
            return MoverRun(job.name, summary=summary_of(tail) or {})
        said = mover_said(tail)
        why = f"{why} (Job {namespace}/{job.name} kept for its logs)" + (f": {said}" if said else "")
        return MoverRun(job.name, why)

    async def close(self) -> None:
        for secret in self._secrets.values():
            try:
                await self.cluster.delete(secret)
            except ApiRefused:
                pass
        self._secrets.clear()
