"""The sandbox answers SelfSubjectAccessReviews as a real API server does, through the official client:
everything allowed, except what a test denies (``SandboxOptions.denied`` or ``server.access.deny``)."""

from __future__ import annotations

from pathlib import Path

import pytest
from kubernetes_asyncio import client

from sandbox import SandboxCluster, SandboxOptions


def review(
    verb: str, resource: str, group: str = "", namespace: str = ""
) -> client.V1SelfSubjectAccessReview:
    attributes = client.V1ResourceAttributes(
        verb=verb, resource=resource, group=group, namespace=namespace or None
    )
    return client.V1SelfSubjectAccessReview(
        spec=client.V1SelfSubjectAccessReviewSpec(resource_attributes=attributes)
    )


@pytest.mark.parametrize(
    ("verb", "resource", "group", "namespace", "allowed"),
    [
        pytest.param(
            "create",
            "deployments",
            "apps",
            "shop",
            False,
            id="a denied verb on a group-resource in a namespace",
        ),
        pytest.param("create", "deployments", "apps", "other", True, id="the same verb in another namespace"),
        pytest.param("patch", "deployments", "apps", "shop", True, id="another verb on the same resource"),
        pytest.param(
            "delete", "secrets", "", "anywhere", False, id="a rule without a namespace applies everywhere"
        ),
        pytest.param("list", "namespaces", "", "", False, id="a wildcard verb, cluster-wide"),
    ],
)
async def test_an_access_review_says_whether_the_caller_may(
    tmp_path: Path, verb: str, resource: str, group: str, namespace: str, allowed: bool
) -> None:
    options = SandboxOptions(denied=("create deployments.apps shop", "delete secrets"))
    async with SandboxCluster("solo", tmp_path, options=options) as cluster:
        await cluster.call(lambda server: server.access.deny("* namespaces"))
        async with client.ApiClient(client.Configuration(host=cluster.url)) as api:
            answer = await client.AuthorizationV1Api(api).create_self_subject_access_review(
                review(verb, resource, group, namespace)
            )
            groups = await client.ApisApi(api).get_api_versions()
            resources = await client.AuthorizationV1Api(api).get_api_resources()
    assert answer.status.allowed is allowed
    assert answer.status.reason  # allowed by cluster-admin, or the rule that denies
    if not allowed:
        assert "denied by the sandbox access rule" in answer.status.reason
    assert "authorization.k8s.io" in [g.name for g in groups.groups]
    assert [(r.name, r.verbs) for r in resources.resources] == [("selfsubjectaccessreviews", ["create"])]


async def test_a_review_without_attributes_is_invalid(tmp_path: Path) -> None:
    async with SandboxCluster("solo", tmp_path) as cluster:
        async with client.ApiClient(client.Configuration(host=cluster.url)) as api:
            empty = client.V1SelfSubjectAccessReview(spec=client.V1SelfSubjectAccessReviewSpec())
            with pytest.raises(client.ApiException) as refused:
                await client.AuthorizationV1Api(api).create_self_subject_access_review(empty)
    assert refused.value.status == 422
    assert "exactly one of nonResourceAttributes or resourceAttributes" in refused.value.body
