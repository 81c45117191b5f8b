"""HTTP handlers for resources: parse the URL and query, call ``Objects``, render JSON or Status.

Paths follow kube-apiserver: ``/api/v1/...`` for the core group, ``/apis/{group}/{version}/...``
otherwise; ``namespaces/{ns}/{plural}`` is a namespaced collection only when ``plural`` is a
namespaced resource, otherwise it is a namespace subresource (``status``, ``finalize``).
"""

from __future__ import annotations

import asyncio
import base64
import json
from dataclasses import dataclass
from typing import Any

import yaml
from aiohttp import web

from sandbox.server import errors, patching, protobuf, tables, tokenrequests
from sandbox.server.execing import serve_exec
from sandbox.server.objects import DeleteOptions
from sandbox.server.selectors import matcher
from sandbox.server.serving import Server
from sandbox.server.storage import clone
from sandbox.server.watching import parse_bool, serve_watch
from sandbox.types import ResourceType
from sandbox.types.builtin import RETURNS_DELETED_OBJECT


@dataclass
class Target:
    rt: ResourceType
    namespace: str | None  # None: cluster-scoped, or all namespaces
    name: str | None
    sub: str


def resolve(server: Server, group: str, version: str, rest: list[str]) -> Target:
    reg = server.registry
    namespace = None
    if len(rest) >= 3 and rest[0] == "namespaces":
        candidate = reg.lookup(group, version, rest[2])
        if candidate is not None and candidate.namespaced:
            namespace, rest = rest[1], rest[2:]
    rt = reg.lookup(group, version, rest[0])
    if rt is None or len(rest) > 3 or any(not part for part in rest):
        raise errors.path_not_found()
    if namespace is not None and not rt.namespaced:
        raise errors.path_not_found()
    name = rest[1] if len(rest) > 1 else None
    if rt.namespaced and name is not None and namespace is None:
        raise errors.path_not_found()
    return Target(rt, namespace, name, rest[2] if len(rest) > 2 else "")


def _dry_run(request: web.Request) -> bool:
    values = request.query.getall("dryRun", [])
    for v in values:
        if v != "All":
            raise errors.bad_request(f'Unsupported value: "{v}": supported values: "All"')
    return bool(values)


def _manager(request: web.Request) -> str:
    """``fieldManager``, else the user agent's program name (``kubectl``), as the apiserver derives it."""
    manager = request.query.get("fieldManager")
    if manager:
        return manager
    agent = request.headers.get("User-Agent", "")
    return agent.split("/", 1)[0] or "unknown"


async def read_body(request: web.Request) -> Any:
    raw = await request.read()
    if not raw:
        return None
    if request.content_type == protobuf.CONTENT_TYPE:
        try:
            return protobuf.decode(raw)
        except protobuf.Unsupported as e:
            raise errors.unsupported_media_type(
                request.content_type, ["application/json", "application/yaml", protobuf.CONTENT_TYPE]
            ) from e
    if request.content_type not in (
        "application/json",
        "application/yaml",
        "text/yaml",
        "application/octet-stream",
        "",
    ):
        raise errors.unsupported_media_type(request.content_type, ["application/json", "application/yaml"])
    try:
        if "yaml" in request.content_type:
            return yaml.safe_load(raw)
        return json.loads(raw)
    except (ValueError, yaml.YAMLError) as e:
        raise errors.bad_request(f"the object provided is unrecognized: {e}") from e


