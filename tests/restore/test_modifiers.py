"""Resource modifiers in Velero's format: each condition, each patch kind, a failing `test`."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from services.restore.merging import merge_patch, strategic_merge
from services.restore.modifiers import ModifierError, apply, parse
from shared.kube.objects import Manifest

PVC = {
    "apiVersion": "v1",
    "kind": "PersistentVolumeClaim",
    "metadata": {
        "name": "mysql-data",
        "namespace": "shop",
        "labels": {"tier": "db"},
        "annotations": {"a": "1"},
    },
    "spec": {"storageClassName": "premium", "resources": {"requests": {"storage": "1Gi"}}},
}
DEPLOY = {
    "apiVersion": "apps/v1",
    "kind": "Deployment",
    "metadata": {"name": "web", "namespace": "shop", "labels": {"tier": "front"}},
    "spec": {
        "replicas": 2,
        "template": {
            "spec": {
                "containers": [
                    {"name": "web", "image": "nginx:1", "ports": [{"containerPort": 80}]},
                    {"name": "sidecar", "image": "envoy:1"},
                ]
            }
        },
    },
}


GONE = object()  # in expected changes: the field is removed


def rules(body: str) -> str:
    return "version: v1\nresourceModifierRules:\n" + body


CASES: list[tuple[str, str, dict[str, Any], Any]] = [
    ("a JSON patch replaces the storage class of a matching PVC", rules("""
- conditions: {groupResource: persistentvolumeclaims, resourceNameRegex: "^mysql.*$", namespaces: [shop]}
  patches:
  - {operation: replace, path: /spec/storageClassName, value: standard}
"""), PVC, {"spec": {"storageClassName": "standard", "resources": {"requests": {"storage": "1Gi"}}}}),
    ("a JSON patch test that holds lets the rest of the rule apply", rules("""
- conditions: {groupResource: persistentvolumeclaims}
  patches:
  - {operation: test, path: /spec/storageClassName, value: premium}
  - {operation: replace, path: /spec/storageClassName, value: standard}
"""), PVC, {"spec": {"storageClassName": "standard", "resources": {"requests": {"storage": "1Gi"}}}}),
    ("a JSON patch test that fails leaves the object unchanged", rules("""
- conditions: {groupResource: persistentvolumeclaims}
  patches:
  - {operation: test, path: /spec/storageClassName, value: gold}
  - {operation: replace, path: /spec/storageClassName, value: standard}
"""), PVC, {}),
    ("values are read as Velero reads them: numbers, booleans and JSON are typed", rules("""
- conditions: {groupResource: deployments.apps}
  patches:
  - {operation: replace, path: /spec/replicas, value: "5"}
  - {operation: add, path: /spec/paused, value: "true"}
  - {operation: add, path: /metadata/labels/version, value: '"3"'}
  - {operation: add, path: /spec/template/spec/containers/1/args, value: '["--verbose"]'}
"""), DEPLOY, {"spec": {"replicas": 5, "paused": True, "template": {"spec": {"containers": [
        {"name": "web", "image": "nginx:1", "ports": [{"containerPort": 80}]},
        {"name": "sidecar", "image": "envoy:1", "args": ["--verbose"]}]}}},
        "metadata": {"labels": {"tier": "front", "version": "3"}}}),
    ("move, copy and remove work", rules("""
- conditions: {groupResource: persistentvolumeclaims}
  patches:
  - {operation: copy, from: /metadata/labels/tier, path: /metadata/labels/copied}
  - {operation: move, from: /metadata/annotations/a, path: /metadata/annotations/b}
  - {operation: remove, path: /spec/resources}
"""), PVC, {"metadata": {"labels": {"tier": "db", "copied": "db"}, "annotations": {"a": GONE, "b": "1"}}, "spec": {"resources": GONE}}),
    ("a merge patch removes an annotation with null and adds a label", rules("""
- conditions: {groupResource: persistentvolumeclaims}
  mergePatches:
  - patchData: |
      {"metadata": {"annotations": {"a": null}, "labels": {"new": "yes"}}}
"""), PVC, {"metadata": {"labels": {"tier": "db", "new": "yes"}, "annotations": {}}}),
    ("a strategic patch merges a container by name and keeps the other", rules("""
- conditions: {groupResource: "*.apps"}
  strategicPatches:
  - patchData: |
      spec:
        template:
          spec:
            containers:
            - name: web
              image: nginx:2
"""), DEPLOY, {"spec": {"template": {"spec": {"containers": [
        {"name": "web", "image": "nginx:2", "ports": [{"containerPort": 80}]},
        {"name": "sidecar", "image": "envoy:1"}]}}}}),
    ("a strategic patch can delete a list element", rules("""
- conditions: {groupResource: deployments.apps}
  strategicPatches:
  - patchData: '{"spec": {"template": {"spec": {"containers": [{"name": "sidecar", "$patch": "delete"}]}}}}'
"""), DEPLOY, {"spec": {"template": {"spec": {"containers": [
        {"name": "web", "image": "nginx:1", "ports": [{"containerPort": 80}]}]}}}}),
    ("'*' does not cross the group dot, so it misses deployments.apps", rules("""
- conditions: {groupResource: "*"}
  patches: [{operation: replace, path: /spec/replicas, value: "9"}]
"""), DEPLOY, {}),
    ("'*.*' matches grouped resources", rules("""
