"""``SelfSubjectAccessReview``: "may I do this?", answered as kube-apiserver answers it.

``POST /apis/authorization.k8s.io/v1/selfsubjectaccessreviews`` takes a review with
``spec.resourceAttributes`` (verb, group, resource, namespace, ...) or ``spec.nonResourceAttributes``
(path, verb) and answers 201 with the review and its ``status``: ``allowed``, and a ``reason``
(``allowed: false`` with the rule as the reason when a rule denies, as RBAC leaves ``denied`` unset). The sandbox has no users, so every caller is the same
cluster-admin and everything is allowed — except what a test denies: ``SandboxOptions.denied`` (or
``python -m sandbox serve --deny RULE``, or ``server.access.deny(RULE)`` at run time) holds rules
``"VERB RESOURCE [NAMESPACE]"``, e.g. ``"create deployments.apps"``, ``"list secrets shop"``,
``"delete * shop-west"``: RESOURCE is the group-resource (``configmaps``, ``deployments.apps``) and
``*`` matches anything. Rules only change the answers to access reviews; the API itself does not
enforce them (the sandbox authorises every request).

The group is discoverable (``/apis`` lists ``authorization.k8s.io``; its resource list has
``selfsubjectaccessreviews`` with the single verb ``create``), as on a real server.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from sandbox.server import errors

GROUP, VERSION = "authorization.k8s.io", "v1"
SELF_REVIEWS = "selfsubjectaccessreviews"
ALLOWED_REASON = 'RBAC: allowed by ClusterRoleBinding "cluster-admin" of ClusterRole "cluster-admin" to Group "system:masters"'


@dataclass(frozen=True)
class Rule:
    """One denial: a verb on a group-resource, in one namespace or any (``*``)."""

    verb: str
    resource: str
    namespace: str = "*"

    @classmethod
    def parse(cls, text: str) -> Rule:
        parts = text.split()
        if len(parts) not in (2, 3):
            raise ValueError(f"an access rule is 'VERB RESOURCE [NAMESPACE]', got {text!r}")
        return cls(*parts)

    def matches(self, verb: str, resource: str, namespace: str) -> bool:
        return (
            self.verb in ("*", verb)
            and self.resource in ("*", resource)
            and self.namespace in ("*", namespace)
        )

    def __str__(self) -> str:
        return f"{self.verb} {self.resource}" + ("" if self.namespace == "*" else f" {self.namespace}")


class AccessRules:
    """What the sandbox's one user may not do (everything else is allowed)."""

    def __init__(self, denied: Iterable[str] = ()) -> None:
        self.denied: list[Rule] = [Rule.parse(r) for r in denied]

    def deny(self, rule: str) -> None:
        self.denied.append(Rule.parse(rule))

    def allow_all(self) -> None:
        self.denied.clear()

    def decide(self, verb: str, resource: str, namespace: str) -> Rule | None:
        """The rule that denies this, or None (allowed)."""
        return next((r for r in self.denied if r.matches(verb, resource, namespace)), None)


def group_entry() -> dict[str, Any]:
    gv = {"groupVersion": f"{GROUP}/{VERSION}", "version": VERSION}
    return {"name": GROUP, "versions": [gv], "preferredVersion": gv}


def resource_list() -> dict[str, Any]:
    def entry(plural: str, kind: str, namespaced: bool) -> dict[str, Any]:
        return {
            "name": plural,
            "singularName": "",
            "namespaced": namespaced,
            "kind": kind,
            "verbs": ["create"],
        }

    return {
        "kind": "APIResourceList",
        "apiVersion": "v1",
        "groupVersion": f"{GROUP}/{VERSION}",
        # A real server also lists local/subject access reviews and rules reviews; the sandbox
        # lists only what it serves.
        "resources": [entry(SELF_REVIEWS, "SelfSubjectAccessReview", False)],
    }


def _invalid(message: str) -> errors.ApiError:
    return errors.ApiError(
        422,
        "Invalid",
        f"SelfSubjectAccessReview.authorization.k8s.io is invalid: {message}",
        {"group": GROUP, "kind": "SelfSubjectAccessReview", "causes": [{"message": message}]},
    )


def review(rules: AccessRules, body: Any) -> dict[str, Any]:
    """The answered review (what the API returns with 201)."""
    if not isinstance(body, dict) or body.get("kind", "SelfSubjectAccessReview") != "SelfSubjectAccessReview":
        raise errors.bad_request("the object provided is not a SelfSubjectAccessReview")
    spec = body.get("spec") or {}
    attrs, non_resource = spec.get("resourceAttributes"), spec.get("nonResourceAttributes")
    if bool(attrs) == bool(non_resource):
        raise _invalid(
            'spec.resourceAttributes: Invalid value: "null": exactly one of nonResourceAttributes '
            "or resourceAttributes must be specified"
        )
    if attrs:
        verb = str(attrs.get("verb") or "")
        group, plural = str(attrs.get("group") or ""), str(attrs.get("resource") or "")
        resource = f"{plural}.{group}" if group else plural
        if attrs.get("subresource"):
            resource += f"/{attrs['subresource']}"
        namespace = str(attrs.get("namespace") or "")
    else:
        verb, resource, namespace = (
            str(non_resource.get("verb") or ""),
            str(non_resource.get("path") or ""),
            "",
        )
    if not verb:
        raise _invalid("spec.resourceAttributes.verb: Required value")
    rule = rules.decide(verb, resource, namespace)
    status: dict[str, Any] = {"allowed": rule is None}
    if rule is None:
        status["reason"] = ALLOWED_REASON
    else:  # as RBAC denies: not allowed, no explicit ``denied`` (that is for authorizers that veto)
        status["reason"] = f'denied by the sandbox access rule "{rule}"'
    return {
        "kind": "SelfSubjectAccessReview",
        "apiVersion": f"{GROUP}/{VERSION}",
        "metadata": {"creationTimestamp": None},
        "spec": spec,
        "status": status,
    }
