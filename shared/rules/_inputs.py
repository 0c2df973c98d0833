"""Typed readers for the JSON ``input`` object of a golden case."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date, datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from shared.rules.calendar import DEFAULT_CALENDAR, PARIS, check_calendar, local_date, zone
from shared.rules.calendar import parse_date as _parse_date
from shared.rules.calendar import parse_instant as _parse_instant
from shared.rules.errors import RuleError

Input = Mapping[str, Any]


def present(inp: Input, key: str) -> bool:
    """True when ``key`` is given and not null."""
    return inp.get(key) is not None


def first_key(inp: Input, *keys: str) -> str | None:
    """The first of ``keys`` present and not null."""
    return next((k for k in keys if present(inp, k)), None)


def tz(inp: Input) -> str:
    """The case's time zone (default Europe/Paris), validated."""
    name = inp.get("tz") or PARIS
    if not isinstance(name, str):
        raise RuleError("INVALID_INPUT", "tz must be a string")
    zone(name)
    return name


def calendar(inp: Input) -> str:
    """The holiday calendar (default FR-metropole), validated."""
    name = inp.get("holiday_calendar") or DEFAULT_CALENDAR
    if not isinstance(name, str):
        raise RuleError("INVALID_INPUT", "holiday_calendar must be a string")
    return check_calendar(name)


def instant(inp: Input, key: str) -> datetime:
    """A required instant field."""
    if not present(inp, key):
        raise RuleError("MISSING_FIELD", f"{key} is required")
    return _parse_instant(inp[key], key, tz(inp))


def day(inp: Input, key: str) -> date:
    """A required day field: a date, or an instant read as its Europe/Paris date."""
    if not present(inp, key):
        raise RuleError("MISSING_FIELD", f"{key} is required")
    value = inp[key]
    if isinstance(value, str) and ("T" in value or " " in value):
        return local_date(_parse_instant(value, key, tz(inp)), tz(inp))
    return _parse_date(value, key)


def opt_day(inp: Input, key: str) -> date | None:
    """An optional day field."""
    return day(inp, key) if present(inp, key) else None


def any_day(inp: Input, *keys: str) -> date:
    """The first present day among ``keys``, or MISSING_FIELD."""
    key = first_key(inp, *keys)
    if key is None:
        raise RuleError("MISSING_FIELD", f"one of {', '.join(keys)} is required")
    return day(inp, key)


def text(inp: Input, key: str, default: str | None = None) -> str:
    """A string field (required unless ``default`` is given)."""
    value = inp.get(key, default)
    if value is None:
        raise RuleError("MISSING_FIELD", f"{key} is required")
    if not isinstance(value, str):
        raise RuleError("INVALID_INPUT", f"{key} must be a string")
    return value


def flag(inp: Input, key: str, default: bool = False) -> bool:
    """A boolean field."""
    value = inp.get(key, default)
    if value is None:
        return default
    if not isinstance(value, bool):
        raise RuleError("INVALID_INPUT", f"{key} must be true or false")
    return value


def integer(inp: Input, key: str, default: int | None = None) -> int:
    """An integer field."""
    value = inp.get(key, default)
    if value is None:
        raise RuleError("MISSING_FIELD", f"{key} is required")
    if isinstance(value, bool) or not isinstance(value, int | float) or int(value) != value:
        raise RuleError("INVALID_INPUT", f"{key} must be an integer")
    return int(value)


def number(inp: Input, key: str) -> Decimal:
    """A required decimal number field (amounts are compared exactly)."""
    value = inp.get(key)
    if value is None:
        raise RuleError("MISSING_FIELD", f"{key} is required")
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise RuleError("INVALID_INPUT", f"{key} must be a number")
    try:
        return Decimal(str(value))
    except InvalidOperation as exc:
        raise RuleError("INVALID_INPUT", f"{key} must be a number") from exc


def items(inp: Input, key: str, required: bool = False) -> list[Any]:
    """A list field (empty when absent unless ``required``)."""
    value = inp.get(key)
    if value is None:
        if required:
            raise RuleError("MISSING_FIELD", f"{key} is required")
        return []
    if not isinstance(value, list):
        raise RuleError("INVALID_INPUT", f"{key} must be a list")
    return value


def mapping(value: Any, what: str) -> Input:
    """Check that a nested value is an object."""
    if not isinstance(value, Mapping):
        raise RuleError("INVALID_INPUT", f"{what} must be an object")
    return value


def strings(inp: Input, key: str) -> list[str]:
    """A list of strings."""
    values = items(inp, key)
    if not all(isinstance(v, str) for v in values):
        raise RuleError("INVALID_INPUT", f"{key} must be a list of strings")
    return values


def parse_date_text(value: str, field: str) -> date:
    """Validate a date string strictly."""
    return _parse_date(value, field)
