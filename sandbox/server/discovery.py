"""Discovery documents, generated from the registry on every request (so CRDs show up at once).

Legacy discovery only: kubectl 1.32 asks for aggregated discovery (apidiscovery.k8s.io/v2) first
and falls back to these documents when the answer is plain ``application/json``. ``/openapi/v2`` is
an empty 200 (kubectl protobuf-decodes it to an empty document and skips validation) and
``/openapi/v3`` a 404, which kubectl also accepts.
"""

from __future__ import annotations

from typing import Any

from sandbox.server import access
from sandbox.server.registry import Registry
from sandbox.types import ALL_VERBS, ResourceType

VERSION = {
    "major": "1",
    "minor": "32",
    "gitVersion": "v1.32.0-sandbox",
    "gitCommit": "0000000000000000000000000000000000000000",
    "gitTreeState": "clean",
    "buildDate": "2026-01-01T00:00:00Z",
    "goVersion": "go1.23.4",
    "compiler": "gc",
    "platform": "linux/amd64",
}


def api_versions() -> dict[str, Any]:
    return {
        "kind": "APIVersions",
        "versions": ["v1"],
        "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": "127.0.0.1:6443"}],
    }


def _group(name: str, versions: list[str]) -> dict[str, Any]:
    gvs = [{"groupVersion": f"{name}/{v}", "version": v} for v in versions]
    return {"name": name, "versions": gvs, "preferredVersion": gvs[0]}


def api_group_list(registry: Registry) -> dict[str, Any]:
    groups = registry.groups()
    # built-in groups first in their table order, then CRD groups alphabetically (as kube does)
    order: dict[str, tuple[int, int, str]] = {}
    for rt in registry.types():
        if rt.group and rt.group not in order:
            order[rt.group] = (1 if rt.crd else 0, len(order) if not rt.crd else 0, rt.group)
    names = sorted(groups, key=lambda g: order[g])
    listed = [_group(g, groups[g]) for g in names]
    builtins = sum(1 for g in names if order[g][0] == 0)
    listed.insert(builtins, access.group_entry())  # served by the server itself, not the registry
    return {"kind": "APIGroupList", "apiVersion": "v1", "groups": listed}


def api_group(registry: Registry, group: str) -> dict[str, Any] | None:
    versions = registry.groups().get(group)
    if not versions:
        return None
    return {"kind": "APIGroup", "apiVersion": "v1", **_group(group, versions)}


def _entry(rt: ResourceType) -> dict[str, Any]:
    entry: dict[str, Any] = {
        "name": rt.plural,
        "singularName": rt.singular,
        "namespaced": rt.namespaced,
        "kind": rt.kind,
        "verbs": list(ALL_VERBS),
    }
    if rt.short_names:
        entry["shortNames"] = list(rt.short_names)
    if rt.categories:
        entry["categories"] = list(rt.categories)
    return entry


def _sub(
    rt: ResourceType, sub: str, kind: str, verbs: list[str], group: str = "", version: str = ""
) -> dict[str, Any]:
    entry: dict[str, Any] = {
        "name": f"{rt.plural}/{sub}",
        "singularName": "",
        "namespaced": rt.namespaced,
        "kind": kind,
        "verbs": verbs,
    }
    if group:
        entry["group"], entry["version"] = group, version
    return entry


def resource_list(registry: Registry, group: str, version: str) -> dict[str, Any] | None:
    types = sorted(registry.for_group_version(group, version), key=lambda rt: rt.plural)
    if not types:
        return None
    resources: list[dict[str, Any]] = []
    for rt in types:
        resources.append(_entry(rt))
        if rt.status:
            resources.append(_sub(rt, "status", rt.kind, ["get", "patch", "update"]))
        if rt.scale:
            resources.append(_sub(rt, "scale", "Scale", ["get", "patch", "update"], "autoscaling", "v1"))
        if "exec" in rt.extra_subresources:
            resources.append(_sub(rt, "exec", "PodExecOptions", ["create", "get"]))
        if "log" in rt.extra_subresources:
            resources.append(_sub(rt, "log", "Pod", ["get"]))
        if "token" in rt.extra_subresources:
            resources.append(_sub(rt, "token", "TokenRequest", ["create"], "authentication.k8s.io", "v1"))
        if "finalize" in rt.extra_subresources:
            resources.append(_sub(rt, "finalize", rt.kind, ["update"]))
    return {
        "kind": "APIResourceList",
        "apiVersion": "v1",
        "groupVersion": f"{group}/{version}" if group else version,
        "resources": resources,
    }
