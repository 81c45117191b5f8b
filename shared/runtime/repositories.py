"""Open the repository a request names, from the service's settings.

A request names repositories by name (``source.repository``, ``target.repository``; empty means
the default). Settings map names to URLs (``repositories = {east = "s3://ferry-east/apps"}``) and
give the S3 endpoint/credentials and the repository password. A repository that does not exist yet
is created on first use, as Velero does with its backup repositories. Blocking: call it through
``asyncio.to_thread``.
"""

from __future__ import annotations

from shared.contracts.errors import PermanentError
from shared.repository import Repository, RepositoryExists, RepositoryNotFound, WrongKey
from shared.runtime.settings import Settings
from shared.store import S3Settings, open_store


def repository_url(settings: Settings, name: str = "") -> str:
    if not name or name == "default":
        if settings.repository:
            return settings.repository
        if "default" in settings.repositories:
            return settings.repositories["default"]
        raise PermanentError(
            "no default repository configured (set FERRY_REPOSITORY or [repositories] default)"
        )
    try:
        return settings.repositories[name]
    except KeyError:
        known = ", ".join(sorted(settings.repositories)) or "none"
        raise PermanentError(f"unknown repository {name!r} (configured: {known})") from None


def store_settings(settings: Settings) -> S3Settings:
    s3 = settings.s3
    return S3Settings(
        bucket="",
        endpoint=s3.endpoint or None,
        region=s3.region,
        access_key=s3.access_key or None,
        secret_key=s3.secret_key or None,
        path_style=s3.path_style,
        ca_bundle=s3.ca_bundle or None,
    )


def open_repository(settings: Settings, name: str = "", *, create: bool = True) -> Repository:
    """The named repository, opened with the configured password (created if missing and allowed)."""
    if not settings.repo_password:
        raise PermanentError("no repository password configured (FERRY_REPO_PASSWORD)")
    url = repository_url(settings, name)
    store = open_store(url, store_settings(settings))
    password = settings.repo_password.encode()
    try:
        return Repository.open(store, password)
    except RepositoryNotFound:
        if not create:
            raise
        try:
            return Repository.init(store, password)
        except RepositoryExists:  # another replica created it first
            return Repository.open(store, password)
    except WrongKey as e:
        raise PermanentError(f"repository {name or 'default'} at {url}: {e}") from e
