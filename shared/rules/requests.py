"""Data-subject request clocks: R-DSR-1 due date, -2 extension, -3 pause, -4 frequency, -5 fee."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta

from shared.rules.calendar import (
    DEFAULT_CALENDAR,
    PARIS,
    add_months,
    check_calendar,
    local_date,
    roll_forward,
)
from shared.rules.errors import RuleError

SUSPENDED = "suspended_awaiting_data_subject"


@dataclass(frozen=True)
class Pause:
    """A request for identity/clarification information (R-DSR-3)."""

    requested_on: date
    received_on: date | None = None
    reason: str = ""


@dataclass(frozen=True)
class Extension:
    """The controller's notice extending the period (Art 12(3) 2nd-3rd sentences)."""

    notified_on: date
    reasons_given: bool


@dataclass(frozen=True)
class RequestDue:
    """Due date of a request; ``due_date`` is None while a pause is open."""

    receipt_date: date
    raw_due_date: date | None
    due_date: date | None
    paused_days: int = 0
    paused_since: date | None = None
    late_information_requests: tuple[date, ...] = ()

    @property
    def status(self) -> str:
        """``suspended_awaiting_data_subject`` while a pause is open, else ``running``."""
        return SUSPENDED if self.paused_since is not None else "running"


@dataclass(frozen=True)
class ExtensionResult:
    """Base and extended due dates (R-DSR-2)."""

    base: RequestDue
    extension_valid: bool
    extended_due_date: date | None
    effective_due_date: date | None


@dataclass(frozen=True)
class FrequencyResult:
    """Art 12(5) screening of repeated access requests (R-DSR-4)."""

    window_start_exclusive: date
    count_in_window: int
    flag_art12_5_review: bool
    auto_refuse: bool = False


@dataclass(frozen=True)
class FeeDecision:
    """Whether a fee may be charged (R-DSR-5)."""

    fee_allowed: bool
    fee_basis: str | None = None
    announce_fee_before_charging: bool = False


def receipt_date(received: date | datetime, tz: str = PARIS) -> date:
    """Day 0 of a request: the Europe/Paris date of receipt (R-CAL-1; Reg 1182/71 Art 3(1))."""
    if isinstance(received, datetime):
        return local_date(received, tz)
    return received


def _paused(receipt: date, pauses: Sequence[Pause]) -> tuple[int, date | None]:
    days, open_since = 0, None
    for pause in pauses:
        if pause.requested_on < receipt:
            raise RuleError("INVALID_INPUT", "a pause cannot start before receipt")
        if pause.received_on is None:
            open_since = pause.requested_on if open_since is None else open_since
        elif pause.received_on < pause.requested_on:
            raise RuleError("INVALID_INPUT", "pause answer received before it was requested")
        else:
            days += (pause.received_on - pause.requested_on).days
    return days, open_since


def request_due(
    receipt: date, calendar: str = DEFAULT_CALENDAR, pauses: Sequence[Pause] = ()
) -> RequestDue:
    """One month from receipt, plus paused days, rolled over (GDPR Art 12(3); Reg 1182/71 Art 3)."""
    check_calendar(calendar)
    days, open_since = _paused(receipt, pauses)
    unpaused = roll_forward(add_months(receipt, 1), calendar)
    late = tuple(p.requested_on for p in pauses if p.requested_on > unpaused)
    if open_since is not None:
        return RequestDue(receipt, None, None, days, open_since, late)
    raw = add_months(receipt, 1) + timedelta(days=days)
    return RequestDue(receipt, raw, roll_forward(raw, calendar), days, None, late)


def on_time(responded_on: date, due: date) -> bool:
    """A reply on the due date is in time: the period ends at 24:00 (Reg 1182/71 Art 3(2)(c))."""
    return responded_on <= due


def _pauses_as_of(pauses: Sequence[Pause], day: date) -> tuple[Pause, ...]:
    """The pauses as they stood at the end of ``day``: later ones dropped, open ones cut."""
    out = []
    for p in pauses:
        if p.requested_on > day:
            continue
        if p.received_on is None or p.received_on > day:
            p = Pause(p.requested_on, day, p.reason)
        out.append(p)
    return tuple(out)


def notice_in_time(
    receipt: date, notice: Extension, calendar: str = DEFAULT_CALENDAR, pauses: Sequence[Pause] = ()
) -> bool:
    """Notified with reasons by the base due date as it stood that day (GDPR Art 12(3); R-DSR-3).

    Pauses asked on or before the notice day count (one still open counts up to that day), so a
    pause moves the notice deadline as it moves the base end; a pause asked later cannot make a
    late notice valid.
    """
    if not notice.reasons_given:
        return False
    due = request_due(receipt, calendar, _pauses_as_of(pauses, notice.notified_on)).due_date
    return due is not None and notice.notified_on <= due


def extension(
    receipt: date,
    notice: Extension | None,
    calendar: str = DEFAULT_CALENDAR,
    pauses: Sequence[Pause] = (),
) -> ExtensionResult:
    """Two further months if notified in time with reasons (GDPR Art 12(3); Reg 1182/71 Art 3).

    Paused days shift the base and the extended end alike (R-DSR-3); while a pause is open both
    are unknown, but the validity of a notice already given is stated.
    """
    base = request_due(receipt, calendar, pauses)
    valid = notice is not None and notice_in_time(receipt, notice, calendar, pauses)
    if base.due_date is None:
        return ExtensionResult(base, valid, None, None)
    if not valid:
        return ExtensionResult(base, False, None, base.due_date)
    extended = roll_forward(add_months(receipt, 3) + timedelta(days=base.paused_days), calendar)
    return ExtensionResult(base, True, extended, extended)


def access_frequency(
    new_request: date, history: Sequence[date], max_per_12_months: int
) -> FrequencyResult:
    """Count requests in (new - 12 months, new]; flag above the policy cap (GDPR Art 12(5))."""
    if max_per_12_months < 0:
        raise RuleError("INVALID_INPUT", "policy maximum must not be negative")
    start = add_months(new_request, -12)
    count = 1 + sum(1 for day in history if start < day <= new_request)
    return FrequencyResult(start, count, count > max_per_12_months)


def fee(
    request_type: str, copy_number: int = 1, manifestly_unfounded_or_excessive: bool = False
) -> FeeDecision:
    """Free by default; a reasonable fee for further copies or excess (GDPR Art 12(5), 15(3))."""
    if copy_number < 1:
        raise RuleError("INVALID_INPUT", "copy number starts at 1")
    further_copy = request_type == "access" and copy_number > 1
    if further_copy or manifestly_unfounded_or_excessive:
        return FeeDecision(True, "reasonable_fee_administrative_costs", True)
    return FeeDecision(False)
