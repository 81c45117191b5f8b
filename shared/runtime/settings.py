"""Settings from an optional TOML file (``FERRY_CONFIG``) overlaid with ``FERRY_*`` env vars.

Env names map onto fields: ``FERRY_NATS_URL`` -> ``nats.url``, ``FERRY_S3_ENDPOINT`` -> ``s3.endpoint``,
``FERRY_HTTP_PORT`` -> ``http_port``; ``FERRY_REPOSITORIES=east=s3://a/x,west=s3://b/x`` names one
repository per region. msgspec converts and validates, so a bad value is refused with
the name of the setting, before a service starts.

``load`` is the one env reader: ``Settings`` here, and the options a service reads on its own
(``FERRY_TRANSFER_*``, ``FERRY_RESTORE_*``) with the same conversion and the same errors.
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any, Literal, TypeVar

import msgspec

from shared.bus.connecting import BusSettings
from shared.contracts.errors import PermanentError, json_path


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

S = TypeVar("S", bound=msgspec.Struct)
# Turns one env var's text into the value to convert, for a field plain text cannot spell:
# (the variable's name, for the error, and its value) -> the field's data.
Parser = Callable[[str, str], Any]


def _env_data(
    fields: Iterable[str],
    env: Mapping[str, str],
    prefix: str,
    sections: Mapping[str, str],
    parsers: Mapping[str, Parser],
) -> tuple[dict[str, Any], dict[str, str]]:
    """The ``prefix``-ed env vars as a struct's data, and which variable set which path.

    ``PREFIX_HTTP_PORT`` -> ``http_port``; with ``sections={"NATS": "nats"}``, ``PREFIX_NATS_URL`` ->
    ``nats.url``. Names that are no field of the struct are left out (another reader's).
    """
    known = set(fields)
    data: dict[str, Any] = {}
    origin: dict[str, str] = {}
    for key, value in env.items():
        if not key.startswith(prefix):
            continue
        name = key[len(prefix) :]
        section, _, rest = name.partition("_")
        if section in sections and rest:
            field = sections[section]
            if field in known:
                data.setdefault(field, {})[rest.lower()] = value
                origin[f"{field}.{rest.lower()}"] = key
        elif (field := name.lower()) in known:
            data[field] = parsers[field](key, value) if field in parsers else value
            origin[field] = key
    return data, origin


def _paths(data: Mapping[str, Any], under: str = "") -> set[str]:
    """Every path a nested mapping sets (``{"nats": {"url": 1}}`` -> ``nats``, ``nats.url``)."""
    found: set[str] = set()
    for key, value in data.items():
        path = f"{under}{key}"
        found.add(path)
        if isinstance(value, Mapping):
            found |= _paths(value, f"{path}.")
    return found


def _named(error: msgspec.ValidationError, origin: Mapping[str, str]) -> str:
    """The env var that set the value msgspec refused, or "" when it came from elsewhere."""
    path = json_path(error).removeprefix("$.")
    for candidate in sorted(origin, key=len, reverse=True):
        if path == candidate or path.startswith((f"{candidate}.", f"{candidate}[")):
            return origin[candidate]
    return ""


def load(
    struct_type: type[S],
    env: Mapping[str, str] | None = None,
    prefix: str = "FERRY_",
    *,
    sections: Mapping[str, str] | None = None,
    parsers: Mapping[str, Parser] | None = None,
    defaults: Mapping[str, Any] | None = None,
    overrides: Mapping[str, Any] | None = None,
    what: str = "setting",
) -> S:
    """A msgspec Struct from ``prefix``-ed env vars: the one way Ferry reads its configuration.

    Each field ``x`` is read from ``<prefix>X`` (a nested Struct field from ``<prefix><SECTION>_X``,
    ``sections`` naming them), converted from text by msgspec (``strict=False``: "8080" is an int,
    "false" a bool); ``parsers`` handle a field plain text cannot spell. The env overlays ``defaults``
    (a settings file), ``overrides`` overlay both; every other field keeps its default. A bad value
    is refused with a ``PermanentError`` naming the variable (``invalid setting FERRY_HTTP_PORT: ...``).
    """
    env = os.environ if env is None else env
    fields = struct_type.__struct_fields__
    env_data, origin = _env_data(fields, env, prefix, sections or {}, parsers or {})
    data = _merge(dict(defaults or {}), env_data)
    if overrides:
        data = _merge(data, dict(overrides))
        origin = {path: var for path, var in origin.items() if path not in _paths(overrides)}
    try:
        return msgspec.convert(data, struct_type, strict=False)
    except msgspec.ValidationError as e:
        var = _named(e, origin)
        raise PermanentError(f"invalid {what} {var}: {e}" if var else f"invalid {what}: {e}") from e


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
    """The service's Settings: the ``FERRY_CONFIG`` TOML file, overlaid with ``FERRY_*`` env vars."""
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
    return load(
        Settings,
        env,
        "FERRY_",
        sections=_SECTIONS,
        parsers={"repositories": _pairs},
        defaults=data,
        overrides=overrides,
    )