- conditions: {groupResource: "*.*"}
  patches: [{operation: replace, path: /spec/replicas, value: "9"}]
"""), DEPLOY, {"spec": {"replicas": 9}}),
    ("another namespace does not match", rules("""
- conditions: {groupResource: persistentvolumeclaims, namespaces: [other]}
  patches: [{operation: remove, path: /spec/resources}]
"""), PVC, {}),
    ("a label selector that does not match skips the rule", rules("""
- conditions: {groupResource: persistentvolumeclaims, labelSelector: {matchLabels: {tier: front}}}
  patches: [{operation: remove, path: /spec/resources}]
"""), PVC, {}),
    ("matchExpressions select", rules("""
- conditions:
    groupResource: persistentvolumeclaims
    labelSelector: {matchExpressions: [{key: tier, operator: In, values: [db, cache]}]}
  patches: [{operation: remove, path: /spec/resources}]
"""), PVC, {"spec": {"resources": GONE}}),
    ("matches conditions gate the rule", rules("""
- conditions: {groupResource: persistentvolumeclaims, matches: [{path: /spec/storageClassName, value: gold}]}
  patches: [{operation: remove, path: /spec/resources}]
- conditions: {groupResource: persistentvolumeclaims, matches: [{path: /spec/storageClassName, value: premium}]}
  patches: [{operation: replace, path: /spec/storageClassName, value: standard}]
"""), PVC, {"spec": {"storageClassName": "standard", "resources": {"requests": {"storage": "1Gi"}}}}),
    ("conditions see the object as it was before any rule", rules("""
- conditions: {groupResource: persistentvolumeclaims}
  patches: [{operation: replace, path: /spec/storageClassName, value: standard}]
- conditions: {groupResource: persistentvolumeclaims, matches: [{path: /spec/storageClassName, value: premium}]}
  patches: [{operation: add, path: /metadata/labels/seen, value: premium}]
"""), PVC, {"spec": {"storageClassName": "standard", "resources": {"requests": {"storage": "1Gi"}}},
            "metadata": {"labels": {"tier": "db", "seen": "premium"}}}),
    ("a replace on a missing path fails the object", rules("""
- conditions: {groupResource: persistentvolumeclaims}
  patches: [{operation: replace, path: /spec/nothing/here, value: x}]
"""), PVC, None),
]  # fmt: skip


def deep_update(base: dict[str, Any], changes: dict[str, Any]) -> dict[str, Any]:
    out = copy.deepcopy(base)
    for key, value in changes.items():
        if value is GONE:
            out.pop(key)
        elif isinstance(value, dict) and value and isinstance(out.get(key), dict):
            out[key] = deep_update(out[key], value)
        else:
            out[key] = value
    return out


@pytest.mark.parametrize(("case", "text", "obj", "changes"), CASES, ids=[c[0] for c in CASES])
def test_modifier(case: str, text: str, obj: dict[str, Any], changes: dict[str, Any] | None) -> None:
    item = Manifest(copy.deepcopy(obj))
    outcome = apply(parse(text), item)
    if changes is None:
        assert outcome.error and "failed" in outcome.error
        assert item.obj == obj, "a failed rule must leave the object as it was"
        return
    assert not outcome.error
    assert item.obj == deep_update(obj, changes)


def test_a_failing_test_is_reported() -> None:
    text = rules("""
- conditions: {groupResource: persistentvolumeclaims}
  patches:
  - {operation: test, path: /spec/storageClassName, value: gold}
  - {operation: replace, path: /spec/storageClassName, value: standard}
""")
    outcome = apply(parse(text), Manifest(copy.deepcopy(PVC)))
    assert outcome.applied == [] and "test did not hold" in outcome.notes[0]


BAD = [
    ("version: v2\nresourceModifierRules: []", "unsupported resource modifiers version"),
    (rules("- conditions: {}\n  patches: [{operation: remove, path: /a}]"), "groupResource is required"),
    (rules("- conditions: {groupResource: pods}\n  patches: [{operation: frob, path: /a}]"), "is not JSON Patch"),
    (rules("- conditions: {groupResource: pods}\n  patchez: []"), "unknown field"),
    (rules("- conditions: {groupResource: pods}"), "no patch data"),
    (rules("- conditions: {groupResource: pods, resourceNameRegex: '('}\n  patches: [{operation: remove, path: /a}]"),
     "resourceNameRegex"),
    ("version: v1\n  bad: [", "not valid YAML"),
]  # fmt: skip


@pytest.mark.parametrize(("text", "message"), BAD, ids=[b[1] for b in BAD])
def test_invalid_documents_are_refused_with_the_reason(text: str, message: str) -> None:
    with pytest.raises(ModifierError, match=message):
        parse(text)


def test_merge_patch_is_rfc7386() -> None:
    assert merge_patch({"a": "b", "c": {"d": "e", "f": "g"}}, {"a": "z", "c": {"f": None}}) == {
        "a": "z",
        "c": {"d": "e"},
    }
    assert merge_patch({"a": [1, 2]}, {"a": [3]}) == {"a": [3]}


def test_strategic_merge_replace_directive() -> None:
    live = {"spec": {"selector": {"a": "1", "b": "2"}}}
    assert strategic_merge(live, {"spec": {"selector": {"$patch": "replace", "c": "3"}}}) == {
        "spec": {"selector": {"c": "3"}}
    }
