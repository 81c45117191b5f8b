"""Open the repository a request names, from the service's settings.

A request names repositories by name (``source.repository``, ``target.repository``; empty means
the default). Settings map names to URLs (``repositories = {east = "s3://ferry-east/apps"}``), or
to tables with a repository's own S3 endpoint and credentials (another region, another cloud), and
give the shared S3 endpoint/credentials and the repository password. A repository that does not exist yet
is created on first use, as Velero does with its backup repositories. Blocking: call it through
``asyncio.to_thread``.
"""

from __future__ import annotations

import msgspec

from shared.contracts.errors import PermanentError
from shared.repository import Repository, RepositoryExists, RepositoryNotFound, WrongKey
from shared.runtime.settings import RepositoryLocation, Settings
from shared.runtime.settings import S3Settings as S3Config
from shared.store import S3Settings, open_store


def _location(settings: Settings, name: str) -> str | RepositoryLocation:
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


def repository_url(settings: Settings, name: str = "") -> str:
    location = _location(settings, name)
    return location if isinstance(location, str) else location.url


def repository_s3(settings: Settings, name: str = "") -> S3Config:
    """The S3 settings of the named repository: ``[s3]``, overridden by the repository's own."""
    location = _location(settings, name)
    if isinstance(location, str):
        return settings.s3
    own = {
        "endpoint": location.endpoint,
        "region": location.region,
        "access_key": location.access_key,
        "secret_key": location.secret_key,
        "ca_bundle": location.ca_bundle,
    }
    changes: dict[str, object] = {k: v for k, v in own.items() if v}
    if location.path_style is not None:
        changes["path_style"] = location.path_style
    return msgspec.structs.replace(settings.s3, **changes)


def for_repository(settings: Settings, name: str = "") -> Settings:
    """The settings a mover Job of the named repository gets: ``s3`` is that repository's."""
    return msgspec.structs.replace(settings, s3=repository_s3(settings, name))


def store_settings(settings: Settings, name: str = "") -> S3Settings:
    s3 = repository_s3(settings, name)
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
    store = open_store(url, store_settings(settings, name))
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
