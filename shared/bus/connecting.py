"""Connect to NATS with reconnects and the auth the settings name (user/password, token, creds, NKey, TLS).

The client reconnects forever with a bounded wait: a NATS restart pauses Ferry, it does not kill it.
``url`` may list several servers of one cluster (comma-separated): the client connects to any that
answers and, when that one goes away, reconnects to another (it also learns the cluster's other
servers from the one it reached), so losing a node of a cluster costs a reconnect, not an outage.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import ssl
from pathlib import Path
from typing import Annotated, Any

import msgspec
import nats
from nats.aio.client import Client

from shared.contracts.errors import PermanentError, TemporaryError

log = logging.getLogger("ferry.bus")


# Copies JetStream keeps of every stream, KV bucket and object store (FERRY_BUS_REPLICAS): 1 for one
# server, 3 for a three-node cluster (survives the loss of one node); JetStream allows at most 5.
Replicas = Annotated[int, msgspec.Meta(ge=1, le=5)]


class BusSettings(msgspec.Struct, kw_only=True, frozen=True):
    url: str = "nats://127.0.0.1:4222"  # comma-separated for a cluster: nats://a:4222,nats://b:4222
    user: str = ""
    password: str = ""
    token: str = ""
    creds: str = ""  # path to a .creds file (JWT + NKey seed)
    nkey_seed: str = ""  # path to an NKey seed file
    tls_ca: str = ""
    tls_cert: str = ""
    tls_key: str = ""
    name: str = "ferry"
    connect_timeout: float = 5.0
    replicas: Replicas = 1  # of every stream, KV bucket and object store (shared/bus/topology.py)

    @property
    def servers(self) -> list[str]:
        """The servers ``url`` lists, in order."""
        return [s.strip() for s in self.url.split(",") if s.strip()]

    def tls_context(self) -> ssl.SSLContext | None:
        if not (self.tls_ca or self.tls_cert or any(s.startswith("tls://") for s in self.servers)):
            return None
        context = ssl.create_default_context(cafile=self.tls_ca or None)
        if self.tls_cert:
            context.load_cert_chain(self.tls_cert, self.tls_key or None)
        return context


def _check_file(kind: str, path: str) -> str | None:
    if not path:
        return None
    if not Path(path).is_file():
        raise PermanentError(f"NATS {kind} file {path!r} does not exist")
    return path


def _is_auth_error(error: BaseException) -> bool:
    text = str(error).lower()
    return "authorization" in text or "authentication" in text or "permissions violation" in text


async def connect(settings: BusSettings, *, max_reconnects: int = -1, within: float = 30.0) -> Client:
    """A connected client. A refused credential is permanent (nats-py would retry it forever); no
    server answering within ``within`` seconds is temporary. Once connected, it reconnects forever."""
    auth_refused: asyncio.Future[BaseException] = asyncio.get_running_loop().create_future()

    async def on_error(e: Exception) -> None:
        if _is_auth_error(e) and not auth_refused.done():
            auth_refused.set_result(e)
        log.warning("nats error: %s", e)

    async def on_disconnect() -> None:
        log.warning("disconnected from nats")

    async def on_reconnect() -> None:
        log.info("reconnected to nats")

    options: dict[str, object] = {
        "servers": settings.servers,
        "name": settings.name,
        "connect_timeout": settings.connect_timeout,
        "max_reconnect_attempts": max_reconnects,
        "reconnect_time_wait": 1,
        "allow_reconnect": True,
        "error_cb": on_error,
        "disconnected_cb": on_disconnect,
        "reconnected_cb": on_reconnect,
    }
    if settings.user:
        options["user"], options["password"] = settings.user, settings.password
    if settings.token:
        options["token"] = settings.token
    if creds := _check_file("creds", settings.creds):
        options["user_credentials"] = creds
    if seed := _check_file("nkey seed", settings.nkey_seed):
        options["nkeys_seed"] = seed
    if tls := settings.tls_context():
        options["tls"] = tls
    attempt: asyncio.Future[Client] = asyncio.ensure_future(nats.connect(**options))  # type: ignore[arg-type]
    racing: set[asyncio.Future[Any]] = {attempt, auth_refused}
    done, _ = await asyncio.wait(racing, timeout=within, return_when=asyncio.FIRST_COMPLETED)
    if attempt in done:
        auth_refused.cancel()
        try:
            return attempt.result()
        except nats.errors.NoServersError as e:
            raise TemporaryError(f"no NATS server answers at {settings.url}") from e
        except (OSError, TimeoutError, nats.errors.TimeoutError) as e:
            raise TemporaryError(f"cannot reach NATS at {settings.url}: {e}") from e
        except nats.errors.Error as e:
            if _is_auth_error(e):
                raise PermanentError(f"NATS at {settings.url} refused Ferry's credentials: {e}") from e
            raise TemporaryError(f"NATS at {settings.url}: {e}") from e
    attempt.cancel()
    with contextlib.suppress(BaseException):
        await attempt
    if auth_refused.done() and not auth_refused.cancelled():
        raise PermanentError(f"NATS at {settings.url} refused Ferry's credentials: {auth_refused.result()}")
    auth_refused.cancel()
    raise TemporaryError(f"no NATS server answered at {settings.url} within {within:.0f}s")
