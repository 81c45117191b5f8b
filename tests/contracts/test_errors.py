"""One error taxonomy: a code names a class, the class an HTTP status and whether to retry; a bus
reply and a gateway answer read back as the same error. No servers: the table is the contract."""

from __future__ import annotations

import pytest

from shared.contracts.errors import (
    CODES,
    CodedError,
    Conflict,
    Forbidden,
    Internal,
    Invalid,
    MethodNotAllowed,
    NotFound,
    PermanentError,
    ServiceFailed,
    TemporaryError,
    TooLarge,
    Unauthorized,
    Unavailable,
    Unreadable,
    error_for,
    from_status,
)
from shared.contracts.states import Rejected

# The wire never changes: these codes and statuses are what clients already read.
WIRE = [
    ("invalid", 400, Invalid, PermanentError),
    ("unauthorized", 401, Unauthorized, PermanentError),
    ("forbidden", 403, Forbidden, PermanentError),
    ("not-found", 404, NotFound, PermanentError),
    ("method-not-allowed", 405, MethodNotAllowed, PermanentError),
    ("conflict", 409, Conflict, PermanentError),
    ("too-large", 413, TooLarge, PermanentError),
    ("unreadable", 500, Unreadable, PermanentError),
    ("internal", 500, Internal, PermanentError),
    ("failed", 502, ServiceFailed, PermanentError),
    ("unavailable", 503, Unavailable, TemporaryError),
]


@pytest.mark.parametrize(
    ("code", "status", "kind", "retry"), WIRE, ids=[f"{code} is {status}" for code, status, *_ in WIRE]
)
def test_a_code_names_one_class_with_its_status_and_its_retry_rule(
    code: str, status: int, kind: type[CodedError], retry: type[Exception]
) -> None:
    error = error_for(code, "what is wrong", field="$.source.cluster")
    assert type(error) is kind and CODES[code] is kind
    assert (error.code, error.status, error.field, str(error)) == (
        code,
        status,
        "$.source.cluster",
        "what is wrong",
    )
    assert isinstance(error, retry)


def test_every_class_of_the_table_is_listed_under_its_own_code() -> None:
    assert sorted(CODES) == sorted(code for code, *_ in WIRE)


@pytest.mark.parametrize(
    ("status", "kind", "code"),
    [
        (401, Unauthorized, "unauthorized"),
        (403, Forbidden, "forbidden"),
        (404, NotFound, "not-found"),
        (500, Internal, "internal"),
        (503, Unavailable, "unavailable"),
        (418, Invalid, "invalid"),
    ],
    ids=[
        "401 is a refused token",
        "403 is a missing scope",
        "404 is not found",
        "a bare 500 is internal (unreadable says so by its code)",
        "503 is worth a retry",
        "a status the table does not know is invalid, keeping its status",
    ],
)
def test_a_status_without_a_code_names_its_class(status: int, kind: type[CodedError], code: str) -> None:
    error = from_status(status, "proxy says no")
    assert type(error) is kind and error.code == code and error.status == status


def test_a_code_this_table_does_not_know_travels_as_it_came_answered_with_400() -> None:
    error = error_for("quota-exceeded", "a newer service's code")
    assert isinstance(error, Invalid) and error.code == "quota-exceeded" and error.status == 400


def test_a_rejected_reply_and_its_error_are_one_and_the_same() -> None:
    reply = Rejected(error="no request abc", field="id", code="not-found")
    error = reply.as_error()
    assert isinstance(error, NotFound) and error.status == 404
    assert Rejected.of(error) == reply
    assert Rejected.of(Unavailable("the bus is down")) == Rejected(
        error="the bus is down", code="unavailable"
    )


def test_an_unavailable_error_carries_its_retry_hint() -> None:
    assert Unavailable("busy", retry_after=2.5).retry_after == 2.5
    assert error_for("unavailable", "busy").retry_after is None
