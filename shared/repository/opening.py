"""Opening a repository from settings: the one call services make before any repository operation.

Services hold the repository location, S3 settings and password (read from their config and a
Secret) in a ``RepositorySettings``; ``open_repository`` turns it into an open ``Repository``, and
``shared.mover.settings.job_env`` turns the same settings into the env vars of a mover Job, so the
service and the Jobs it starts can never disagree about where the data is.

Everything here blocks (it reads the store and runs scrypt): from async code,
``await asyncio.to_thread(open_repository, settings)``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from shared.repository.errors import RepositoryExists, RepositoryNotFound
from shared.repository.repo import Repository
from shared.store import S3Settings, open_store


@dataclass(frozen=True)
class RepositorySettings:
    """Where a repository is and how to open it.

    ``url`` is ``s3://bucket/prefix`` or a directory; ``s3`` carries endpoint, region, credentials,
    path style and TLS for S3 URLs (its bucket and prefix are taken from ``url``).
    """

    url: str
    password: bytes = field(repr=False)
    s3: S3Settings | None = None

    def describe(self) -> str:
        endpoint = f" at {self.s3.endpoint}" if self.s3 and self.s3.endpoint else ""
        return f"{self.url}{endpoint}"


def open_repository(
    settings: RepositorySettings, *, create: bool = False, like: Repository | None = None
) -> Repository:
    """Open the repository; with ``create``, initialise it first when it does not exist yet.

    ``like`` (only used when creating) shares another repository's chunk-id key, so that
    ``copy_group`` between the two sends only the chunks the new one lacks.
    """
    store = open_store(settings.url, settings.s3)
    try:
        return Repository.open(store, settings.password)
    except RepositoryNotFound:
        if not create:
            raise
    try:
        return Repository.init(store, settings.password, like=like)
    except RepositoryExists:  # another replica created it between our open and our init
        return Repository.open(store, settings.password)
