"""Run a command in a pod's container through the API server (``pods/exec`` over WebSocket).

    result = await pod_exec(cluster, "shop", "db-0", ["sh", "-c", "sqlite3 /data/db '.backup ...'"],
                            container="db", within=30)
    result.exit_code, result.stdout, result.stderr, result.duration, result.timed_out

The remote-command protocol: the request upgrades to a WebSocket offering ``v5.channel.k8s.io``
then ``v4.channel.k8s.io`` (what kubectl 1.30+ and older servers speak); each binary message starts
with its channel (1 stdout, 2 stderr, 3 the ``Status`` that carries the exit code: ``Success``, or
``Failure`` with reason ``NonZeroExitCode`` and the code in ``details.causes``); stdin goes on
channel 0 and, in v5 only, is ended with ``[255, 0]``. The connection is opened on the cluster's own
``ApiClient`` session (its TLS context and proxy), signed like every other request (bearer token,
exec-plugin refresh), so exec needs nothing a cluster's other calls do not.

A timeout closes the stream: the result says ``timed_out`` with the output so far. The API server
ends the exec session; whether the container runtime kills the process is up to it (Velero's hook
timeout has the same limit), so a hook command should bound itself too. Failures to start the exec
are Ferry's ``KubeError``s (``NotFound``, ``Forbidden``, ``BadRequest``, ``Unreachable``...); a
command that cannot be started in the container (not found) raises ``ExecFailed``.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode, urlsplit, urlunsplit

import aiohttp

from shared.contracts.errors import PermanentError
from shared.kube.cluster import Cluster
from shared.kube.errors import ApiError, Unreachable, error_for

PROTOCOLS = ("v5.channel.k8s.io", "v4.channel.k8s.io")
STDIN, STDOUT, STDERR, ERROR, CLOSE = 0, 1, 2, 3, 255
OUTPUT_LIMIT = 1 << 20  # bytes kept per stream (the tail), so a chatty command cannot exhaust memory


class ExecFailed(ApiError, PermanentError):
    """The command could not run in the container (not found, container gone); ``message`` says why."""

    status = 500


@dataclass(frozen=True)
class ExecResult:
    """What one command did: exit code (None when the exec timed out), its output, how long it took."""

    exit_code: int | None
    stdout: str
    stderr: str
    duration: float
    timed_out: bool = False
    truncated: bool = False  # output beyond OUTPUT_LIMIT was dropped (its beginning)

    @property
    def ok(self) -> bool:
        return self.exit_code == 0


class _Tail:
    """The last ``limit`` bytes of a stream."""

    def __init__(self, limit: int) -> None:
        self.data = bytearray()
        self.limit = limit
        self.dropped = False

    def add(self, chunk: bytes) -> None:
        self.data += chunk
        if len(self.data) > self.limit:
            del self.data[: len(self.data) - self.limit]
            self.dropped = True

    def text(self) -> str:
        return self.data.decode(errors="replace")


def exit_code_of(status: dict[str, Any]) -> int:
    """The exit code a channel-3 ``Status`` reports (0 for Success); ExecFailed if it reports none."""
    if status.get("status") == "Success":
        return 0
    if status.get("reason") == "NonZeroExitCode":
        for cause in (status.get("details") or {}).get("causes") or []:
            if cause.get("reason") == "ExitCode":
                return int(cause.get("message", "1"))
    raise ExecFailed(str(status.get("message") or status), reason=str(status.get("reason") or ""))


async def _connect(
    cluster: Cluster, namespace: str, pod: str, command: Sequence[str], container: str, stdin: bool
) -> aiohttp.ClientWebSocketResponse:
    """Open the exec WebSocket, signed with the cluster's credentials; Ferry's errors if refused."""
    api = cluster.transport.api
    config = api.configuration
    query: list[tuple[str, str]] = [("command", word) for word in command]
    query += [
        ("stdout", "true"),
        ("stderr", "true"),
        ("stdin", "true" if stdin else "false"),
        ("tty", "false"),
    ]
    if container:
        query.append(("container", container))
    headers: dict[str, str] = {"User-Agent": str(api.user_agent or "ferry")}
    await api.update_params_for_auth(headers, query, ["BearerToken"])
    base = urlsplit(str(config.host))
    scheme = "wss" if base.scheme == "https" else "ws"
    path = f"{base.path.rstrip('/')}/api/v1/namespaces/{namespace}/pods/{pod}/exec"
    url = urlunsplit((scheme, base.netloc, path, urlencode(query), ""))
    session: aiohttp.ClientSession = api.rest_client.pool_manager  # the cluster's TLS and proxy
    what = f"exec in pod {namespace}/{pod}"
    try:
        return await session.ws_connect(
            url,
            protocols=PROTOCOLS,
            headers=headers,
            proxy=config.proxy,
            max_msg_size=0,
            timeout=aiohttp.ClientWSTimeout(ws_close=10.0),
        )
    except aiohttp.WSServerHandshakeError as e:
        raise error_for(e.status, f"{what} refused: HTTP {e.status} {e.message}", cluster=cluster.name) from e
    except (aiohttp.ClientError, OSError, TimeoutError) as e:
        raise Unreachable(f"{what}: cluster {cluster.name} is unreachable: {e}", cluster=cluster.name) from e


async def pod_exec(
    cluster: Cluster,
    namespace: str,
    pod: str,
    command: Sequence[str],
    *,
    container: str = "",
    stdin: bytes | None = None,
    within: float = 60.0,
    limit: int = OUTPUT_LIMIT,
) -> ExecResult:
    """Run ``command`` in the pod's container (its default one if ``container`` is empty)."""
    if not command:
        raise ValueError("pod_exec needs a command")
    started = time.monotonic()
    out, err = _Tail(limit), _Tail(limit)
    ws = await _connect(cluster, namespace, pod, command, container, stdin is not None)
    status: dict[str, Any] | None = None
    timed_out = False
    try:
        if stdin is not None:
            await _send_stdin(ws, stdin)
        async with asyncio.timeout(within):
            status = await _receive(ws, out, err)
    except TimeoutError:
        timed_out = True  # the result says so; closing the stream below ends the exec
    except (aiohttp.ClientError, OSError) as e:
        raise Unreachable(f"exec in pod {namespace}/{pod} broke: {e}", cluster=cluster.name) from e
    finally:
        await ws.close()
    duration = time.monotonic() - started
    truncated = out.dropped or err.dropped
    if timed_out:
        return ExecResult(None, out.text(), err.text(), duration, timed_out=True, truncated=truncated)
    if status is None:
        raise ExecFailed(f"exec in pod {namespace}/{pod} ended without an exit status", cluster=cluster.name)
    try:
        code = exit_code_of(status)
    except ExecFailed as e:
        e.cluster = cluster.name
        raise
    return ExecResult(code, out.text(), err.text(), duration, truncated=truncated)


