"""The gateway's configuration and its bearer tokens: hashed at rest, compared in constant time.

Tokens come from ``gateway_tokens`` in the settings (``FERRY_GATEWAY_TOKENS``): a JSON list of
``{"sha256": "<hex digest of the token>", "scopes": ["read", "submit", "admin"], "name": "ci"}``.
The gateway never sees a token in clear except in a request header; it hashes what it is given and
compares against every configured digest with ``hmac.compare_digest`` (no early exit, so the time
taken does not tell which digest came close). The port and the insecure dev switch are gateway-only
settings read from the environment (``FERRY_GATEWAY_PORT``, ``FERRY_GATEWAY_INSECURE``,
``FERRY_GATEWAY_MAX_BODY``, ``FERRY_GATEWAY_MAX_STREAMS``: ``GatewayEnv``) by the one env reader,
``shared.runtime.settings.load``, so shared settings stay the lead's.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Annotated, Any

import msgspec

from shared.contracts.errors import PermanentError, json_path
from shared.runtime import Settings
from shared.runtime.settings import load

DEFAULT_PORT = 8081
DEFAULT_MAX_BODY = 1024 * 1024  # 1 MiB: a mobility request is a few kB, resource modifiers included
DEFAULT_MAX_STREAMS = 500


class Scope(StrEnum):
    READ = "read"  # list, get, follow events, snapshots, clusters
    SUBMIT = "submit"  # submit and cancel requests
    ADMIN = "admin"  # everything, including deleting snapshots


class TokenEntry(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    sha256: Annotated[str, msgspec.Meta(pattern=r"^[0-9a-f]{64}$")]
    scopes: list[Scope]
    name: str = ""


_tokens = msgspec.json.Decoder(list[TokenEntry])


def hash_token(token: str) -> str:
    """The digest to configure for a token: ``printf %s TOKEN | sha256sum``."""
    return hashlib.sha256(token.encode()).hexdigest()


def parse_tokens(text: str) -> list[TokenEntry]:
    """Decode FERRY_GATEWAY_TOKENS; an error names the entry and field, never a value."""
    if not text.strip():
        return []
    try:
        return _tokens.decode(text)
    except msgspec.ValidationError as e:
        where = json_path(e) or "$"
        raise PermanentError(
            f"FERRY_GATEWAY_TOKENS: invalid entry at {where}: expected "
            '{"sha256": "<64 lowercase hex>", "scopes": ["read"|"submit"|"admin", ...]}'
        ) from None
    except msgspec.DecodeError:
        raise PermanentError("FERRY_GATEWAY_TOKENS is not valid JSON") from None


@dataclass(frozen=True)
class Identity:
    """Who called: the token's name (for logs) and what it may do."""

    name: str
    scopes: frozenset[Scope]

    def allows(self, needed: frozenset[Scope]) -> bool:
        """Admin may do anything; an empty ``needed`` means any valid token."""
        if not needed:
            return True
        return Scope.ADMIN in self.scopes or bool(self.scopes & needed)


ANONYMOUS_ADMIN = Identity("insecure-dev", frozenset(Scope))


@dataclass(frozen=True)
class Tokens:
    entries: tuple[TokenEntry, ...]

    def identify(self, presented: str) -> Identity | None:
        digest = hash_token(presented).encode()
        found: TokenEntry | None = None
        for entry in self.entries:  # compare with every entry: the time does not depend on the match
            if hmac.compare_digest(digest, entry.sha256.encode()):
                found = entry
        if found is None:
            return None
        return Identity(found.name or found.sha256[:8], frozenset(found.scopes))


class GatewayEnv(msgspec.Struct, frozen=True, kw_only=True):
    """The gateway-only settings, each from ``FERRY_GATEWAY_<NAME>`` (``shared.runtime.settings.load``)."""

    host: str | None = None  # None: FERRY_HTTP_HOST
    port: int = DEFAULT_PORT
    max_body: int = DEFAULT_MAX_BODY
    max_streams: int = DEFAULT_MAX_STREAMS
    insecure: bool = False


def _count(default: int) -> Callable[[str, str], int]:
    """A parser of a size or a port: empty is the default; a word or a negative number is refused."""

    def parse(name: str, value: str) -> int:
        if not value:
            return default
        try:
            number = int(value)
        except ValueError:
            raise PermanentError(f"{name} must be an integer") from None
        if number < 0:
            raise PermanentError(f"{name} must not be negative")
        return number

    return parse


_PARSERS: dict[str, Callable[[str, str], Any]] = {
    "port": _count(DEFAULT_PORT),
    "max_body": _count(DEFAULT_MAX_BODY),
    "max_streams": _count(DEFAULT_MAX_STREAMS),
    "insecure": lambda _, value: value.lower() in ("1", "true", "yes"),  # anything else: a safe no
}


@dataclass(frozen=True)
class GatewayConfig:
    tokens: Tokens
    host: str = "0.0.0.0"
    port: int = DEFAULT_PORT
    max_body: int = DEFAULT_MAX_BODY
    insecure: bool = False  # no token check at all: local development only
    max_streams: int = DEFAULT_MAX_STREAMS  # open event streams per replica (each holds a consumer)
    kubeconfig: str = ""
    extra: dict[str, str] = field(default_factory=dict)

    @classmethod
    def load(cls, settings: Settings, env: Mapping[str, str] | None = None) -> GatewayConfig:
        """Read the gateway's settings; refuse a gateway that would accept anyone by accident."""
        own = load(GatewayEnv, env, "FERRY_GATEWAY_", parsers=_PARSERS, what="gateway setting")
        tokens = parse_tokens(settings.gateway_tokens)
        if not tokens and not own.insecure:
            raise PermanentError(
                "the gateway has no tokens configured: set FERRY_GATEWAY_TOKENS to a JSON list of "
                '{"sha256": "...", "scopes": [...]} (see docs/security.md), or set '
                "FERRY_GATEWAY_INSECURE=1 for local development only"
            )
        return cls(
            tokens=Tokens(tuple(tokens)),
            host=settings.http_host if own.host is None else own.host,
            port=own.port,
            max_body=own.max_body,
            insecure=own.insecure,
            max_streams=own.max_streams,
            kubeconfig=settings.kubeconfig,
        )
