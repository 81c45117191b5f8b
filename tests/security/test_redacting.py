"""What discovery puts in the inventory of each kind of object: values of sensitive objects as digests.

The inventory is stored on the bus and served to any ``read`` token, so a Secret's values, and those
of an object marked ``ferry.dev/sensitive: "true"``, appear only as ``sha256:<hex>``; everything else,
and every other object, as read.
"""

from __future__ import annotations

import hashlib
from typing import Any

import pytest

from services.discovery.collecting import redacted

LAST_APPLIED = "kubectl.kubernetes.io/last-applied-configuration"


def sha(value: str) -> str:
    return "sha256:" + hashlib.sha256(value.encode()).hexdigest()


def obj(kind: str, annotations: dict[str, str] | None = None, **maps: Any) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": "x", "namespace": "ns", "labels": {"app": "a"}}
    if annotations is not None:
        meta["annotations"] = annotations
    return {"apiVersion": "v1", "kind": kind, "metadata": meta, **maps}


MARKED = {"ferry.dev/sensitive": "true"}


@pytest.mark.parametrize(
    ("given", "shown"),
    [
        pytest.param(
            obj("Secret", data={"PASSWORD": "cHc="}, type="Opaque"),
            obj("Secret", data={"PASSWORD": sha("cHc=")}, type="Opaque"),
            id="a Secret's data values become digests, the rest stays as read",
        ),
        pytest.param(
            obj("Secret", stringData={"token": "t0k"}),
            obj("Secret", stringData={"token": sha("t0k")}),
            id="a Secret's stringData values become digests",
        ),
        pytest.param(
            obj(
                "Secret",
                {LAST_APPLIED: '{"data":{"PASSWORD":"cHc="}}', "team": "db"},
                data={"PASSWORD": "cHc="},
            ),
            obj(
                "Secret",
                {LAST_APPLIED: sha('{"data":{"PASSWORD":"cHc="}}'), "team": "db"},
                data={"PASSWORD": sha("cHc=")},
            ),
            id="the last-applied annotation kubectl apply leaves on a Secret becomes a digest",
        ),
        pytest.param(
            obj("ConfigMap", data={"LOG_LEVEL": "debug"}),
            obj("ConfigMap", data={"LOG_LEVEL": "debug"}),
            id="a ConfigMap stays as read",
        ),
        pytest.param(
            obj("ConfigMap", MARKED, data={"API_KEY": "k"}, binaryData={"key.bin": "AAE="}),
            obj("ConfigMap", MARKED, data={"API_KEY": sha("k")}, binaryData={"key.bin": sha("AAE=")}),
            id="a ConfigMap marked sensitive shows its data and binaryData as digests",
        ),
        pytest.param(
            obj("ConfigMap", {"ferry.dev/sensitive": "True"}, data={"API_KEY": "k"}),
            obj("ConfigMap", {"ferry.dev/sensitive": "True"}, data={"API_KEY": sha("k")}),
            id="the mark is read without regard to case",
        ),
        pytest.param(
            obj("ConfigMap", {"ferry.dev/sensitive": "false"}, data={"API_KEY": "k"}),
            obj("ConfigMap", {"ferry.dev/sensitive": "false"}, data={"API_KEY": "k"}),
            id="a ConfigMap marked not sensitive stays as read",
        ),
        pytest.param(
            obj("Promotion", MARKED, spec={"discount": 20}) | {"apiVersion": "shop.ferry.dev/v1"},
            obj("Promotion", MARKED, spec={"discount": 20}) | {"apiVersion": "shop.ferry.dev/v1"},
            id="a marked object without value maps keeps its spec",
        ),
    ],
)
def test_the_inventory_shows_sensitive_values_as_digests(
    given: dict[str, Any], shown: dict[str, Any]
) -> None:
    before = repr(given)
    assert redacted(given) == shown
    assert repr(given) == before, "the object as read was changed"
