"""The request contract refuses what it cannot carry safely, naming the exact field (and map key),
and never echoes more than 100 characters of a value. No servers: decode_request is the contract."""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from typing import Any

import pytest

from shared.contracts.requests import (
    MAX_LABELS,
    MAX_NAMESPACES,
    MAX_REQUEST_BYTES,
    MAX_RESOURCE_MODIFIERS,
    RequestInvalid,
    decode_request,
)
from shared.contracts.schema import render

VALID: dict[str, Any] = {
    "kind": "migrate",
    "source": {"cluster": "east", "namespaces": ["shop"]},
    "target": {"cluster": "west", "namespace_map": {"shop": "shop-west"}},
    "labels": {"ticket": "1234"},
    "restore": {},
}

Edit = Callable[[dict[str, Any]], object]


def refused(edit: Edit) -> RequestInvalid:
    document = copy.deepcopy(VALID)
    edit(document)
    with pytest.raises(RequestInvalid) as caught:
        decode_request(json.dumps(document).encode())
    return caught.value


def accepted(edit: Edit) -> None:
    document = copy.deepcopy(VALID)
    edit(document)
    decode_request(json.dumps(document).encode())


CASES: dict[str, tuple[Edit, str, str]] = {
    "a cluster name with a trailing newline": (
        lambda d: d["source"].update(cluster="east\n"),
        "$.source.cluster",
        "cluster",
    ),
    "a target cluster with a trailing newline": (
        lambda d: d["target"].update(cluster="west\n"),
        "$.target.cluster",
        "cluster",
    ),
    "a namespace with a dot (a subdomain, not a label)": (
        lambda d: d["source"].update(namespaces=["shop.eu"]),
        "$.source.namespaces[0]",
        "DNS-1123 label",
    ),
    "a namespace with a trailing newline": (
        lambda d: d["source"].update(namespaces=["shop", "web\n"]),
        "$.source.namespaces[1]",
        "DNS-1123 label",
    ),
    "a namespace of 64 characters": (
        lambda d: d["source"].update(namespaces=["a" * 64]),
        "$.source.namespaces[0]",
        "length <= 63",
    ),
    "more namespaces than the cap": (
        lambda d: d["source"].update(namespaces=[f"ns-{i}" for i in range(MAX_NAMESPACES + 1)]),
        "$.source.namespaces",
        f"length <= {MAX_NAMESPACES}",
    ),
    "the 50,000 namespaces of the incident": (
        lambda d: d["source"].update(namespaces=[f"ns-{i}" for i in range(50_000)]),
        "$.source.namespaces",
        "length <= 1000",
    ),
    "a namespace mapped from a name with a dot": (
        lambda d: d["target"].update(namespace_map={"shop": "shop-west", "shop.eu": "x"}),
        '$.target.namespace_map["shop.eu"]',
        "invalid key",
    ),
    "a namespace mapped to a name with a dot": (
        lambda d: d["target"].update(namespace_map={"shop": "shop.west"}),
        '$.target.namespace_map["shop"]',
        "DNS-1123 label",
    ),
    "a namespace mapped to nothing": (
        lambda d: d["target"].update(namespace_map={"shop": ""}),
        '$.target.namespace_map["shop"]',
        "length >= 1",
    ),
    "a label key that is not one": (
        lambda d: d["labels"].update({"Bad Key": "x"}),
        '$.labels["Bad Key"]',
        "invalid key",
    ),
    "a label value with a newline": (
        lambda d: d["labels"].update({"team": "a\nb"}),
        '$.labels["team"]',
        "control characters",
    ),
    "more labels than the cap": (
        lambda d: d.update(labels={f"k{i}": "v" for i in range(MAX_LABELS + 1)}),
        "$.labels",
        f"length <= {MAX_LABELS}",
    ),
    "a selector of 2,000 characters": (
        lambda d: d["source"].update(selector="a=b," * 500),
        "$.source.selector",
        "length <= 1024",
    ),
    "a selector over two lines": (
        lambda d: d["source"].update(selector="app=web\ntier=db"),
        "$.source.selector",
        "label selector",
    ),
    "300 resource types to include": (
        lambda d: d["source"].update(include_resources=[f"r{i}" for i in range(300)]),
        "$.source.include_resources",
        "length <= 256",
    ),
    "resource modifiers over 64 KiB": (
        lambda d: d["target"].update(resource_modifiers="#" * (MAX_RESOURCE_MODIFIERS + 1)),
        "$.target.resource_modifiers",
        "length <= 65536",
    ),
    "1,001 named objects to restore": (
        lambda d: d["restore"].update(resources=[f"configmap/c{i}" for i in range(1001)]),
        "$.restore.resources",
        "length <= 1000",
    ),
    "257 volume paths": (
        lambda d: d["restore"].update(volume_paths=[f"shop/data:/p{i}" for i in range(257)]),
        "$.restore.volume_paths",
        "length <= 256",
    ),
    "a reversed itinerary": (
        lambda d: d.update(itinerary=["verify", "discover"]),
        "$.itinerary[1]",
        "discover cannot run after verify",
    ),
    "a step the kind does not have": (
        lambda d: d.update(kind="replicate", itinerary=["discover", "verify"]),
        "$.itinerary[1]",
        "a replicate request has no step verify",
    ),
    "a request above the size bound, each part within its cap": (
        lambda d: (
            d["source"].update(namespaces=[f"{i:03d}-" + "n" * 58 for i in range(1000)]),
            d["target"].update(
                namespace_map={f"{i:03d}-" + "n" * 58: f"{i:03d}-" + "w" * 58 for i in range(1000)}
            ),
        ),
        "$.target.namespace_map",
        f"more than the {MAX_REQUEST_BYTES}",
    ),
}


