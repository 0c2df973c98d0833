"""Time conventions R-CAL-1..4: strict parsing, months, working-day roll-over, hours."""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, timedelta
from functools import lru_cache
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import holidays
from dateutil.easter import easter
from dateutil.relativedelta import relativedelta

from shared.rules.errors import RuleError

PARIS = "Europe/Paris"
CALENDARS: dict[str, str | None] = {"FR-metropole": None, "FR-alsace-moselle": "57"}
DEFAULT_CALENDAR = "FR-metropole"

_DATE_RE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_INSTANT_RE = re.compile(
    r"^\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}(:\d{2}(\.\d{1,6})?)?(Z|[+-]\d{2}:\d{2})?$"
)


def zone(name: str = PARIS) -> ZoneInfo:
    """Return the IANA zone ``name`` or raise UNKNOWN_TIMEZONE."""
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise RuleError("UNKNOWN_TIMEZONE", f"unknown time zone {name!r}") from exc


def parse_date(value: object, field: str = "date") -> date:
    """Parse a strict ISO ``YYYY-MM-DD`` date (R-CAL-1: invalid dates are never coerced)."""
    if isinstance(value, date) and not isinstance(value, datetime):
        return value
    if not isinstance(value, str) or not _DATE_RE.match(value):
        raise RuleError("INVALID_DATE", f"{field}: expected YYYY-MM-DD, got {value!r}")
    try:
        return date.fromisoformat(value)
    except ValueError as exc:
        raise RuleError("INVALID_DATE", f"{field}: {value!r} is not a calendar date") from exc


def localize(naive: datetime, tz: str = PARIS) -> datetime:
    """Read a naive wall-clock time in ``tz``; reject DST gaps and folds (R-CAL-1)."""
    zi = zone(tz)
    first = naive.replace(tzinfo=zi, fold=0)
    second = naive.replace(tzinfo=zi, fold=1)
    back = first.astimezone(UTC).astimezone(zi).replace(tzinfo=None)
    if back != naive:
        raise RuleError("NONEXISTENT_LOCAL_TIME", f"{naive.isoformat()} does not exist in {tz}")
    if first.utcoffset() != second.utcoffset():
        raise RuleError("AMBIGUOUS_LOCAL_TIME", f"{naive.isoformat()} is ambiguous in {tz}")
    return first


def parse_instant(value: object, field: str = "instant", tz: str = PARIS) -> datetime:
    """Parse an ISO 8601 instant; a naive one is read in ``tz`` only if unambiguous."""
    if isinstance(value, datetime):
        return value if value.tzinfo is not None else localize(value, tz)
    if not isinstance(value, str) or not _INSTANT_RE.match(value):
        raise RuleError("INVALID_DATE", f"{field}: expected an ISO 8601 instant, got {value!r}")
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError as exc:
        raise RuleError("INVALID_DATE", f"{field}: {value!r} is not a real date/time") from exc
    return parsed if parsed.tzinfo is not None else localize(parsed, tz)


def local_date(instant: datetime, tz: str = PARIS) -> date:
    """Calendar date of ``instant`` in ``tz`` (day periods start from it, R-CAL-1)."""
    return instant.astimezone(zone(tz)).date()


def add_months(start: date, months: int) -> date:
    """Same day ``months`` later, clamped to month end (Reg 1182/71 Art 3(2)(c))."""
    result: date = start + relativedelta(months=months)
    return result


def add_hours(instant: datetime, hours: float) -> datetime:
    """Elapsed-time hour period computed in UTC (R-CAL-4, Reg 1182/71 Art 3(2)(a))."""
    return instant.astimezone(UTC) + timedelta(hours=hours)


@lru_cache(maxsize=8)
def _holidays(calendar: str) -> holidays.HolidayBase:
    if calendar not in CALENDARS:
        raise RuleError("UNKNOWN_CALENDAR", f"unknown holiday calendar {calendar!r}")
    subdiv = CALENDARS[calendar]
    country: holidays.HolidayBase = holidays.country_holidays("FR", subdiv=subdiv)
    return country


def check_calendar(calendar: str) -> str:
    """Return ``calendar`` if known, else raise UNKNOWN_CALENDAR."""
    _holidays(calendar)
    return calendar


def holiday_name(day: date, calendar: str = DEFAULT_CALENDAR) -> str | None:
    """Public-holiday name of ``day`` in ``calendar`` (C. trav. L3133-1, L3134-13), or None."""
    name = _holidays(calendar).get(day)
    if not name and day == easter(day.year) + timedelta(days=50):
        return "Whit Monday"  # L3133-1 6°: a public holiday even where worked (2005-2007)
    return str(name) if name else None


def is_working_day(day: date, calendar: str = DEFAULT_CALENDAR) -> bool:
    """True unless ``day`` is a Saturday, Sunday or public holiday (Reg 1182/71 Art 3(4))."""
    return day.weekday() < 5 and holiday_name(day, calendar) is None


def roll_forward(day: date, calendar: str = DEFAULT_CALENDAR) -> date:
    """Move a deadline to act to the next working day, repeatedly (Reg 1182/71 Art 3(4))."""
    while not is_working_day(day, calendar):
        day += timedelta(days=1)
    return day


def skipped_days(day: date, calendar: str = DEFAULT_CALENDAR) -> list[tuple[date, str]]:
    """The non-working days a roll-over from ``day`` skips, each with its reason."""
    reasons: list[tuple[date, str]] = []
    while not is_working_day(day, calendar):
        reasons.append((day, holiday_name(day, calendar) or day.strftime("%A")))
        day += timedelta(days=1)
    return reasons


def format_utc(instant: datetime) -> str:
    """Render an instant in UTC as ``YYYY-MM-DDTHH:MM:SSZ``."""
    return instant.astimezone(UTC).replace(tzinfo=None).isoformat(timespec="seconds") + "Z"


def format_local(instant: datetime, tz: str = PARIS) -> str:
    """Render an instant as local wall-clock time with its offset."""
    return instant.astimezone(zone(tz)).isoformat(timespec="seconds")