async def _send_stdin(ws: aiohttp.ClientWebSocketResponse, data: bytes) -> None:
    """Send stdin; v5 can end it (``[255, 0]``), v4 cannot, so a v4 command must not wait for EOF."""
    for i in range(0, len(data), 65536):
        await ws.send_bytes(bytes([STDIN]) + data[i : i + 65536])
    if ws.protocol == PROTOCOLS[0]:
        await ws.send_bytes(bytes([CLOSE, STDIN]))


async def _receive(ws: aiohttp.ClientWebSocketResponse, out: _Tail, err: _Tail) -> dict[str, Any] | None:
    """Collect output until the server closes the stream; the Status from channel 3, if one came."""
    status: dict[str, Any] | None = None
    async for msg in ws:
        if msg.type == aiohttp.WSMsgType.ERROR:
            raise aiohttp.ClientError(f"websocket error: {ws.exception()}")
        if msg.type != aiohttp.WSMsgType.BINARY or not msg.data:
            continue
        channel, data = msg.data[0], bytes(msg.data[1:])
        if channel == STDOUT:
            out.add(data)
        elif channel == STDERR:
            err.add(data)
        elif channel == ERROR and data:
            try:
                parsed = json.loads(data)
            except ValueError:
                parsed = {"status": "Failure", "message": data.decode(errors="replace")}
            status = parsed if isinstance(parsed, dict) else {"status": "Failure", "message": str(parsed)}
    return status


__all__ = ["ExecFailed", "ExecResult", "exit_code_of", "pod_exec"]