@pytest.mark.parametrize(("edit", "field", "words"), CASES.values(), ids=CASES.keys())
def test_a_request_out_of_bounds_is_refused_naming_the_field(edit: Edit, field: str, words: str) -> None:
    error = refused(edit)
    assert error.field == field
    assert words in error.reason, error.reason


LONG = "x" * 10_000


@pytest.mark.parametrize(
    ("edit", "field"),
    [
        pytest.param(lambda d: d.update(kind=LONG), "$.kind", id="an unknown kind"),
        pytest.param(lambda d: d["source"].update({LONG: 1}), "$.source", id="an unknown field"),
        pytest.param(
            lambda d: d["labels"].update({LONG: "v"}), '$.labels["' + "x" * 100 + '"]', id="a label key"
        ),
        pytest.param(lambda d: d.update(itinerary=[LONG]), "$.itinerary[0]", id="a step"),
        pytest.param(lambda d: d.update(api_version="v" * 60), "$.api_version", id="an api version"),
        pytest.param(
            lambda d: d["source"].update(include_resources=[LONG[:250]], exclude_resources=[LONG[:250]]),
            "$.source.exclude_resources",
            id="an overlap of include and exclude",
        ),
    ],
)
def test_an_error_never_echoes_more_than_100_characters_of_a_value(edit: Edit, field: str) -> None:
    error = refused(edit)
    assert error.field == field
    assert "x" * 101 not in str(error) and "v" * 101 not in str(error)
    assert len(str(error)) < 400, str(error)


@pytest.mark.parametrize(
    "edit",
    [
        pytest.param(lambda d: d.update(itinerary=["discover", "snapshot"]), id="a part of the kind's steps"),
        pytest.param(lambda d: d.update(itinerary=["echo", "discover", "verify"]), id="echo anywhere"),
        pytest.param(
            lambda d: d["source"].update(namespaces=[f"ns-{i}" for i in range(MAX_NAMESPACES)]),
            id="as many namespaces as the cap",
        ),
        pytest.param(lambda d: d["labels"].update({"ferry.dev/team": "A team"}), id="a prefixed label key"),
        pytest.param(lambda d: d["source"].update(selector="app in (web, db),tier!=cache"), id="a selector"),
    ],
)
def test_requests_within_the_bounds_are_accepted(edit: Edit) -> None:
    accepted(edit)


def test_the_schema_publishes_the_bounds() -> None:
    defs = json.loads(render()["mobility-request.schema.json"])["$defs"]
    source, target, request = defs["Source"], defs["Target"], defs["MobilityRequest"]
    assert source["properties"]["namespaces"]["maxItems"] == MAX_NAMESPACES
    assert source["properties"]["namespaces"]["items"]["maxLength"] == 63
    assert target["properties"]["namespace_map"]["propertyNames"]["maxLength"] == 63
    assert target["properties"]["resource_modifiers"]["maxLength"] == MAX_RESOURCE_MODIFIERS
    assert request["properties"]["labels"]["maxProperties"] == MAX_LABELS
    assert "pattern" in request["properties"]["labels"]["propertyNames"]
    assert source["properties"]["cluster"]["pattern"].endswith("$(?!\\n)")
