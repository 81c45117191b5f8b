"""The transfer step: bring a Ferry snapshot into the target region's repository, verified.

Consumes ``ferry.step.transfer``. The snapshot id comes from the snapshot step's outputs (migrate,
replicate) or from ``source.snapshot`` (restore, drill; ``latest`` is resolved here). The copy itself
is ``copying.GroupCopy`` running in a worker thread; this module owns the step's contract around it:

- repositories are opened by name from the settings; a target repository that does not exist yet
  is created *like the source* (same chunk-id key, its own encryption key), so every later transfer
  sends only new chunks;
- progress (bytes and objects) goes to the request's events twice a second; cancellation is checked
  at the same pace and stops the copy between packs (what was uploaded stays indexed);
- SIGTERM / a lost lease cancels the handler: the copy is stopped the same way and the step is
  retried from where it stopped by the next delivery;
- counts cover every attempt: the result gives the whole snapshot (``blobs_needed``,
  ``bytes_needed``) split into what was already in the target (``*_present``, e.g. sent by an
  earlier attempt) and what this attempt sent (``*_sent``); ``ferry_bytes_total`` grows as the bytes
  are sent, so an attempt that fails or is interrupted counts its part too;
- the result is verified by reading back every blob of the snapshot in the target
  (``verifying.verify_group``); damaged files are reported per volume and path and make the step
  PartiallyFailed — the request goes on, so whatever is intact still lands, and nothing is silent.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass
from typing import Any

import msgspec

from services.transfer.copying import GroupCopy, TransferStats, plan_group
from services.transfer.verifying import verify_group
from shared.contracts.errors import FerryError, PermanentError, TemporaryError
from shared.contracts.events import Report
from shared.contracts.reports import DocumentKind
from shared.contracts.steps import StepName, StepResult
from shared.repository import (
    IntegrityError,
    Repository,
    RepositoryError,
    RepositoryExists,
    RepositoryLocked,
    RepositoryNotFound,
    WrongKey,
)
from shared.runtime import StepContext, StepService
from shared.runtime.outcomes import Failed, Outcome, Succeeded
from shared.runtime.repositories import repository_url, store_settings
from shared.runtime.settings import Settings, load
from shared.store import StoreError, open_store

log = logging.getLogger("ferry.transfer")


class TransferOptions(msgspec.Struct, frozen=True, kw_only=True):
    """Tuning read from ``FERRY_TRANSFER_*`` env vars (until they join the shared Settings)."""

    limit_kib: int = 0  # upload bandwidth limit in KiB/s; 0 = unlimited
    threads: int = 4  # source packs read in parallel
    verify: bool = True  # read back every blob of the snapshot in the target afterwards


def transfer_options(env: Mapping[str, str] | None = None) -> TransferOptions:
    """``FERRY_TRANSFER_LIMIT_KIB``, ``_THREADS`` and ``_VERIFY``, read like every setting."""
    return load(TransferOptions, env, "FERRY_TRANSFER_", what="transfer setting")


@dataclass(frozen=True)
class Copied:
    """What one copy did: the snapshot id, the counts, and what the read-back found damaged."""

    group: str
    stats: TransferStats
    damaged: list[str]
    checked: dict[str, int]  # verified_blobs, verified_bytes


def open_named(settings: Settings, name: str, *, like: Repository | None = None) -> Repository:
    """Open a repository by name; create it (sharing ``like``'s chunk-id key) when it does not exist."""
    if not settings.repo_password:
        raise PermanentError("no repository password configured (FERRY_REPO_PASSWORD)")
    url = repository_url(settings, name)
    store = open_store(url, store_settings(settings, name))
    password = settings.repo_password.encode()
    try:
        return Repository.open(store, password)
    except RepositoryNotFound:
        if like is None:
            raise PermanentError(f"repository {name or 'default'} at {url} does not exist") from None
        try:
            return Repository.init(store, password, like=like)
        except RepositoryExists:
            return Repository.open(store, password)
    except WrongKey as e:
        raise PermanentError(f"repository {name or 'default'} at {url}: {e}") from e


def resolve_group(repo: Repository, snapshot: str) -> str:
    """A Ferry snapshot id, or ``latest``: the group of the newest manifests record."""
    if snapshot != "latest":
        return snapshot
    groups = [
        record.group
        for _id, record in repo.snapshots()
        if record.kind == "blob" and record.name == "manifests" and record.group
    ]
    if not groups:
        raise PermanentError(f"no Ferry snapshot in {repo.store.location} to take as 'latest'")
    return groups[-1]


def classify(error: BaseException) -> Exception:
    """Ferry's verdict on a repository or store error: retry, or stop with a reason."""
    if isinstance(error, RepositoryLocked):
        return TemporaryError(f"repository locked by another process: {error}", retry_after=30)
    if isinstance(error, StoreError):
        return (TemporaryError if error.temporary else PermanentError)(f"object store: {error}")
    if isinstance(error, IntegrityError):
        return PermanentError(f"the source repository is damaged: {error}")
    if isinstance(error, RepositoryError):
        return (TemporaryError if error.temporary else PermanentError)(str(error))
    return PermanentError(str(error))


def summary(stats: TransferStats, attempt: int = 1) -> str:
    """The step's message: the whole copy, then what this attempt sent and what was already there."""
    copied = stats.records - stats.records_present
    whole = f"{stats.records} record(s), {stats.blobs_needed} chunk(s), {stats.bytes_needed} bytes"
    if stats.records_present == 0 and stats.blobs_present == 0:
        text = f"copied {stats.records} record(s), {stats.blobs_sent} chunk(s), {stats.bytes_sent} bytes"
    else:
        earlier = "an earlier attempt or transfer" if attempt > 1 else "an earlier transfer or backup"
        text = (
            f"{whole} in the target: copied {copied} record(s), {stats.blobs_sent} chunk(s), "
            f"{stats.bytes_sent} bytes; {stats.records_present} record(s), {stats.blobs_present} chunk(s), "
            f"{stats.bytes_present} bytes were already there (from {earlier})"
        )
    if attempt > 1:
        text += f" [attempt {attempt}]"
    return text + ("" if stats.same_keys else " (different keys: re-encrypted and re-hashed)")


def counts_of(copied: Copied, attempt: int) -> dict[str, int]:
    """The step's counts: the whole snapshot, split into what was there and what this attempt sent."""
    stats = copied.stats
    return {
        "records": stats.records,
        "records_copied": stats.records_copied,
        "records_present": stats.records_present,
        "blobs_needed": stats.blobs_needed,
        "blobs_sent": stats.blobs_sent,
        "blobs_present": stats.blobs_present,
        "bytes_needed": stats.bytes_needed,
        "bytes_sent": stats.bytes_sent,
        "bytes_present": stats.bytes_present,
        "bytes_read": stats.bytes_read,
        "attempt": attempt,
        "damaged_files": len(copied.damaged),
        "same_repository": int(stats.same_repository),  # 1: source and target share it, nothing sent
        **copied.checked,
    }


class TransferService(StepService):
    name = "transfer"
    description = "Copies a Ferry snapshot to the target region's repository, sending only what it lacks"
    step = StepName.TRANSFER

    def __init__(
        self, settings: Settings, *, options: TransferOptions | None = None, instance: str = ""
    ) -> None:
        super().__init__(settings, instance=instance)
        self.options = options or transfer_options()

    async def handle(self, ctx: StepContext) -> Outcome:
        request = ctx.request
        snapshot = ctx.outputs.get("snapshot") or request.source.snapshot
        if not snapshot:
            return Failed("no snapshot to transfer: the request names none and no step produced one")
        source_name = request.source.repository
        target_name = request.target.repository or source_name
        if request.dry_run:
            return Succeeded(await self._plan(ctx, snapshot, source_name, target_name))
        copied = await self._copy(ctx, snapshot, source_name, target_name)
        stats, damaged, group = copied.stats, copied.damaged, copied.group
        counts = counts_of(copied, ctx.attempt)
        for line in damaged[:100]:
            await ctx.warn(f"damaged in the target repository: {line}", obj=group)
        how = "same repository: nothing to copy" if stats.same_repository else summary(stats, ctx.attempt)
        body = {
            "snapshot": group,
            "source": source_name or "default",
            "target": target_name or "default",
            "summary": how,
            "counts": counts,
            "damaged": damaged,
        }
        await ctx.emit(
            Report(
                request_id=ctx.request_id,
                step=StepName.TRANSFER,
                title="transfer",
                document=DocumentKind.TRANSFER,
                body=body,
            )
        )
        message = how if not damaged else f"{len(damaged)} file(s) damaged in the target repository; {how}"
        result = StepResult(
            outputs={"snapshot": group, "target_repository": target_name or "default"},
            counts=counts,
            warnings=damaged[:100],
            partial=bool(damaged),
            message=message,
            bytes_moved=stats.bytes_sent,
        )
        return Succeeded(result)

    async def _plan(self, ctx: StepContext, snapshot: str, source_name: str, target_name: str) -> StepResult:
        """A dry run: count what would be sent; the restore's dry run then reads the source repository."""

        def plan() -> tuple[str, TransferStats]:
            source = open_named(self.settings, source_name)
            try:
                target = source if target_name == source_name else open_named(self.settings, target_name)
            except PermanentError:
                target = None  # not created yet: everything would be sent
            group = resolve_group(source, snapshot)
            return group, plan_group(source, target, group)

        try:
            group, stats = await asyncio.to_thread(plan)
        except (RepositoryError, StoreError) as e:
            raise classify(e) from e
        counts = {
            "records": stats.records,
            "records_present": stats.records_present,
            "blobs_needed": stats.blobs_needed,
            "blobs_to_send": stats.blobs_sent,
            "bytes_to_send": stats.bytes_sent,
        }
        message = (
            f"dry run: would copy {stats.blobs_sent} chunk(s), {stats.bytes_sent} bytes, of "
            f"{stats.records - stats.records_present} record(s); nothing written"
        )
        await ctx.emit(
            Report(
                request_id=ctx.request_id,
                step=StepName.TRANSFER,
                title="transfer (dry run)",
                document=DocumentKind.TRANSFER,
                body={"snapshot": group, "counts": counts, "summary": message},
            )
        )
        return StepResult(
            outputs={"snapshot": group, "target_repository": source_name or "default"},
            counts=counts,
            message=message,
        )

    async def _copy(self, ctx: StepContext, snapshot: str, source_name: str, target_name: str) -> Copied:
        """Run the copy in a worker thread; report its progress and check for cancellation meanwhile.

        However the copy ends (done, cancelled, failed), it is stopped between packs and the bytes it
        sent are counted; an unclassified error is classified (``classify``).
        """
        stop = threading.Event()
        jobs: list[GroupCopy] = []
        progress: dict[str, Any] = {}  # the copy's latest TransferStats, as a dict (from its thread)
        counted = 0

        def count_sent() -> None:  # ferry_bytes_total grows with the copy, whatever its end
            nonlocal counted
            if jobs:
                sent = jobs[0].stats.bytes_sent
                ctx.count_bytes(sent - counted)
                counted = max(counted, sent)

        def run() -> Copied:
            return self._copy_group(snapshot, source_name, target_name, stop, jobs, progress.update)

        worker = asyncio.create_task(asyncio.to_thread(run), name=f"transfer:{ctx.request_id}")
        try:
            while not worker.done():
                await asyncio.wait({worker}, timeout=0.5)
                count_sent()
                if progress:
                    await ctx.progress(
                        bytes_done=int(progress.get("bytes_read", 0)),
                        bytes_total=int(progress.get("bytes_total", 0)),
                        items_done=int(progress.get("blobs_sent", 0)),
                        items_total=int(progress.get("blobs_needed", 0)),
                        message="copying chunks the target repository lacks",
                    )
                await ctx.checkpoint()
            copied = worker.result()
        except BaseException as e:
            stop.set()  # the copy stops between packs and indexes what it uploaded
            with contextlib.suppress(BaseException):
                await asyncio.shield(worker)
            count_sent()
            if not isinstance(e, Exception) or isinstance(e, FerryError):
                raise  # cancellation, shutdown, or already classified
            raise classify(e) from e
        count_sent()
        return copied

    def _copy_group(
        self,
        snapshot: str,
        source_name: str,
        target_name: str,
        stop: threading.Event,
        jobs: list[GroupCopy],
        report: Callable[[dict[str, Any]], None],
    ) -> Copied:
        """Blocking: copy the snapshot's group into the target (created like the source if need be),
        then read every blob of it back (``options.verify``)."""
        source = open_named(self.settings, source_name)
        target = source if target_name == source_name else open_named(self.settings, target_name, like=source)
        group = resolve_group(source, snapshot)
        job = GroupCopy(
            source,
            target,
            group,
            threads=self.options.threads,
            limit=self.options.limit_kib * 1024 or None,
            progress=lambda s: report(asdict(s)),
            stop=stop,
        )
        jobs.append(job)
        stats = job.run()
        damaged: list[str] = []
        checked = {"verified_blobs": 0, "verified_bytes": 0}
        if self.options.verify:
            target.reload_index()
            check = verify_group(target, group, threads=self.options.threads, stop=stop)
            damaged = check.lines()
            checked = {"verified_blobs": check.blobs, "verified_bytes": check.bytes_read}
        return Copied(group, stats, damaged, checked)
