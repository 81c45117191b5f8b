"""``ferry clusters --bus``: read the local kubeconfig and probe each context's API server.

With the gateway, the gateway answers from its own kubeconfig. Straight on the bus there is no one to
ask, so the command probes from this machine: ``GET {server}/version`` with a short timeout (a
401/403 still proves the server answers). The same shape as the gateway's ``/v1/clusters``.
"""

from __future__ import annotations

import asyncio
import base64
import os
import ssl
import time
from pathlib import Path
from typing import Any

import aiohttp
import yaml

PROBE_TIMEOUT = 2.0


def kubeconfig_path(configured: str) -> Path | None:
    candidates = [configured] if configured else []
    candidates += [p for p in os.environ.get("KUBECONFIG", "").split(os.pathsep) if p]
    candidates.append(str(Path.home() / ".kube" / "config"))
    return next((Path(c) for c in candidates if Path(c).is_file()), None)


def _ssl(cluster: dict[str, Any]) -> ssl.SSLContext | bool:
    if cluster.get("insecure-skip-tls-verify"):
        return False
    if data := cluster.get("certificate-authority-data"):
        return ssl.create_default_context(cadata=base64.b64decode(data).decode())
    if path := cluster.get("certificate-authority"):
        return ssl.create_default_context(cafile=path)
    return True


async def _probe(
    session: aiohttp.ClientSession, item: dict[str, Any], cluster: dict[str, Any], user: dict[str, Any]
) -> dict[str, Any]:
    headers = {"Authorization": f"Bearer {user['token']}"} if user.get("token") else {}
    started = time.monotonic()
    try:
        async with session.get(
            item["server"].rstrip("/") + "/version",
            headers=headers,
            ssl=_ssl(cluster),
            timeout=aiohttp.ClientTimeout(total=PROBE_TIMEOUT),
        ) as response:
            version = ""
            if response.status == 200:
                doc = await response.json(content_type=None)
                version = str(doc.get("gitVersion", "")) if isinstance(doc, dict) else ""
            latency = round((time.monotonic() - started) * 1000, 1)
            return {
                **item,
                "reachable": response.status < 500,
                "status": response.status,
                "version": version,
                "latency_ms": latency,
            }
    except TimeoutError:
        return {**item, "error": f"no answer within {PROBE_TIMEOUT}s"}
    except (aiohttp.ClientError, ssl.SSLError, OSError, ValueError) as e:
        return {**item, "error": f"{type(e).__name__}: {e}"}


async def clusters_of(configured: str) -> dict[str, Any]:
    path = kubeconfig_path(configured)
    if path is None:
        return {"items": [], "kubeconfig": ""}
    config = yaml.safe_load(await asyncio.to_thread(path.read_text)) or {}
    named = {
        kind: {e["name"]: e.get(kind[:-1], {}) for e in config.get(kind) or []}
        for kind in ("clusters", "users")
    }
    async with aiohttp.ClientSession() as session:
        probes = []
        for entry in config.get("contexts") or []:
            context = entry.get("context") or {}
            cluster = named["clusters"].get(context.get("cluster", ""), {})
            item = {
                "name": entry["name"],
                "cluster": context.get("cluster", ""),
                "server": cluster.get("server", ""),
                "namespace": context.get("namespace", ""),
                "current": entry["name"] == config.get("current-context"),
                "reachable": False,
                "status": None,
                "version": "",
                "latency_ms": None,
                "error": "",
            }
            user = named["users"].get(context.get("user", ""), {})
            probes.append(_probe(session, item, cluster, user) if item["server"] else _as_is(item))
        items = await asyncio.gather(*probes)
    return {"items": list(items), "kubeconfig": str(path)}


async def _as_is(item: dict[str, Any]) -> dict[str, Any]:
    return {**item, "error": "the context's cluster has no server"}
