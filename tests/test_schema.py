"""The published JSON Schemas in docs/schema/ match the contracts (run `make schema` to refresh)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from shared.contracts.schema import render

SCHEMA_DIR = Path(__file__).parents[1] / "docs" / "schema"


@pytest.mark.parametrize("name", sorted(render()))
def test_published_schema_is_in_sync_with_the_contracts(name: str) -> None:
    published = SCHEMA_DIR / name
    assert published.exists(), f"{published} is missing: run `make schema`"
    assert published.read_text() == render()[name], f"{name} is stale: run `make schema`"


def test_the_request_schema_refuses_unknown_fields_and_names_required_ones() -> None:
    schema = json.loads(render()["mobility-request.schema.json"])
    request = schema["$defs"]["MobilityRequest"]
    assert request["additionalProperties"] is False
    assert set(request["required"]) == {"kind", "source"}
    assert schema["$defs"]["Source"]["required"] == ["cluster"]
