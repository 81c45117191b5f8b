"""A minimal Server-Sent Events reader for tests: (id, event, data) frames until the stream ends."""

from __future__ import annotations

import json
from typing import Any

import aiohttp


async def read_frames(response: aiohttp.ClientResponse) -> list[tuple[int, str, dict[str, Any]]]:
    frames: list[tuple[int, str, dict[str, Any]]] = []
    fields: dict[str, str] = {}
    async for raw in response.content:
        line = raw.decode().rstrip("\n")
        if not line:
            if "data" in fields:
                frames.append(
                    (int(fields.get("id", "0")), fields.get("event", ""), json.loads(fields["data"]))
                )
            fields = {}
            continue
        if line.startswith(":"):
            continue
        name, _, value = line.partition(": ")
        fields[name] = value
    return frames
