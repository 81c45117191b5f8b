"""Where the repository is and how to unlock it, from flags first, then environment variables.

A mover runs as a Kubernetes Job: the repository URL and S3 settings come as flags or env vars, the
credentials and the repository password from a Secret mounted as env vars or files. Every setting
has one flag and one env var (listed in shared/mover/README.md); nothing is read from a config file.
"""

from __future__ import annotations

import argparse
import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from shared import durations

if TYPE_CHECKING:
    from shared.repository import RepositorySettings
    from shared.store import LocalStore, S3Store


class UsageError(Exception):
    """A missing or contradictory setting: the command line or the Job spec must change."""


@dataclass(frozen=True)
class Env:
    """The env var names, in one place (documented in the README)."""

    REPO = "FERRY_REPO"
    PASSWORD = "FERRY_REPO_PASSWORD"
    PASSWORD_FILE = "FERRY_REPO_PASSWORD_FILE"
    NEW_PASSWORD = "FERRY_NEW_REPO_PASSWORD"
    NEW_PASSWORD_FILE = "FERRY_NEW_REPO_PASSWORD_FILE"
    S3_ENDPOINT = "FERRY_S3_ENDPOINT"
    S3_REGION = "FERRY_S3_REGION"
    S3_ACCESS_KEY = "FERRY_S3_ACCESS_KEY"
    S3_SECRET_KEY = "FERRY_S3_SECRET_KEY"
    S3_SESSION_TOKEN = "FERRY_S3_SESSION_TOKEN"
    S3_CA_BUNDLE = "FERRY_S3_CA_BUNDLE"
    S3_INSECURE = "FERRY_S3_INSECURE"
    S3_VIRTUAL_HOST = "FERRY_S3_VIRTUAL_HOST"
    NATS_URL = "FERRY_NATS_URL"
    REQUEST_ID = "FERRY_REQUEST_ID"
    CACHE_DIR = "FERRY_CACHE_DIR"


def _flag(value: str | None, env: str, default: str = "") -> str:
    return value if value not in (None, "") else os.environ.get(env, default)


def _true(value: str) -> bool:
    return value.strip().lower() in ("1", "true", "yes", "on")


def add_repository_options(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("repository")
    group.add_argument("--repo", "-r", help=f"s3://bucket/prefix or a directory (env {Env.REPO})")
    group.add_argument(
        "--password-file",
        help=f"file holding the repository password (env {Env.PASSWORD_FILE}, or {Env.PASSWORD})",
    )
    group.add_argument("--s3-endpoint", help=f"S3 endpoint URL; empty for AWS (env {Env.S3_ENDPOINT})")
    group.add_argument("--s3-region", help=f"S3 region, default us-east-1 (env {Env.S3_REGION})")
    group.add_argument("--s3-ca-bundle", help=f"CA bundle for the S3 endpoint's TLS (env {Env.S3_CA_BUNDLE})")
    group.add_argument(
        "--s3-insecure",
        action="store_true",
        default=None,
        help=f"skip TLS verification (env {Env.S3_INSECURE}=1)",
    )
    group.add_argument(
        "--s3-virtual-host",
        action="store_true",
        default=None,
        help=f"virtual-hosted style instead of path style (env {Env.S3_VIRTUAL_HOST}=1)",
    )
    group.add_argument(
        "--cache-dir",
        help=f"the mover's cache (the key's scrypt salt, copies of index files and snapshot records); 'off' "
        f"for none (env {Env.CACHE_DIR}, default ~/.cache/ferry)",
    )


def read_secret(file_flag: str | None, file_env: str, value_env: str, what: str) -> bytes:
    path = _flag(file_flag, file_env)
    if path:
        try:
            secret = Path(path).read_bytes().rstrip(b"\r\n")
        except OSError as e:
            raise UsageError(f"cannot read the {what} file {path}: {e.strerror}") from e
        if not secret:
            raise UsageError(f"the {what} file {path} is empty")
        return secret
    if value := os.environ.get(value_env):
        return value.encode()
    raise UsageError(f"no {what}: pass --password-file or set {value_env} / {file_env}")


def password(args: argparse.Namespace) -> bytes:
    return read_secret(args.password_file, Env.PASSWORD_FILE, Env.PASSWORD, "repository password")


def repository_url(args: argparse.Namespace) -> str:
    return _flag(args.repo, Env.REPO)


def s3_endpoint(args: argparse.Namespace) -> str | None:
    return _flag(args.s3_endpoint, Env.S3_ENDPOINT) or None


def open_repository_store(args: argparse.Namespace, url: str | None = None) -> LocalStore | S3Store:
    from shared.store import RetryPolicy, S3Settings, open_store

    url = url or repository_url(args)
    if not url:
        raise UsageError(f"no repository: pass --repo s3://bucket/prefix or a path, or set {Env.REPO}")
    if not url.startswith("s3://"):
        return open_store(url)
    access = os.environ.get(Env.S3_ACCESS_KEY) or os.environ.get("AWS_ACCESS_KEY_ID")
    secret = os.environ.get(Env.S3_SECRET_KEY) or os.environ.get("AWS_SECRET_ACCESS_KEY")
    settings = S3Settings(
        bucket="",
        endpoint=s3_endpoint(args),
        region=_flag(args.s3_region, Env.S3_REGION, "us-east-1"),
        access_key=access,
        secret_key=secret,
        session_token=os.environ.get(Env.S3_SESSION_TOKEN) or os.environ.get("AWS_SESSION_TOKEN"),
        path_style=not (args.s3_virtual_host or _true(os.environ.get(Env.S3_VIRTUAL_HOST, ""))),
        verify_tls=not (args.s3_insecure or _true(os.environ.get(Env.S3_INSECURE, ""))),
        ca_bundle=_flag(args.s3_ca_bundle, Env.S3_CA_BUNDLE) or None,
        retry=RetryPolicy(),
    )
    return open_store(url, settings)


def parse_tags(values: list[str] | None) -> dict[str, str]:
    tags = {}
    for value in values or []:
        key, sep, val = value.partition("=")
        if not sep or not key:
            raise UsageError(f"a tag is key=value, got {value!r}")
        tags[key] = val
    return tags


def parse_duration(value: str) -> float:
    """'90s', '30m', '12h', '7d', '2w' -> seconds (``shared.durations``), as a usage error."""
    try:
        return durations.seconds(value)
    except ValueError as e:
        raise UsageError(str(e)) from None


def job_env(settings: RepositorySettings, *, password_file: str | None = None) -> dict[str, str]:
    """The env vars a mover Job needs to reach ``settings``' repository (services build Jobs with it).

    With ``password_file`` (where the Job mounts the password Secret) the password itself stays out
    of the env; otherwise it is passed as ``FERRY_REPO_PASSWORD`` (put it in a Secret, not a spec).
    """
    env = {Env.REPO: settings.url}
    if password_file:
        env[Env.PASSWORD_FILE] = password_file
    else:
        env[Env.PASSWORD] = settings.password.decode()
    s3 = settings.s3
    if s3 is not None:
        optional = {
            Env.S3_ENDPOINT: s3.endpoint,
            Env.S3_REGION: s3.region,
            Env.S3_ACCESS_KEY: s3.access_key,
            Env.S3_SECRET_KEY: s3.secret_key,
            Env.S3_SESSION_TOKEN: s3.session_token,
            Env.S3_CA_BUNDLE: s3.ca_bundle,
            Env.S3_INSECURE: "" if s3.verify_tls else "1",
            Env.S3_VIRTUAL_HOST: "" if s3.path_style else "1",
        }
        env |= {name: value for name, value in optional.items() if value}
    return env
