"""A workload's ``spec.selector`` (``matchLabels`` and ``matchExpressions``) as a list call's label
selector: the API server selects the pods the workload's controller would, and the post-restore exec
hook runs in those pods, not in every pod that shares the workload's ``matchLabels``."""

from __future__ import annotations

from typing import Any

import pytest

from services.restore.hooking import _pods_of
from shared.kube import Cluster
from shared.kube.objects import Manifest
from shared.kube.selecting import SelectorError, from_label_selector, matches, parse

SELECTOR = {
    "matchLabels": {"app": "web"},
    "matchExpressions": [
        {"key": "track", "operator": "NotIn", "values": ["canary", "shadow"]},
        {"key": "tier", "operator": "In", "values": ["front"]},
        {"key": "owner", "operator": "Exists"},
        {"key": "legacy", "operator": "DoesNotExist"},
    ],
}
PODS = {
    "stable": {"app": "web", "tier": "front", "owner": "a"},
    "untracked": {"app": "web", "tier": "front", "owner": "b", "track": "stable"},
    "canary": {"app": "web", "tier": "front", "owner": "a", "track": "canary"},
    "back": {"app": "web", "tier": "back", "owner": "a"},
    "orphan": {"app": "web", "tier": "front"},
    "legacy": {"app": "web", "tier": "front", "owner": "a", "legacy": "yes"},
    "other": {"app": "db", "tier": "front", "owner": "a"},
}
SELECTED = {"stable", "untracked"}


def pod(name: str, ns: str, labels: dict[str, str]) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "namespace": ns, "labels": labels},
        "spec": {"containers": [{"name": "app", "image": "busybox:1.36"}]},
    }


def test_the_selector_string_matches_what_kubernetes_would_select() -> None:
    text = from_label_selector(SELECTOR)
    assert text == "app=web,track notin (canary,shadow),tier in (front),owner,!legacy"
    assert {name for name, labels in PODS.items() if matches(parse(text), labels)} == SELECTED
    assert from_label_selector({}) == ""


@pytest.mark.parametrize(
    ("expression", "named"),
    [
        ({"key": "a", "operator": "Exists", "values": ["x"]}, "'Exists'"),
        ({"key": "a", "operator": "In", "values": []}, "'In'"),
        ({"key": "a", "operator": "Gt", "values": ["1"]}, "'Gt'"),
        ({"operator": "Exists"}, "without a key"),
    ],
)
def test_a_bad_expression_is_an_error_naming_it(expression: dict[str, Any], named: str) -> None:
    with pytest.raises(SelectorError, match=named):
        from_label_selector({"matchExpressions": [expression]})


async def test_the_post_restore_hook_finds_the_pods_the_workload_selects(east: Cluster, ns: str) -> None:
    for name, labels in PODS.items():
        await east.create(pod(name, ns, labels))
    deployment = Manifest(
        {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {"name": "web", "namespace": ns},
            "spec": {"selector": SELECTOR, "template": {"metadata": {"labels": PODS["stable"]}}},
        }
    )
    found = await _pods_of(east, deployment)
    assert {p["metadata"]["name"] for p in found} == SELECTED
    # A bare pod is found by name; a workload without a selector selects nothing (not every pod).
    assert [p["metadata"]["name"] for p in await _pods_of(east, Manifest(pod("canary", ns, {})))] == [
        "canary"
    ]
    unselective = Manifest(
        {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "x", "namespace": ns}}
    )
    assert await _pods_of(east, unselective) == []
