"""The policy contract and its schedules, checked before nats-server ever sees them."""

from __future__ import annotations

import datetime as dt

import pytest

from shared.contracts.errors import Invalid
from shared.contracts.policies import decode_policy
from shared.contracts.schedules import ScheduleInvalid, parse_schedule
from tests.policies.conftest import policy

UTC = dt.UTC


@pytest.mark.parametrize(
    "schedule",
    [
        pytest.param("@every 1s", id="every second"),
        pytest.param("@every 1h30m", id="every hour and a half"),
        pytest.param("@daily", id="an alias"),
        pytest.param("0 */15 * * * *", id="cron with seconds"),
        pytest.param("0 0 9 ? * MON-FRI", id="weekdays at nine by name"),
        pytest.param("5-10/2 * * * * *", id="a stepped range"),
    ],
)
def test_schedules_the_server_accepts_are_accepted(schedule: str) -> None:
    assert parse_schedule(schedule).text == schedule


@pytest.mark.parametrize(
    ("schedule", "words"),
    [
        pytest.param("@every 500ms", "whole hours, minutes and seconds", id="sub-second every"),
        pytest.param("@every 1d", "no days", id="days in an every"),
        pytest.param("@every 0s", "at least 1s", id="an empty interval"),
        pytest.param("@fortnightly", "unknown schedule", id="an unknown alias"),
        pytest.param("0 0 * * *", "has 5 fields", id="five-field cron"),
        pytest.param("0 0 0 * * 7", "day of week: 7 is out of range 0-6", id="sunday as seven"),
        pytest.param("0 0 0 31 2 *", "never fires", id="the thirty-first of february"),
        pytest.param("0 0 25 * * *", "hour: 25 is out of range", id="hour twenty-five"),
        pytest.param("0 ? * * * *", "only for the day", id="a question mark for minutes"),
    ],
)
def test_schedules_the_server_refuses_are_refused_saying_why(schedule: str, words: str) -> None:
    with pytest.raises(ScheduleInvalid, match=words):
        parse_schedule(schedule)


def test_slots_between_two_instants_are_counted() -> None:
    start = dt.datetime(2026, 3, 2, 8, 59, 30, tzinfo=UTC)  # a Monday
    assert parse_schedule("@every 15m").count_between(start, start + dt.timedelta(hours=2)) == 8
    weekdays = parse_schedule("0 0 9 * * MON-FRI")
    assert weekdays.count_between(start, start + dt.timedelta(days=14)) == 10
    paris = weekdays.count_between(start, start + dt.timedelta(hours=2), "Europe/Paris")
    assert paris == 0  # 09:00 in Paris was 08:00 UTC, before the start
    every_second = parse_schedule("* * * * * *")
    assert every_second.count_between(start, start + dt.timedelta(days=3)) == 3 * 86400


@pytest.mark.parametrize(
    ("fields", "path", "words"),
    [
        pytest.param({"schedule": "@every 500ms"}, "$.schedule", "whole hours", id="a bad schedule"),
        pytest.param({"time_zone": "Mars/Olympus"}, "$.time_zone", "unknown time zone", id="a bad zone"),
        pytest.param({"time_zone": "Europe/Paris"}, "$.time_zone", "not @every", id="a zone with every"),
        pytest.param({"rpo": "soon"}, "$.rpo", "not a duration", id="a bad rpo"),
        pytest.param({"rpo": "0s"}, "$.rpo", "more than zero", id="a zero rpo"),
        pytest.param(
            {"drill_schedule": "weekly"}, "$.drill_schedule", "6 fields|has 1 fields", id="a bad drill"
        ),
        pytest.param({"colour": "red"}, "$.colour", "unknown field `colour`", id="an unknown field"),
        pytest.param({"target": {"repository": "dr"}}, "$.target.cluster", "DR cluster", id="no DR cluster"),
        pytest.param({"name": "Shop"}, "$.name", "DNS-1123 label", id="a name in capitals"),
        pytest.param(
            {"target_retention": {"keep_within": "a while"}},
            "$.target_retention.keep_within",
            "not a duration",
            id="a bad retention",
        ),
        pytest.param({"itinerary": ["restore"]}, "$.itinerary[0]", "no step restore", id="a foreign step"),
    ],
)
def test_a_bad_policy_is_refused_naming_the_field(fields: dict[str, object], path: str, words: str) -> None:
    with pytest.raises(Invalid, match=words) as refused:
        decode_policy(policy("shop", **fields))
    assert refused.value.field == path
