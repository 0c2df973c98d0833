"""Retention: R-RET-1 formula, -2 categories, -3 validation, -4 legal holds."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import date, timedelta
from decimal import Decimal

from shared.rules.calendar import add_months
from shared.rules.errors import RuleError

DELETE = "delete_or_anonymise"
E_CONTRACT_THRESHOLD = Decimal("120")  # C. conso D213-1: "égale ou supérieure" to 120 EUR


@dataclass(frozen=True)
class RetentionRule:
    """One line of the retention schedule."""

    category: str
    start_event: str
    months: int
    basis: str
    action: str = DELETE


DEFAULT_SCHEDULE: Mapping[str, RetentionRule] = {
    r.category: r
    for r in (
        RetentionRule("customer", "contract_end", 60, "C. civ. 2224; C. com. L110-4; NS-048"),
        RetentionRule("prospect", "last_contact", 36, "CNIL NS-048 / commercial referential"),
        RetentionRule("contract", "conclusion", 60, "C. com. L110-4"),
        RetentionRule("e_contract", "conclusion_or_delivery", 120, "C. conso L213-1, D213-2"),
        RetentionRule("accounting", "financial_year_close", 120, "C. com. L123-22"),
        RetentionRule("cctv", "recording", 1, "CNIL CCTV guidance; CSI L252-5"),
        RetentionRule("building_access", "event", 1, "seed policy"),
        RetentionRule("technical", "collection", 12, "Décret 2021-1362 art 5"),
        RetentionRule("candidate", "last_contact", 24, "CNIL recruitment guide"),
    )
}
ALIASES = {
    "customers": "customer",
    "prospects": "prospect",
    "contracts": "contract",
    "invoice": "accounting",
    "invoices": "accounting",
    "accounting_documents": "accounting",
    "business_correspondence": "accounting",
    "videosurveillance": "cctv",
    "building_access_logs": "building_access",
    "access_logs": "building_access",
    "technical_data": "technical",
    "candidates": "candidate",
    "unsuccessful_candidate": "candidate",
}


def schedule_rule(
    category: str, schedule: Mapping[str, RetentionRule] | None = None
) -> RetentionRule:
    """The schedule line for ``category`` (aliases accepted) or UNKNOWN_CATEGORY."""
    table = DEFAULT_SCHEDULE if schedule is None else schedule
    key = category if category in table else ALIASES.get(category, category)
    if key not in table:
        raise RuleError("UNKNOWN_CATEGORY", f"no retention rule for category {category!r}")
    return table[key]


@dataclass(frozen=True)
class Retention:
    """How long a record may be kept (R-RET-1)."""

    start_date: date
    retain_until: date
    purge_due: date
    action_at_expiry: str = DELETE


def retention_until(start: date, months: int, action: str = DELETE) -> Retention:
    """Keep through start + months (clamped), purge the day after (Reg 1182/71 Art 3 by analogy)."""
    if months < 0:
        raise RuleError("INVALID_INPUT", "a retention duration cannot be negative")
    until = add_months(start, months)
    return Retention(start, until, until + timedelta(days=1), action)


def financial_year_close(
    document_date: date | None, year_end: date | tuple[int, int] | None, calendar_year: bool = True
) -> date:
    """Close of the financial year containing the document (C. com. L123-22; R-RET-3)."""
    if isinstance(year_end, tuple):
        if document_date is None:
            raise RuleError("MISSING_FIELD", "a month-day year end needs document_date")
        month, day = year_end
        close = _month_day(document_date.year, month, day)
        return close if close >= document_date else _month_day(document_date.year + 1, month, day)
    if year_end is not None:
        if document_date is not None and not add_months(year_end, -24) < document_date <= year_end:
            raise RuleError(
                "INVALID_INPUT", "document_date is not in the financial year ending then"
            )
        return year_end
    if document_date is None:
        raise RuleError("MISSING_FIELD", "financial_year_end or document_date is required")
    if not calendar_year:
        raise RuleError("MISSING_FIELD", "a non-calendar financial year needs financial_year_end")
    return date(document_date.year, 12, 31)


def _month_day(year: int, month: int, day: int) -> date:
    try:
        return date(year, month, day)
    except ValueError:
        if (month, day) == (2, 29):
            return date(year, 2, 28)
        raise RuleError("INVALID_DATE", f"financial year end {month:02d}-{day:02d}") from None


def e_contract_terms(
    conclusion: date, delivery: date | None, amount_eur: Decimal
) -> tuple[date, RetentionRule]:
    """At or above 120 EUR: 10 y from conclusion, or delivery if deferred (C. conso L213-1)."""
    if amount_eur < 0:
        raise RuleError("INVALID_INPUT", "amount_eur cannot be negative")
    if amount_eur < E_CONTRACT_THRESHOLD:
        return conclusion, DEFAULT_SCHEDULE["contract"]
    if delivery is not None and delivery < conclusion:
        raise RuleError("INVALID_INPUT", "delivery_date before conclusion_date")
    return max(conclusion, delivery or conclusion), DEFAULT_SCHEDULE["e_contract"]


@dataclass(frozen=True)
class LegalHold:
    """A litigation hold on a record (Art 17(3)(e))."""

    matter: str
    opened_on: date
    released_on: date | None = None
    scope: str | None = None


@dataclass(frozen=True)
class HeldRetention:
    """Retention after legal holds (R-RET-4); ``effective`` is None while a hold is active."""

    normal: Retention
    effective_retain_until: date | None
    purge_due: date | None
    late_holds: tuple[str, ...] = ()

    @property
    def purge_blocked(self) -> bool:
        """True while an effective hold is open."""
        return self.effective_retain_until is None

    def purge_now(self, evaluated_on: date) -> bool:
        """True once the purge is due and nothing blocks it."""
        return self.purge_due is not None and evaluated_on >= self.purge_due


def apply_holds(
    normal: Retention, holds: Sequence[LegalHold], purged_on: date | None = None
) -> HeldRetention:
    """Holds extend to their release and never shorten (GDPR Art 17(3)(e); seed policy).

    Whether a hold counts depends on the purge having been carried out, not on its due
    date: while ``purged_on`` is None (nothing purged yet) every hold counts, however late
    it was opened, and an active one blocks the purge. Only a hold opened on or after
    ``purged_on`` is late: it cannot revive purged data and is only flagged.
    """
    late = tuple(h.matter for h in holds if purged_on is not None and h.opened_on >= purged_on)
    live = [h for h in holds if h.matter not in late]
    for hold in live:
        if hold.released_on is not None and hold.released_on < hold.opened_on:
            raise RuleError("INVALID_INPUT", f"hold {hold.matter!r} released before opened")
    if any(h.released_on is None for h in live):
        return HeldRetention(normal, None, None, late)
    until = max([normal.retain_until, *(h.released_on for h in live if h.released_on)])
    return HeldRetention(normal, until, until + timedelta(days=1), late)


def with_action(retention: Retention, action: str) -> Retention:
    """The same retention with another expiry action (policy profiles)."""
    return replace(retention, action_at_expiry=action)
