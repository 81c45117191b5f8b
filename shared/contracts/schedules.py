"""Schedules as JetStream's message scheduler reads them, checked here before the server sees them.

nats-server 2.14+ fires a policy's slots (``Nats-Schedule``), so Ferry never runs a timer of its
own; but the server only answers "pattern is invalid" (error 10189) without saying what, and only at
publish time. This module accepts exactly what the bundled server was seen to accept, and says
which part is wrong:

- ``@every <duration>``: Go durations of whole hours, minutes and seconds (``90s``, ``15m``,
  ``1h30m``), at least one second (``500ms`` and ``1d`` are refused by the server);
- an alias: ``@yearly`` (``@annually``), ``@monthly``, ``@weekly``, ``@daily`` (``@midnight``),
  ``@hourly``;
- six-field cron, seconds first: ``sec min hour day-of-month month day-of-week``, each ``*``, ``?``
  (the day fields), a number, a range ``a-b``, a step ``*/n`` / ``a-b/n`` / ``a/n``, or a list of
  those; months ``JAN``–``DEC`` and days ``SUN``–``SAT`` by name; day of week 0–6 (7 is refused).
  A pattern that can never fire (``0 0 0 31 2 *``) is refused too.

The parsed ``Schedule`` can also count the slots between two instants, which is how a policy
reports the slots it missed while paused.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

ALIASES = {
    "@yearly": "0 0 0 1 1 *",
    "@annually": "0 0 0 1 1 *",
    "@monthly": "0 0 0 1 * *",
    "@weekly": "0 0 0 * * 0",
    "@daily": "0 0 0 * * *",
    "@midnight": "0 0 0 * * *",
    "@hourly": "0 0 * * * *",
}
_EVERY = re.compile(r"^(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?$")
_MONTHS = "JAN FEB MAR APR MAY JUN JUL AUG SEP OCT NOV DEC".split()
_DAYS = "SUN MON TUE WED THU FRI SAT".split()
# (name, low, high, names) of the six cron fields, seconds first.
_FIELDS: tuple[tuple[str, int, int, list[str]], ...] = (
    ("second", 0, 59, []),
    ("minute", 0, 59, []),
    ("hour", 0, 23, []),
    ("day of month", 1, 31, []),
    ("month", 1, 12, _MONTHS),
    ("day of week", 0, 6, _DAYS),
)
_MONTH_DAYS = (31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31)  # February's most
MAX_COUNT_DAYS = 5 * 366  # ``count_between`` looks at most this far


class ScheduleInvalid(ValueError):
    """A schedule the server would refuse; the message says which part and why."""


@dataclass(frozen=True)
class Schedule:
    """A checked schedule: ``every`` seconds, or the sets of values of the six cron fields."""

    text: str
    every: int = 0
    fields: tuple[frozenset[int], ...] = ()
    dom_any: bool = True  # day of month is * or ?
    dow_any: bool = True

    @property
    def cron(self) -> bool:
        return not self.every

    def day_matches(self, day: dt.date) -> bool:
        """Cron's day rule: both day fields restricted means either may match (as robfig/cron)."""
        _, _, _, doms, months, dows = self.fields
        if day.month not in months:
            return False
        dom, dow = day.day in doms, (day.isoweekday() % 7) in dows
        if not self.dom_any and not self.dow_any:
            return dom or dow
        return dom and dow

    def count_between(self, start: dt.datetime, end: dt.datetime, zone: str = "") -> int:
        """Slots in ``[start, end)`` (aware datetimes); cron fields are read in ``zone`` (UTC if "").

        Whole days are counted by multiplication, only the first and last are walked, so a pause
        of months costs a few thousand steps; days past ``MAX_COUNT_DAYS`` are not counted.
        """
        if end <= start:
            return 0
        if self.every:
            return int((end - start).total_seconds() // self.every)
        tz = ZoneInfo(zone) if zone else dt.UTC
        first, last = start.astimezone(tz), end.astimezone(tz)
        seconds, minutes, hours = (sorted(f) for f in self.fields[:3])
        per_day = len(seconds) * len(minutes) * len(hours)
        count, day = 0, first.date()
        for _ in range(MAX_COUNT_DAYS):
            if day > last.date():
                break
            if self.day_matches(day):
                if first.date() < day < last.date():
                    count += per_day
                else:
                    for h in hours:
                        for m in minutes:
                            for s in seconds:
                                at = dt.datetime(day.year, day.month, day.day, h, m, s, tzinfo=tz)
                                count += first <= at < last
            day += dt.timedelta(days=1)
        return count


def parse_schedule(text: str) -> Schedule:
    """The schedule ``text`` stands for; ``ScheduleInvalid`` saying what is wrong otherwise."""
    value = text.strip()
    if not value:
        raise ScheduleInvalid("a schedule is required: six-field cron, '@every <duration>' or an alias")
    if value.startswith("@every"):
        return Schedule(text=value, every=every_seconds(value.removeprefix("@every").strip()))
    if value.startswith("@"):
        if value not in ALIASES:
            raise ScheduleInvalid(
                f"unknown schedule {value[:40]!r}: use '@every <duration>' or one of {', '.join(ALIASES)}"
            )
        return _cron(value, ALIASES[value])
    return _cron(value, value)


def every_seconds(duration: str) -> int:
    """``1h30m`` -> 5400: whole hours, minutes and seconds, at least one second."""
    match = _EVERY.match(duration)
    if not duration or match is None:
        raise ScheduleInvalid(
            f"'@every {duration[:40]}': the duration is whole hours, minutes and seconds, e.g. 90s, "
            "15m, 1h30m (no days, no fractions)"
        )
    h, m, s = (int(part or 0) for part in match.groups())
    total = h * 3600 + m * 60 + s
    if total < 1:
        raise ScheduleInvalid(f"'@every {duration}': the interval must be at least 1s")
    return total


def _cron(text: str, pattern: str) -> Schedule:
    parts = pattern.split()
    if len(parts) != 6:
        raise ScheduleInvalid(
            f"cron {text[:60]!r} has {len(parts)} fields; Ferry's schedules have six, seconds first: "
            "'sec min hour day-of-month month day-of-week', e.g. '0 */15 * * * *'"
        )
    fields = tuple(_field(part, *spec) for part, spec in zip(parts, _FIELDS, strict=True))
    schedule = Schedule(
        text=text, fields=fields, dom_any=parts[3] in ("*", "?"), dow_any=parts[5] in ("*", "?")
    )
    if schedule.dow_any and not any(
        day <= _MONTH_DAYS[month - 1] for month in fields[4] for day in fields[3]
    ):
        raise ScheduleInvalid(f"cron {text[:60]!r} never fires: no month it names has such a day")
    return schedule


def _field(part: str, name: str, low: int, high: int, names: list[str]) -> frozenset[int]:
    values: set[int] = set()
    for item in part.split(","):
        values |= _item(item, name, low, high, names)
    return frozenset(values)


def _item(item: str, name: str, low: int, high: int, names: list[str]) -> set[int]:
    span, _, step_text = item.partition("/")
    step = 1
    if step_text:
        if not step_text.isdigit() or int(step_text) < 1:
            raise ScheduleInvalid(f"{name}: the step of {item!r} must be a positive number")
        step = int(step_text)
    if span in ("*", "?"):
        if span == "?" and name not in ("day of month", "day of week"):
            raise ScheduleInvalid(f"{name}: '?' is only for the day of month or the day of week")
        first, last = low, high
    elif "-" in span:
        a, _, b = span.partition("-")
        first, last = _value(a, name, low, high, names), _value(b, name, low, high, names)
        if first > last:
            raise ScheduleInvalid(f"{name}: the range {span!r} goes backwards")
    else:
        first = _value(span, name, low, high, names)
        last = high if step_text else first
    return set(range(first, last + 1, step))


def _value(token: str, name: str, low: int, high: int, names: list[str]) -> int:
    upper = token.upper()
    if names and upper in names:
        return names.index(upper) + (low if name == "month" else 0)
    if not token.isdigit():
        words = f" or {names[0]}-{names[-1]}" if names else ""
        raise ScheduleInvalid(f"{name}: {token[:20]!r} is not a number {low}-{high}{words}")
    value = int(token)
    if not low <= value <= high:
        raise ScheduleInvalid(f"{name}: {value} is out of range {low}-{high}")
    return value


def check_zone(zone: str) -> None:
    """A time zone the server knows too (IANA names such as ``Europe/Paris``); "" is UTC."""
    if not zone:
        return
    try:
        ZoneInfo(zone)
    except (ZoneInfoNotFoundError, ValueError) as e:
        raise ScheduleInvalid(
            f"unknown time zone {zone[:60]!r}: use an IANA name such as Europe/Paris"
        ) from e
