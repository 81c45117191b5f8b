"""The catalog on the bus: ``ferry.snapshots.list|describe|delete|retain`` answered by the snapshot service.

Each replica of the snapshot service answers in one queue group, so any number of replicas share
the calls. The work is the blocking ``catalog`` functions, run in a thread; repositories are opened
once per name and kept (opening derives the key with scrypt, which is slow on purpose), and calls
on one repository are serialized. Failures answer a ``Rejected`` document (the gateway maps its
``code`` onto an HTTP status): ``invalid`` for a bad query, ``not-found`` for an unknown snapshot,
``unavailable`` when the repository cannot be reached.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Awaitable, Callable
from typing import Any

import msgspec

from services.snapshot import catalog
from shared.bus.micro import MicroService, Request
from shared.contracts import snapshots as c
from shared.contracts import subjects
from shared.contracts.errors import PermanentError
from shared.contracts.states import Rejected
from shared.repository import Repository, RepositoryError, SnapshotNotFound
from shared.runtime.repositories import open_repository
from shared.runtime.settings import Settings

log = logging.getLogger("ferry.snapshot")
QUEUE = "ferry-snapshot-catalog"
_ids = msgspec.json.Decoder(dict[str, str])


class CatalogEndpoints:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._repos: dict[str, tuple[Repository, threading.Lock]] = {}
        self._open_lock = threading.Lock()

    async def register(self, micro: MicroService) -> None:
        handlers: dict[str, tuple[str, Callable[[Request], Awaitable[None]]]] = {
            "snapshots-list": (subjects.SNAPSHOTS_LIST, self._list),
            "snapshots-describe": (subjects.SNAPSHOTS_DESCRIBE, self._describe),
            "snapshots-delete": (subjects.SNAPSHOTS_DELETE, self._delete),
            "snapshots-retain": (subjects.SNAPSHOTS_RETAIN, self._retain),
        }
        for name, (subject, handler) in handlers.items():
            await micro.add_endpoint(name=name, subject=subject, handler=handler, queue_group=QUEUE)

    def _repo(self, name: str) -> tuple[Repository, threading.Lock]:
        with self._open_lock:
            key = name or "default"
            if key not in self._repos:
                self._repos[key] = (open_repository(self.settings, name, create=False), threading.Lock())
            return self._repos[key]

    async def _call(self, req: Request, repository: str, work: Callable[[Repository], Any]) -> None:
        def run() -> Any:
            repo, lock = self._repo(repository)
            with lock:
                return work(repo)

        try:
            result = await asyncio.to_thread(run)
        except SnapshotNotFound as e:
            await req.respond(c.encoder.encode(Rejected(error=str(e), field="id", code="not-found")))
            return
        except PermanentError as e:
            await req.respond(c.encoder.encode(Rejected(error=str(e), code="invalid")))
            return
        except (RepositoryError, OSError) as e:
            log.warning("catalog call failed: %s", e)
            code = (
                "not-found"
                if "not found" in str(e).lower() or "no repository" in str(e).lower()
                else "unavailable"
            )
            await req.respond(
                c.encoder.encode(Rejected(error=f"repository {repository or 'default'}: {e}", code=code))
            )
            return
        await req.respond(c.encoder.encode(result))

    @staticmethod
    def _target(data: bytes) -> tuple[str, str]:
        """A raw snapshot id, or ``{"id": ..., "repository": ...}``."""
        text = data.decode(errors="replace").strip()
        if text.startswith("{"):
            doc = _ids.decode(data)
            return doc.get("id", ""), doc.get("repository", "")
        return text, ""

    async def _reject(self, req: Request, error: str, field: str = "") -> None:
        await req.respond(c.encoder.encode(Rejected(error=error, field=field, code="invalid")))

    async def _list(self, req: Request) -> None:
        try:
            query = c.query_decoder.decode(req.data or b"{}")
        except msgspec.DecodeError as e:
            await self._reject(req, f"not a snapshot query: {e}")
            return
        await self._call(
            req,
            query.repository,
            lambda repo: c.SnapshotList(
                items=catalog.list_snapshots(repo, query, query.repository or "default")
            ),
        )

    async def _describe(self, req: Request) -> None:
        try:
            snapshot_id, repository = self._target(req.data)
        except msgspec.DecodeError as e:
            await self._reject(req, f"not a snapshot id: {e}", "id")
            return
        await self._call(
            req, repository, lambda repo: catalog.describe(repo, snapshot_id, repository or "default")
        )

    async def _delete(self, req: Request) -> None:
        try:
            snapshot_id, repository = self._target(req.data)
        except msgspec.DecodeError as e:
            await self._reject(req, f"not a snapshot id: {e}", "id")
            return
        await self._call(req, repository, lambda repo: catalog.delete(repo, snapshot_id))

    async def _retain(self, req: Request) -> None:
        try:
            query = c.retention_decoder.decode(req.data or b"{}")
        except msgspec.DecodeError as e:
            await self._reject(req, f"not a retention query: {e}")
            return
        await self._call(req, query.repository, lambda repo: catalog.retain(repo, query))

    def close(self) -> None:
        for repo, _ in self._repos.values():
            repo.close()
        self._repos.clear()
