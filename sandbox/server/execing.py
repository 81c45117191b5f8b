"""``pods/exec`` over WebSocket: the remote-command protocol kubectl and client libraries speak.

The client upgrades ``GET/POST .../pods/{name}/exec?command=...&container=...&stdout=true...`` to a
WebSocket with a sub-protocol (``v5.channel.k8s.io`` first, then ``v4``, ... ``channel.k8s.io``).
Every binary message starts with a channel byte: 0 stdin, 1 stdout, 2 stderr, 3 error (a ``Status``
JSON from v4 on: ``Success``, or ``Failure`` with reason ``NonZeroExitCode`` and the exit code in
``details.causes``), 4 terminal resize; v5 adds 255, "close this channel" (``[255, 0]`` ends stdin).
The command runs as a LOCAL PROCESS prepared by the kubelet controller (``ApiServer.pod_exec``:
the pod's mountPaths mapped to their host directories, its env resolved), in its own process
group, so a client that hangs up (a timeout) ends it with everything it started. Only WebSocket is
served: SPDY, which kubectl falls back to when the upgrade fails, is not.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
from typing import Any

from aiohttp import WSMsgType, web

from sandbox.server import errors
from sandbox.server.serving import ExecRefused, Server

PROTOCOLS = (
    "v5.channel.k8s.io",
    "v4.channel.k8s.io",
    "v3.channel.k8s.io",
    "v2.channel.k8s.io",
    "channel.k8s.io",
)
STDIN, STDOUT, STDERR, ERROR, RESIZE, CLOSE = 0, 1, 2, 3, 4, 255
_TRUE = ("true", "True", "1")


def _container(pod: dict[str, Any], wanted: str | None) -> dict[str, Any]:
    """The container to run in, refused with the apiserver's words when it is not one of the pod's."""
    containers = pod["spec"].get("containers") or []
    name = pod["metadata"]["name"]
    if wanted:
        for c in containers:
            if c["name"] == wanted:
                return dict(c)
        raise errors.bad_request(f"container {wanted} is not valid for pod {name}")
    default = (pod["metadata"].get("annotations") or {}).get("kubectl.kubernetes.io/default-container")
    if len(containers) > 1 and not default:
        names = " ".join(c["name"] for c in containers)
        raise errors.bad_request(
            f"a container name must be specified for pod {name}, choose one of: [{names}]"
        )
    return dict(next((c for c in containers if c["name"] == default), containers[0]))


async def serve_exec(request: web.Request, server: Server, ns: str, name: str) -> web.StreamResponse:
    q = request.query
    pod = server.objects.stored(server.objects.rt("pods"), ns, name)
    command = q.getall("command", [])
    container = _container(pod, q.get("container"))
    if not command:
        raise errors.bad_request("you must specify at least one command for the container")
    if (pod.get("status") or {}).get("phase") != "Running":
        raise errors.bad_request(f'unable to upgrade connection: container not found ("{container["name"]}")')
    if server.pod_exec is None:
        raise errors.ApiError(
            500, "InternalError", "Internal error occurred: no kubelet runs pods (kubelet=False)"
        )
    if request.headers.get("Upgrade", "").lower() != "websocket":
        raise errors.bad_request("Upgrade request required")
    ws = web.WebSocketResponse(protocols=PROTOCOLS, max_msg_size=0, autoping=True)
    await ws.prepare(request)
    flags = {k: q.get(k) in _TRUE for k in ("stdin", "stdout", "stderr", "tty")}
    try:
        status = await _run(ws, server, pod, container, command, flags)
        rendered = _render(status, ws.ws_protocol)
        if rendered:
            await _send(ws, ERROR, rendered)
    except (ConnectionResetError, RuntimeError):  # the client hung up: nothing left to tell it
        pass
    finally:
        await ws.close()
    return ws


async def _run(
    ws: web.WebSocketResponse,
    server: Server,
    pod: dict[str, Any],
    container: dict[str, Any],
    command: list[str],
    flags: dict[str, bool],
) -> dict[str, Any]:
    """Run the command, streaming its output; the Status to send on the error channel."""
    assert server.pod_exec is not None
    try:
        words, env, cwd = await server.pod_exec(pod, container, command)
    except ExecRefused as e:
        return _internal(f"error executing command in container: {e}")
    tty = flags["tty"]
    try:
        proc = await asyncio.create_subprocess_exec(
            *words,
            stdin=asyncio.subprocess.PIPE if flags["stdin"] else asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT if tty else asyncio.subprocess.PIPE,
            env=env,
            cwd=cwd,
            start_new_session=True,  # its own process group: a hang-up kills all it started
        )
    except OSError as e:
        why = (
            f'exec: "{command[0]}": executable file not found in $PATH'
            if isinstance(e, FileNotFoundError)
            else str(e)
        )
        return _internal(f"error executing command in container: failed to exec in container: {why}")
    v5 = ws.ws_protocol == PROTOCOLS[0]
    reader = asyncio.create_task(_read_client(ws, proc, v5), name=f"exec-stdin-{pod['metadata']['name']}")
    try:
        pumps = [_pump(ws, proc.stdout, STDOUT)]
        if not tty and proc.stderr is not None:
            pumps.append(_pump(ws, proc.stderr, STDERR))
        await asyncio.gather(*pumps)
        code = await proc.wait()
    finally:
        reader.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await reader
        _kill(proc)
        await proc.wait()
    if code < 0:
        code = 128 - code  # killed by a signal, as a shell reports it
    if code == 0:
        return {"metadata": {}, "status": "Success"}
    return {
        "metadata": {},
        "status": "Failure",
        "message": f"command terminated with non-zero exit code: error executing command "
        f"[{' '.join(command)}], exit code {code}",
        "reason": "NonZeroExitCode",
        "details": {"causes": [{"reason": "ExitCode", "message": str(code)}]},
    }


async def _pump(ws: web.WebSocketResponse, stream: asyncio.StreamReader | None, channel: int) -> None:
    """Copy one output stream to its channel until EOF (keeps reading if the client is gone)."""
    if stream is None:
        return
    gone = False
    while chunk := await stream.read(65536):
        if not gone:
            try:
                await _send(ws, channel, chunk)
            except (ConnectionResetError, RuntimeError):
                gone = True


async def _read_client(ws: web.WebSocketResponse, proc: asyncio.subprocess.Process, v5: bool) -> None:
    """Feed stdin; end it on v5's close signal; kill the process when the client hangs up."""
    async for msg in ws:
        if msg.type != WSMsgType.BINARY or not msg.data:
            continue
        channel, data = msg.data[0], msg.data[1:]
        if channel == STDIN and proc.stdin is not None and data:
            with contextlib.suppress(ConnectionResetError, BrokenPipeError):
                proc.stdin.write(data)
                await proc.stdin.drain()
        elif v5 and channel == CLOSE and data[:1] == bytes([STDIN]) and proc.stdin is not None:
            proc.stdin.close()
    _kill(proc)  # the connection closed before the command ended (a client's timeout)


def _kill(proc: asyncio.subprocess.Process) -> None:
    if proc.returncode is None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGKILL)


def _internal(message: str) -> dict[str, Any]:
    return {
        "metadata": {},
        "status": "Failure",
        "message": f"Internal error occurred: {message}",
        "reason": "InternalError",
        "details": {"causes": [{"message": message}]},
        "code": 500,
    }


def _render(status: dict[str, Any], protocol: str | None) -> bytes:
    """v4 and v5 send the Status as JSON; older protocols only a failure's message, as text."""
    if protocol in PROTOCOLS[:2]:
        return json.dumps(status).encode()
    return b"" if status.get("status") == "Success" else str(status.get("message", "")).encode()


async def _send(ws: web.WebSocketResponse, channel: int, data: bytes) -> None:
    if ws.closed:
        raise ConnectionResetError("the client closed the exec stream")
    await ws.send_bytes(bytes([channel]) + data)
