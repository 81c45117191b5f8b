"""What a restore takes from a snapshot: the request's scope applied to the captured documents."""

from __future__ import annotations

from typing import Any

import pytest

from services.restore.selecting import select
from shared.contracts.errors import PermanentError
from shared.contracts.requests import MobilityRequest, RequestKind, RestoreScope, Source, Target
from shared.kube.objects import Manifest
from shared.kube.selecting import SelectorError, matches, parse


def obj(api: str, kind: str, name: str, ns: str = "", labels: dict[str, str] | None = None) -> dict[str, Any]:
    meta: dict[str, Any] = {
        "name": name,
        **({"namespace": ns} if ns else {}),
        **({"labels": labels} if labels else {}),
    }
    return {"apiVersion": api, "kind": kind, "metadata": meta}


SNAPSHOT = [
    obj("v1", "Namespace", "shop"),
    obj("v1", "Namespace", "ops"),
    obj("v1", "ConfigMap", "web-conf", "shop", {"app": "web"}),
    obj("v1", "ConfigMap", "db-conf", "shop", {"app": "db", "tier": "data"}),
    obj("v1", "ConfigMap", "ops-conf", "ops", {"app": "web"}),
    obj("apps/v1", "Deployment", "web", "shop", {"app": "web"}),
    obj("v1", "PersistentVolumeClaim", "pgdata", "shop", {"app": "db"}),
    obj("rbac.authorization.k8s.io/v1", "ClusterRole", "shop-reader"),
]


def keys(source: dict[str, Any] | None = None, **scope: Any) -> list[str]:
    request = MobilityRequest(kind=RequestKind.RESTORE, source=Source(cluster="east", snapshot="s", **(source or {})),
                              target=Target(cluster="west"), restore=RestoreScope(**scope))  # fmt: skip
    return [m.key for m in select([Manifest(dict(o)) for o in SNAPSHOT], request).items]


@pytest.mark.parametrize(
    ("source", "scope", "expected"),
    [
        pytest.param({"namespaces": ["ops"]}, {}, ["namespaces/ops", "configmaps/ops/ops-conf",
                     "clusterroles.rbac.authorization.k8s.io/shop-reader"],
                     id="a namespace keeps its objects and the cluster-scoped ones, not the other namespace"),
        pytest.param({"include_resources": ["configmaps"], "selector": "app=web"}, {},
                     ["namespaces/shop", "namespaces/ops", "configmaps/shop/web-conf", "configmaps/ops/ops-conf"],
                     id="types and a selector, with the namespaces of what was chosen"),
        pytest.param({"include_resources": ["deployment"]}, {}, ["namespaces/shop", "deployments.apps/shop/web"],
                     id="a type named by its kind"),
        pytest.param({"exclude_resources": ["configmaps", "namespaces", "clusterroles.rbac.authorization.k8s.io"]}, {},
                     ["namespaces/shop", "deployments.apps/shop/web", "persistentvolumeclaims/shop/pgdata"],
                     id="excluded types are left out, a needed namespace still comes"),
        pytest.param({"selector": "tier in (data),app!=web"}, {}, ["namespaces/shop", "configmaps/shop/db-conf"],
                     id="set-based and inequality requirements"),
        pytest.param({}, {"resources": ["configmap/shop/db-conf", "deployments.apps/web"]},
                     ["namespaces/shop", "configmaps/shop/db-conf", "deployments.apps/shop/web"],
                     id="named objects, with and without their namespace"),
        pytest.param({}, {"volume_paths": ["shop/pgdata:/base/16"]}, ["namespaces/shop", "persistentvolumeclaims/shop/pgdata"],
                     id="a volume path brings its claim and nothing else"),
    ],
)  # fmt: skip
def test_the_scope_selects_exactly(
    source: dict[str, Any], scope: dict[str, Any], expected: list[str]
) -> None:
    assert sorted(keys(source, **scope)) == sorted(expected)


@pytest.mark.parametrize(
    ("source", "scope", "message"),
    [
        pytest.param({"selector": "app=nothing"}, {}, "nothing to restore", id="an empty selection"),
        pytest.param({}, {"resources": ["secret/db"]}, "the snapshot has no 'secret/db'", id="an unknown named object"),
        pytest.param({}, {"volume_paths": ["shop/pgdata"]}, "is not <namespace>/<claim>:<path>", id="a path without a claim"),
        pytest.param({}, {"volume_paths": ["shop/a:/x", "shop/a:/y"]}, "the snapshot has no claim shop/a", id="an unknown claim"),
        pytest.param({"selector": "app in (web"}, {}, "source.selector", id="a selector that does not parse"),
    ],
)  # fmt: skip
def test_a_wrong_scope_is_an_error_naming_it(
    source: dict[str, Any], scope: dict[str, Any], message: str
) -> None:
    with pytest.raises(PermanentError, match=message.replace("(", r"\(")):
        keys(source, **scope)


def test_label_selector_grammar() -> None:
    labels = {"app": "web", "tier": "front"}
    assert matches(parse("app=web,tier"), labels) and matches(parse("app==web, !gone"), labels)
    assert not matches(parse("tier notin (front,back)"), labels) and matches(parse("x notin (y)"), labels)
    with pytest.raises(SelectorError, match="'=web' is not a label selector requirement"):
        parse("=web")
