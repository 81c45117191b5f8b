"""How ``ferry`` says a refusal: one line naming the problem and the field, and what to do about a
refused token; the same words whether the gateway answered in JSON or a proxy in HTML."""

from __future__ import annotations

import json

import pytest

from services.cli.transports import gateway_error, said
from shared.contracts.states import Rejected


def body(error: str, field: str = "", code: str = "invalid") -> bytes:
    return json.dumps({"error": error, "field": field, "code": code}).encode()


@pytest.mark.parametrize(
    ("status", "answer", "line"),
    [
        (
            400,
            body("name at least one namespace", "$.source.namespaces"),
            "name at least one namespace (field $.source.namespaces) (HTTP 400)",
        ),
        (
            401,
            body("unknown or revoked token", code="unauthorized"),
            "the gateway refused the token (unknown or revoked token): set FERRY_TOKEN",
        ),
        (
            403,
            body("this token lacks the scope this call needs: admin", code="forbidden"),
            "not allowed: this token lacks the scope this call needs: admin",
        ),
        (404, body("no request with this id", "id", "not-found"), "no request with this id (HTTP 404)"),
        (502, b"<html>Bad Gateway</html>", "<html>Bad Gateway</html> (HTTP 502)"),
    ],
    ids=[
        "a bad field is named with the status",
        "a refused token says to set FERRY_TOKEN",
        "a missing scope says it is not allowed",
        "a field the message already names is not repeated",
        "a proxy's page is shown as it is",
    ],
)
def test_a_gateway_refusal_reads_as_one_line(status: int, answer: bytes, line: str) -> None:
    assert said(gateway_error(status, answer), over_http=True) == line


def test_a_bus_rejection_reads_as_its_message_and_field() -> None:
    rejected = Rejected(error="bad list query", field="$.limit")
    assert said(rejected.as_error()) == "bad list query (field $.limit)"
