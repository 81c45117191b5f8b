"""Settings from an optional TOML file (``FERRY_CONFIG``) overlaid with ``FERRY_*`` env vars.

Env names map onto fields: ``FERRY_NATS_URL`` -> ``nats.url``, ``FERRY_S3_ENDPOINT`` -> ``s3.endpoint``,
``FERRY_HTTP_PORT`` -> ``http_port``; ``FERRY_REPOSITORIES=east=s3://a/x,west=s3://b/x`` names one
repository per region. msgspec converts and validates, so a bad value is refused with
the name of the setting, before a service starts.
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

import msgspec

from shared.bus.connecting import BusSettings
from shared.contracts.errors import PermanentError


class S3Settings(msgspec.Struct, kw_only=True, frozen=True):
    endpoint: str = ""  # empty: AWS
    region: str = "us-east-1"
    access_key: str = ""
    secret_key: str = ""
    ca_bundle: str = ""
    path_style: bool = True


class RepositoryLocation(msgspec.Struct, kw_only=True, frozen=True, forbid_unknown_fields=True):
    """One region's repository: its URL and, where they differ from ``[s3]``, its own S3 endpoint and
    credentials (another region, another cloud). Empty fields take the ``[s3]`` values."""

    url: str
    endpoint: str = ""
    region: str = ""
    access_key: str = ""
    secret_key: str = ""
    ca_bundle: str = ""
    path_style: bool | None = None


class Settings(msgspec.Struct, kw_only=True, frozen=True):
    nats: BusSettings = msgspec.field(default_factory=BusSettings)
    s3: S3Settings = msgspec.field(default_factory=S3Settings)
    http_host: str = "0.0.0.0"
    http_port: int = 8080  # /healthz, /readyz, /metrics; 0 picks a free port
    log_level: str = "INFO"
    log_format: Literal["json", "text"] = "json"
    kubeconfig: str = ""  # contexts are cluster names; empty: in-cluster or ~/.kube/config
    repository: str = ""  # default repository URL: s3://bucket/prefix or a directory
    # name -> URL, or a table with its own S3 endpoint and credentials: one per region
    repositories: dict[str, str | RepositoryLocation] = msgspec.field(default_factory=dict)
    repo_password: str = ""
    image: str = "ghcr.io/ferry-dev/ferry:0.1.0"  # the image mover Jobs run
    concurrency: int = 2  # steps one replica runs at once
    max_attempts: int = 5
    # A killed replica's step is taken over within about max(ack_wait, lease) (docs/recovery.md):
    # heartbeats keep a healthy step's message three times per ack wait, renewals its lease four
    # times per lease, so neither has to be long.
    ack_wait: float = 5.0  # a message not acknowledged nor kept alive for this long is redelivered
    lease: float = 10.0  # a Running step whose owner stopped renewing is taken over after this
    drain_grace: float = 30.0
    mover_timeout: float = 3600.0  # one mover Job (FERRY_MOVER_TIMEOUT); restore: FERRY_RESTORE_MOVER_TIMEOUT
    gateway_tokens: str = ""

    def secrets(self) -> list[str]:
        """Values that must never appear in a log line."""
        values = [self.nats.password, self.nats.token, self.s3.secret_key, self.repo_password]
        values += [r.secret_key for r in self.repositories.values() if isinstance(r, RepositoryLocation)]
        return [v for v in values if v and len(v) >= 4]


_SECTIONS = {"NATS": "nats", "BUS": "nats", "S3": "s3"}  # FERRY_BUS_REPLICAS is nats.replicas
_SECTION_TYPES: dict[str, type[msgspec.Struct]] = {"nats": BusSettings, "s3": S3Settings}


def _from_env(env: Mapping[str, str]) -> dict[str, Any]:
    data: dict[str, Any] = {}
    for key, value in env.items():
        if not key.startswith("FERRY_") or key == "FERRY_CONFIG":
            continue
        name = key[len("FERRY_") :]
        section, _, rest = name.partition("_")
        if section in _SECTIONS and rest:
            data.setdefault(_SECTIONS[section], {})[rest.lower()] = value
        elif name == "REPOSITORIES":
            data["repositories"] = _pairs(key, value)
        else:
            data[name.lower()] = value
    return data


def _pairs(key: str, value: str) -> dict[str, Any]:
    """``east=s3://ferry-east/apps,west=s3://ferry-west/apps`` -> a name -> URL map; a JSON object
    (``{"west": {"url": ..., "endpoint": ..., "access_key": ...}}``) is taken as it is."""
    if value.lstrip().startswith("{"):
        try:
            decoded: dict[str, Any] = msgspec.json.decode(value, type=dict[str, Any])
        except msgspec.DecodeError as e:
            raise PermanentError(f"invalid setting {key}: not a JSON object ({e})") from None
        return decoded
    pairs: dict[str, Any] = {}
    for item in filter(None, (part.strip() for part in value.split(","))):
        name, sep, url = item.partition("=")
        if not sep or not name.strip() or not url.strip():
            raise PermanentError(f"invalid setting {key}: expected name=URL[,name=URL...], got {item!r}")
        pairs[name.strip()] = url.strip()
    return pairs


def _unknown_keys(data: Mapping[str, Any]) -> list[str]:
    """Keys of a settings file that no setting has: a typo there must not be silently ignored."""
    unknown = []
    for key, value in data.items():
        if key not in Settings.__struct_fields__:
            unknown.append(key)
        elif key in _SECTION_TYPES and isinstance(value, Mapping):
            known = _SECTION_TYPES[key].__struct_fields__
            unknown += [f"{key}.{inner}" for inner in value if inner not in known]
    return unknown


def _merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in over.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = _merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def load_settings(env: Mapping[str, str] | None = None, **overrides: Any) -> Settings:
    env = os.environ if env is None else env
    data: dict[str, Any] = {}
    if path := env.get("FERRY_CONFIG"):
        try:
            data = tomllib.loads(Path(path).read_text())
        except (OSError, tomllib.TOMLDecodeError) as e:
            raise PermanentError(f"settings file FERRY_CONFIG={path}: {e}") from e
        if unknown := _unknown_keys(data):
            raise PermanentError(
                f"settings file FERRY_CONFIG={path}: unknown setting(s) {', '.join(unknown)}"
            )
    known = set(Settings.__struct_fields__)
    env_data = {k: v for k, v in _from_env(env).items() if k in known}
    data = _merge(_merge(data, env_data), overrides)
    try:
        return msgspec.convert(data, Settings, strict=False)
    except msgspec.ValidationError as e:
        raise PermanentError(f"invalid setting: {e}") from e