async def handle(request: web.Request, server: Server, t: Target) -> web.StreamResponse:
    method = request.method
    rt = t.rt
    ns = t.namespace or ""
    if t.name is None:
        if method == "GET":
            return await _list_or_watch(request, server, t)
        if method == "POST":
            if rt.namespaced and t.namespace is None:
                raise errors.method_not_allowed()
            obj = server.objects.create(
                rt, ns, await read_body(request), dry_run=_dry_run(request), manager=_manager(request)
            )
            return server.json(obj, 201)
        if method == "DELETE":
            return await _delete_collection(request, server, t)
        raise errors.method_not_allowed()
    name = t.name
    if t.sub in ("", "status", "finalize"):
        if (
            t.sub == "status"
            and not rt.status
            or t.sub == "finalize"
            and "finalize" not in rt.extra_subresources
        ):
            raise errors.path_not_found()
        if method == "GET" and t.sub != "finalize":
            if t.sub == "" and parse_bool(request.query.get("watch")):
                return await serve_watch(
                    request, server, rt, t.namespace, matcher(rt, None, f"metadata.name={name}")
                )
            found = server.objects.get(rt, ns, name)
            if tables.wants_table(request.headers.get("Accept", "")):
                meta = {"resourceVersion": found["metadata"]["resourceVersion"]}
                return server.json(
                    tables.table(rt, [found], meta, request.query.get("includeObject", "Metadata"))
                )
            return server.json(found)
        if method == "PUT":
            body = await read_body(request)
            obj = server.objects.update(
                rt, ns, name, body, subresource=t.sub, dry_run=_dry_run(request), manager=_manager(request)
            )
            return server.json(obj)
        if method == "PATCH" and t.sub != "finalize":
            return await _patch(request, server, t)
        if method == "DELETE" and t.sub == "":
            return await _delete(request, server, t)
        raise errors.method_not_allowed()
    if t.sub == "scale" and rt.scale:
        return await _scale(request, server, t)
    if t.sub == "token" and "token" in rt.extra_subresources:
        if method != "POST":
            raise errors.method_not_allowed()
        answer = tokenrequests.create_token(server.objects, ns, name, await read_body(request))
        return server.json(answer, 201)
    if t.sub == "exec" and "exec" in rt.extra_subresources and method in ("GET", "POST"):
        return await serve_exec(request, server, ns, name)
    if t.sub == "log" and "log" in rt.extra_subresources and method == "GET":
        server.objects.get(rt, ns, name)
        container = request.query.get("container")
        full = server.pod_log(ns, name, container)
        text, tail = full, request.query.get("tailLines")
        if tail:
            lines = text.splitlines(keepends=True)
            text = "".join(lines[-int(tail) :]) if int(tail) > 0 else ""
        if parse_bool(request.query.get("follow")):
            return await _follow_log(request, server, ns, name, container, text, len(full))
        return web.Response(text=text, content_type="text/plain")
    raise errors.path_not_found()


async def _follow_log(
    request: web.Request, server: Server, ns: str, name: str, container: str | None, first: str, sent: int
) -> web.StreamResponse:
    """``follow=true``: stream the log as it grows until the pod has finished (or is gone).

    ``first`` is what was read (or its tail), ``sent`` the length of the whole log it was cut from:
    what the process writes from then on follows, none of it lost between the two reads."""
    resp = web.StreamResponse(status=200, headers={"Content-Type": "text/plain"})
    resp.enable_chunked_encoding()
    await resp.prepare(request)
    try:
        await resp.write(first.encode())
        while True:
            pod = server.store.get("pods", ns, name)
            done = pod is None or (pod.get("status") or {}).get("phase") in ("Succeeded", "Failed")
            text = server.pod_log(ns, name, container)
            if len(text) > sent:
                await resp.write(text[sent:].encode())
                sent = len(text)
            if done:
                break
            await asyncio.sleep(0.1)
        await resp.write_eof()
    except ConnectionResetError:
        pass
    return resp


