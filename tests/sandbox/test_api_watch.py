"""Watch through the real kubernetes_asyncio Watch: initial state, resume, bookmarks, 410, timeouts."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
from kubernetes_asyncio import client, watch
from kubernetes_asyncio.client.exceptions import ApiException

from sandbox import SandboxClusters


async def _collect(stream: Any, until: int, opened: asyncio.Event | None = None) -> list[tuple[str, str]]:
    seen = []
    async for event in stream:
        obj = event["object"]
        name = obj.metadata.name if hasattr(obj, "metadata") else obj["metadata"].get("name", "")
        seen.append((event["type"], name))
        if opened is not None:
            opened.set()
        if len(seen) >= until:
            break
    return seen


async def test_watch_without_a_version_starts_with_what_exists_then_follows(
    api: client.ApiClient, ns: str
) -> None:
    core = client.CoreV1Api(api)
    await core.create_namespaced_config_map(ns, {"metadata": {"name": "first"}})
    async with watch.Watch() as w:
        stream = w.stream(core.list_namespaced_config_map, ns, timeout_seconds=5)

        async def change() -> None:
            await core.create_namespaced_config_map(ns, {"metadata": {"name": "second"}})
            await core.patch_namespaced_config_map("second", ns, {"data": {"k": "v"}})
            await core.delete_namespaced_config_map("second", ns)

        async with asyncio.timeout(10):
            opened = asyncio.Event()
            consumer = asyncio.create_task(_collect(stream, 5, opened))
            await opened.wait()  # the watch has delivered the existing state: now change things
            await change()
            seen = await consumer
    assert seen == [
        ("ADDED", "first"),
        ("ADDED", "kube-root-ca.crt"),
        ("ADDED", "second"),
        ("MODIFIED", "second"),
        ("DELETED", "second"),
    ]


async def test_watch_from_a_resource_version_replays_only_later_changes(
    api: client.ApiClient, ns: str
) -> None:
    core = client.CoreV1Api(api)
    listed = await core.list_namespaced_config_map(ns)
    for name in ("a", "b"):
        await core.create_namespaced_config_map(ns, {"metadata": {"name": name}})
    async with watch.Watch() as w:
        stream = w.stream(
            core.list_namespaced_config_map,
            ns,
            resource_version=listed.metadata.resource_version,
            timeout_seconds=2,
        )
        async with asyncio.timeout(10):
            seen = await _collect(stream, 2)
    assert seen == [("ADDED", "a"), ("ADDED", "b")]


async def test_watch_with_bookmarks_sends_bookmark_events(api: client.ApiClient, ns: str) -> None:
    core = client.CoreV1Api(api)
    listed = await core.list_namespaced_config_map(ns)
    response = await core.list_namespaced_config_map(
        ns,
        watch=True,
        allow_watch_bookmarks=True,
        resource_version=listed.metadata.resource_version,
        timeout_seconds=3,
        _preload_content=False,
    )
    async with asyncio.timeout(10):
        line = await response.content.readline()
    response.release()
    assert b'"type":"BOOKMARK"' in line and b'"resourceVersion"' in line


async def test_watch_from_a_compacted_version_gets_410_expired(
    api: client.ApiClient, ns: str, clusters: SandboxClusters
) -> None:
    core = client.CoreV1Api(api)
    old = (await core.list_namespaced_config_map(ns)).metadata.resource_version
    await core.create_namespaced_config_map(ns, {"metadata": {"name": "after"}})
    await clusters["east"].call(lambda server: server.store.compact())
    async with watch.Watch() as w:
        with pytest.raises(ApiException) as caught:
            async with asyncio.timeout(10):
                async for _ in w.stream(
                    core.list_namespaced_config_map, ns, resource_version=old, timeout_seconds=2
                ):
                    pass
    assert caught.value.status == 410
    assert "too old resource version" in str(caught.value.reason)


async def test_watch_ends_cleanly_when_its_timeout_runs_out(api: client.ApiClient, ns: str) -> None:
    core = client.CoreV1Api(api)
    rv = (await core.list_namespaced_config_map(ns)).metadata.resource_version
    async with watch.Watch() as w:
        seen = []
        async with asyncio.timeout(10):
            async for event in w.stream(
                core.list_namespaced_config_map, ns, resource_version=rv, timeout_seconds=1
            ):
                seen.append(event)
    assert seen == []


async def test_watch_with_a_label_selector_sees_only_matching_objects(api: client.ApiClient, ns: str) -> None:
    core = client.CoreV1Api(api)
    rv = (await core.list_namespaced_config_map(ns)).metadata.resource_version
    await core.create_namespaced_config_map(ns, {"metadata": {"name": "other"}})
    await core.create_namespaced_config_map(ns, {"metadata": {"name": "mine", "labels": {"team": "a"}}})
    async with watch.Watch() as w:
        stream = w.stream(
            core.list_namespaced_config_map,
            ns,
            label_selector="team=a",
            resource_version=rv,
            timeout_seconds=1,
        )
        async with asyncio.timeout(10):
            seen = [(e["type"], e["object"].metadata.name) async for e in stream]
    assert seen == [("ADDED", "mine")]


async def test_an_object_leaving_a_label_selector_is_seen_as_deleted(api: client.ApiClient, ns: str) -> None:
    core = client.CoreV1Api(api)
    await core.create_namespaced_config_map(ns, {"metadata": {"name": "mover", "labels": {"team": "a"}}})
    rv = (await core.list_namespaced_config_map(ns)).metadata.resource_version
    await core.patch_namespaced_config_map("mover", ns, {"metadata": {"labels": {"team": "b"}}})
    await core.patch_namespaced_config_map("mover", ns, {"metadata": {"labels": {"team": "a"}}})
    async with watch.Watch() as w:
        stream = w.stream(
            core.list_namespaced_config_map,
            ns,
            label_selector="team=a",
            resource_version=rv,
            timeout_seconds=1,
        )
        async with asyncio.timeout(10):
            seen = [(e["type"], e["object"].metadata.name) async for e in stream]
    assert seen == [("DELETED", "mover"), ("ADDED", "mover")]


async def test_send_initial_events_ends_with_the_initial_events_end_bookmark(
    api: client.ApiClient, ns: str
) -> None:
    core = client.CoreV1Api(api)
    response = await core.list_namespaced_config_map(
        ns,
        watch=True,
        send_initial_events=True,
        resource_version_match="NotOlderThan",
        allow_watch_bookmarks=True,
        timeout_seconds=1,
        _preload_content=False,
    )
    async with asyncio.timeout(10):
        lines = [json.loads(line) for line in (await response.read()).splitlines()]
    response.release()
    assert [e["type"] for e in lines[:2]] == ["ADDED", "BOOKMARK"]
    assert lines[1]["object"]["metadata"]["annotations"] == {"k8s.io/initial-events-end": "true"}
