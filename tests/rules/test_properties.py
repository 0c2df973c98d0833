"""Property-based checks of the date arithmetic and the rules' invariants."""

from __future__ import annotations

import calendar as stdcal
from datetime import UTC, date, datetime, timedelta

from dateutil.easter import easter
from hypothesis import given, settings
from hypothesis import strategies as st

from shared.rules import (
    Extension,
    LegalHold,
    Pause,
    add_hours,
    add_months,
    apply_holds,
    breach_deadline,
    extension,
    is_working_day,
    request_due,
    retention_until,
    roll_forward,
)

CALENDARS = st.sampled_from(["FR-metropole", "FR-alsace-moselle"])
DAYS = st.dates(min_value=date(2000, 1, 1), max_value=date(2090, 12, 31))
INSTANTS = st.datetimes(
    min_value=datetime(2000, 1, 1), max_value=datetime(2090, 12, 31), timezones=st.just(UTC)
)
SETTINGS = settings(max_examples=200, deadline=None)


@SETTINGS
@given(DAYS, st.integers(min_value=-1200, max_value=1200))
def test_add_months_clamps_to_month_end(start: date, months: int) -> None:
    result = add_months(start, months)
    assert (result.year * 12 + result.month) - (start.year * 12 + start.month) == months
    last = stdcal.monthrange(result.year, result.month)[1]
    assert result.day == min(start.day, last)


@SETTINGS
@given(DAYS, CALENDARS)
def test_roll_forward_lands_on_next_working_day(day: date, cal: str) -> None:
    rolled = roll_forward(day, cal)
    assert rolled >= day
    assert is_working_day(rolled, cal)
    assert all(not is_working_day(day + timedelta(n), cal) for n in range((rolled - day).days))


@SETTINGS
@given(st.integers(min_value=2000, max_value=2090))
def test_calendars_hold_the_statutory_holidays(year: int) -> None:
    e = easter(year)
    fixed = [(1, 1), (5, 1), (5, 8), (7, 14), (8, 15), (11, 1), (11, 11), (12, 25)]
    metro = [date(year, m, d) for m, d in fixed]
    metro += [e + timedelta(1), e + timedelta(39), e + timedelta(50)]
    for day in metro:
        assert day.weekday() >= 5 or not is_working_day(day, "FR-metropole")
    for day in (e - timedelta(2), date(year, 12, 26)):
        assert day.weekday() >= 5 or not is_working_day(day, "FR-alsace-moselle")
    assert date(year, 12, 26).weekday() >= 5 or is_working_day(date(year, 12, 26), "FR-metropole")


@SETTINGS
@given(DAYS, CALENDARS, st.integers(min_value=0, max_value=60))
def test_due_date_never_before_receipt(receipt: date, cal: str, paused: int) -> None:
    pauses = [Pause(receipt, receipt + timedelta(paused))] if paused else []
    due = request_due(receipt, cal, pauses)
    assert due.due_date is not None
    assert due.raw_due_date is not None
    assert due.due_date >= due.raw_due_date > receipt
    assert is_working_day(due.due_date, cal)
    assert (due.due_date - receipt).days <= 31 + paused + 5


@SETTINGS
@given(DAYS, CALENDARS, st.integers(min_value=0, max_value=40))
def test_valid_extension_never_shortens(receipt: date, cal: str, notice_after: int) -> None:
    res = extension(receipt, Extension(receipt + timedelta(notice_after), True), cal)
    assert res.base.due_date is not None
    assert res.effective_due_date is not None
    assert res.effective_due_date >= res.base.due_date
    assert res.extension_valid == (receipt + timedelta(notice_after) <= res.base.due_date)


@SETTINGS
@given(INSTANTS)
def test_breach_deadline_is_72_elapsed_hours(aware: datetime) -> None:
    res = breach_deadline(aware)
    assert (res.deadline - aware).total_seconds() == 72 * 3600
    assert add_hours(aware, 72) == res.deadline
    assert not res.weekend_holiday_shift


@SETTINGS
@given(
    DAYS,
    st.integers(min_value=0, max_value=120),
    st.lists(st.tuples(st.integers(0, 4000), st.integers(0, 4000) | st.none()), max_size=3),
)
def test_holds_never_shorten_retention(
    start: date, months: int, spans: list[tuple[int, int | None]]
) -> None:
    normal = retention_until(start, months)
    holds = [
        LegalHold(f"m{n}", start + timedelta(a), None if b is None else start + timedelta(a + b))
        for n, (a, b) in enumerate(spans)
    ]
    held = apply_holds(normal, holds)
    assert normal.purge_due == normal.retain_until + timedelta(1)
    if held.effective_retain_until is not None:
        assert held.effective_retain_until >= normal.retain_until
        assert held.purge_due == held.effective_retain_until + timedelta(1)
    else:
        assert held.purge_blocked
        assert held.purge_due is None