async def _list_or_watch(request: web.Request, server: Server, t: Target) -> web.StreamResponse:
    q = request.query
    rt = t.rt
    match = matcher(rt, q.get("labelSelector"), q.get("fieldSelector"))
    if parse_bool(q.get("watch")):
        return await serve_watch(request, server, rt, t.namespace, match)
    store = server.store
    items = [o for o in store.items(rt.resource, t.namespace) if match(o)]
    list_rv = store.rv
    token = q.get("continue")
    if token:
        try:
            state = json.loads(base64.urlsafe_b64decode(token.encode()))
            list_rv, start = int(state["rv"]), tuple(state["start"])
        except (ValueError, KeyError, TypeError) as e:
            raise errors.bad_request(f"continue key is not valid: {e}") from e
        if list_rv < store.oldest_rv:
            raise errors.expired(errors.CONTINUE_EXPIRED)
        items = [o for o in items if (o["metadata"].get("namespace", ""), o["metadata"]["name"]) > start]
    meta: dict[str, Any] = {"resourceVersion": str(list_rv)}
    limit = int(q.get("limit") or 0)
    if limit > 0 and len(items) > limit:
        last = items[limit - 1]["metadata"]
        key = [last.get("namespace", ""), last["name"]]
        meta["continue"] = base64.urlsafe_b64encode(
            json.dumps({"rv": list_rv, "start": key}).encode()
        ).decode()
        meta["remainingItemCount"] = len(items) - limit
        items = items[:limit]
    if tables.wants_table(request.headers.get("Accept", "")):
        shown = [server.objects.present(rt, o) for o in items]
        return server.json(tables.table(rt, shown, meta, q.get("includeObject", "Metadata")))
    rendered = []
    for obj in items:
        out = server.objects.present(rt, obj)
        if not rt.crd:  # real servers omit kind/apiVersion on the items of built-in lists
            out.pop("kind", None)
            out.pop("apiVersion", None)
        rendered.append(out)
    return server.json(
        {"kind": rt.list_kind, "apiVersion": rt.group_version, "metadata": meta, "items": rendered}
    )


async def _delete_options(request: web.Request) -> DeleteOptions:
    q = request.query
    body = await read_body(request) or {}
    if not isinstance(body, dict):
        raise errors.bad_request("the body of the request was not a DeleteOptions object")
    pre = body.get("preconditions") or {}
    policy = q.get("propagationPolicy") or body.get("propagationPolicy")
    orphan = body.get("orphanDependents")
    if orphan is None and "orphanDependents" in q:
        orphan = parse_bool(q.get("orphanDependents"))
    if policy is None and orphan is not None:
        policy = "Orphan" if orphan else "Background"
    if policy not in (None, "Background", "Foreground", "Orphan"):
        raise errors.bad_request(
            f'Unsupported value: "{policy}": supported values: "Foreground", "Background", "Orphan"'
        )
    dry = _dry_run(request) or body.get("dryRun") == ["All"]
    return DeleteOptions(policy, pre.get("uid"), pre.get("resourceVersion"), dry)


async def _delete(request: web.Request, server: Server, t: Target) -> web.StreamResponse:
    assert t.name is not None
    obj, removed = server.objects.delete(t.rt, t.namespace or "", t.name, await _delete_options(request))
    if removed and not (t.rt.crd or (t.rt.group, t.rt.plural) in RETURNS_DELETED_OBJECT):
        return server.json(errors.success(t.rt, t.name, obj["metadata"]["uid"]))
    return server.json(obj)


async def _delete_collection(request: web.Request, server: Server, t: Target) -> web.StreamResponse:
    q = request.query
    opts = await _delete_options(request)
    match = matcher(t.rt, q.get("labelSelector"), q.get("fieldSelector"))
    deleted = []
    for obj in list(server.store.items(t.rt.resource, t.namespace)):
        if match(obj):
            meta = obj["metadata"]
            done, _ = server.objects.delete(t.rt, meta.get("namespace", ""), meta["name"], opts)
            deleted.append(done)
    meta_out = {"resourceVersion": str(server.store.rv)}
    return server.json(
        {"kind": t.rt.list_kind, "apiVersion": t.rt.group_version, "metadata": meta_out, "items": deleted}
    )


async def _patch(request: web.Request, server: Server, t: Target) -> web.StreamResponse:
    rt, ns, name = t.rt, t.namespace or "", t.name
    assert name is not None
    ctype = request.content_type
    if ctype not in patching.accepted(rt):
        raise errors.unsupported_media_type(ctype, patching.accepted(rt))
    body = patching.parse_body(ctype, await request.read())
    dry = _dry_run(request)
    objects = server.objects
    if ctype == patching.APPLY:
        manager = request.query.get("fieldManager")
        if not manager:
            raise errors.ApiError(
                422,
                "Invalid",
                'PatchOptions.meta.k8s.io "" is invalid: fieldManager: Required value: is required for apply patch',
            )
        if not isinstance(body, dict):
            raise errors.bad_request("apply patch must be a YAML or JSON object")
        existing = server.store.get(rt.resource, ns if rt.namespaced else "", name)
        if existing is None:
            if t.sub:
                raise errors.not_found(rt, name)
            body.setdefault("metadata", {}).setdefault("name", name)
            if body["metadata"]["name"] != name:
                raise errors.bad_request(
                    f"the name of the object ({body['metadata']['name']}) does not match the name on the URL ({name})"
                )
            created = objects.create(rt, ns, body, dry_run=dry, manager=manager, operation="Apply")
            if not dry:
                server.applied[(created["metadata"]["uid"], manager, t.sub)] = clone(body)
            return server.json(created, 201)
        uid = existing["metadata"]["uid"]
        live = objects.present(rt, existing)  # in the version of the request
        merged = patching.apply(rt, live, body, server.applied.get((uid, manager, t.sub)))
        result = objects.write(
            rt, existing, merged, subresource=t.sub, dry_run=dry, manager=manager, operation="Apply"
        )
        if not dry:
            server.applied[(uid, manager, t.sub)] = clone(body)
        return server.json(result)
    existing = objects.stored(rt, ns, name)
    live = objects.present(rt, existing)  # patched in the version of the request
    if ctype == patching.MERGE:
        if not isinstance(body, dict):
            raise errors.bad_request(
                "json: cannot unmarshal array into Go value of type map[string]interface {}"
            )
        new = patching.merge_patch(live, body)
    elif ctype == patching.JSON:
        new = patching.json_patch(live, body)
    else:
        if not isinstance(body, dict):
            raise errors.bad_request(
                "json: cannot unmarshal array into Go value of type map[string]interface {}"
            )
        new = patching.strategic_merge(rt, live, body)
    return server.json(
        objects.write(rt, existing, new, subresource=t.sub, dry_run=dry, manager=_manager(request))
    )


async def _scale(request: web.Request, server: Server, t: Target) -> web.StreamResponse:
    rt, ns, name = t.rt, t.namespace or "", t.name
    assert name is not None
    spec_path, status_path, selector_path = rt.scale_paths

    def dig(obj: dict[str, Any], path: str) -> Any:
        cur: Any = obj
        for part in path.split(".") if path else []:
            cur = cur.get(part) if isinstance(cur, dict) else None
        return cur

    def scale_of(obj: dict[str, Any]) -> dict[str, Any]:
        meta = obj["metadata"]
        selector = dig(obj, selector_path) if selector_path else dig(obj, "spec.selector.matchLabels")
        if isinstance(selector, dict):
            selector = ",".join(f"{k}={v}" for k, v in sorted(selector.items()))
        status: dict[str, Any] = {"replicas": dig(obj, status_path) or 0}
        if selector:
            status["selector"] = selector
        return {
            "kind": "Scale",
            "apiVersion": "autoscaling/v1",
            "metadata": {
                k: meta[k]
                for k in ("name", "namespace", "uid", "resourceVersion", "creationTimestamp")
                if k in meta
            },
            "spec": {"replicas": dig(obj, spec_path) or 0},
            "status": status,
        }

    existing = server.objects.stored(rt, ns, name)
    if request.method == "GET":
        return server.json(scale_of(existing))
    if request.method not in ("PUT", "PATCH"):
        raise errors.method_not_allowed()
    current = scale_of(existing)
    if request.method == "PUT":
        wanted = await read_body(request) or {}
    else:
        ctype = request.content_type
        body = patching.parse_body(ctype, await request.read())
        if ctype == patching.JSON:
            wanted = patching.json_patch(current, body)
        else:
            wanted = patching.merge_patch(current, body)
    rv = (wanted.get("metadata") or {}).get("resourceVersion")
    if rv and rv != existing["metadata"]["resourceVersion"]:
        raise errors.conflict(rt, name, errors.MODIFIED)
    new = clone(existing)
    cur = new
    parts = spec_path.split(".")
    for part in parts[:-1]:
        cur = cur.setdefault(part, {})
    cur[parts[-1]] = int((wanted.get("spec") or {}).get("replicas") or 0)
    new["metadata"].pop("resourceVersion", None)
    server.objects.write(rt, existing, new, dry_run=_dry_run(request), manager=_manager(request))
    return server.json(scale_of(server.objects.stored(rt, ns, name)))
