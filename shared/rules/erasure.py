"""R-DSR-6: per-category erasure decisions (GDPR Art 17(1), 17(3), 12(4), 19)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date

from shared.rules.calendar import add_months
from shared.rules.errors import RuleError

ERASE, REFUSE, RETAIN, HOLD = "erase", "refuse", "retain_restricted", "refuse_while_hold"
ACTIVE_STATUSES = frozenset({"active", "running", "ongoing", "in_force", "employed"})
ACCOUNTING = frozenset(
    {"invoice", "invoices", "accounting", "accounting_documents", "business_correspondence"}
)
CLAIMS_BASES = frozenset({"legitimate_interest_legal_claims", "legal_claims"})
CONSENT_BASES = frozenset({"consent", "explicit_consent"})
LI_BASES = frozenset({"legitimate_interest", "legitimate_interests"})
KNOWN_BASES = (
    CLAIMS_BASES
    | CONSENT_BASES
    | LI_BASES
    | {"contract", "legal_obligation", "public_task", "vital_interests"}
)
EXCEPTIONS = {
    "a": "Art 17(3)(a) freedom of expression and information",
    "c": "Art 17(3)(c) public interest in public health",
    "d": "Art 17(3)(d) archiving, research or statistics",
}
CLAIMS_MONTHS = 60  # C. civ. 2224 / C. com. L110-4: five-year limitation
ACCOUNTING_MONTHS = 120  # C. com. L123-22: ten years from the financial-year close


@dataclass(frozen=True)
class DataCategory:
    """One category of the subject's data and what is known about it."""

    category: str
    lawful_basis: str
    financial_year_end: date | None = None
    retain_until: date | None = None
    legal_hold: str | None = None
    exception: str | None = None
    unlawful: bool = False
    legal_obligation_to_erase: bool = False
    overriding_legitimate_grounds: bool = False
    direct_marketing: bool = False


@dataclass(frozen=True)
class ErasureContext:
    """The request and the relationship it concerns."""

    receipt: date
    subject_type: str = "customer"
    contract_status: str | None = None
    contract_end_date: date | None = None


@dataclass(frozen=True)
class ErasureDecision:
    """The action for one category, with its ground and any retention end."""

    category: str
    action: str
    ground: str
    retain_until: date | None = None


@dataclass(frozen=True)
class ErasureOutcome:
    """All decisions, in input order."""

    decisions: tuple[ErasureDecision, ...]

    @property
    def partial_refusal(self) -> bool:
        """True when some category is refused (Art 12(4): reasons and complaint rights)."""
        return any(d.action in (REFUSE, HOLD) for d in self.decisions)

    @property
    def art19_notify_for(self) -> list[str]:
        """Categories actually erased under Art 17(1), whose recipients Art 19 covers."""
        return [d.category for d in self.decisions if d.action == ERASE]


def _retained(
    item: DataCategory, ctx: ErasureContext, until: date | None, ground: str
) -> ErasureDecision:
    if until is not None and until < ctx.receipt:
        return ErasureDecision(item.category, ERASE, "Art 17(1)(a) retention period expired")
    return ErasureDecision(item.category, RETAIN, ground, until)


def _legal_obligation(item: DataCategory, ctx: ErasureContext) -> ErasureDecision:
    until = item.retain_until
    ground = "Art 17(3)(b) legal obligation"
    if item.category in ACCOUNTING or item.financial_year_end is not None:
        ground = "Art 17(3)(b) legal obligation (C. com. L123-22)"
        if until is None and item.financial_year_end is not None:
            until = add_months(item.financial_year_end, ACCOUNTING_MONTHS)
    return _retained(item, ctx, until, ground)


def _legal_claims(item: DataCategory, ctx: ErasureContext) -> ErasureDecision:
    if ctx.contract_status in ACTIVE_STATUSES:
        return ErasureDecision(item.category, REFUSE, "no Art 17(1) ground: contract running")
    until = item.retain_until
    if until is None and ctx.contract_end_date is not None:
        until = add_months(ctx.contract_end_date, CLAIMS_MONTHS)
    ground = "Art 17(3)(e) legal claims (5-year limitation, C. civ. 2224 / C. com. L110-4)"
    return _retained(item, ctx, until, ground)


def _public_task(item: DataCategory, ctx: ErasureContext) -> ErasureDecision:
    return _retained(item, ctx, item.retain_until, "Art 17(3)(b) public task")


def _by_basis(item: DataCategory, ctx: ErasureContext) -> ErasureDecision:
    basis, cat = item.lawful_basis, item.category
    if basis in CONSENT_BASES:
        return ErasureDecision(cat, ERASE, "Art 17(1)(b) consent withdrawn")
    if basis == "contract":
        if ctx.contract_status in ACTIVE_STATUSES:
            ground = (
                "no Art 17(1) ground: still necessary for the running contract"
                " (seed policy: erasure only after contract end)"
            )
            return ErasureDecision(cat, REFUSE, ground)
        return ErasureDecision(cat, ERASE, "Art 17(1)(a) no longer necessary")
    if basis in LI_BASES:
        if item.direct_marketing or ctx.subject_type == "prospect":
            return ErasureDecision(cat, ERASE, "Art 17(1)(c) objection to direct marketing")
        if item.overriding_legitimate_grounds:
            return ErasureDecision(cat, REFUSE, "Art 17(1)(c) not met: overriding grounds")
        return ErasureDecision(cat, ERASE, "Art 17(1)(c) objection, no overriding grounds")
    if basis == "public_task":
        return _public_task(item, ctx)
    if basis == "vital_interests":
        return ErasureDecision(cat, REFUSE, "no Art 17(1) ground: vital interests")
    raise RuleError("INVALID_INPUT", f"unknown lawful basis {basis!r} for {cat!r}")


def _limits(item: DataCategory, ctx: ErasureContext) -> ErasureDecision | None:
    """What prevails over any order to erase: holds, Art 17(3), statutory retention."""
    if item.legal_hold is not None:
        ground = f"Art 17(3)(e) legal claims: active legal hold {item.legal_hold}".strip()
        return ErasureDecision(item.category, HOLD, ground)
    if item.exception is not None:
        if item.exception not in EXCEPTIONS:
            return (
                _legal_claims(item, ctx) if item.exception == "e" else _legal_obligation(item, ctx)
            )
        return ErasureDecision(item.category, REFUSE, EXCEPTIONS[item.exception])
    if item.lawful_basis == "legal_obligation":
        return _legal_obligation(item, ctx)
    if item.lawful_basis in CLAIMS_BASES:
        return _legal_claims(item, ctx)
    return None


def decide(item: DataCategory, ctx: ErasureContext) -> ErasureDecision:
    """Decide one category: holds, then Art 17(3) exceptions, then Art 17(1) grounds."""
    limited = _limits(item, ctx)
    if limited is not None:
        return limited
    if item.legal_obligation_to_erase:
        return ErasureDecision(item.category, ERASE, "Art 17(1)(e) legal obligation to erase")
    if item.unlawful:
        return ErasureDecision(item.category, ERASE, "Art 17(1)(d) unlawfully processed")
    return _by_basis(item, ctx)


def ordered_erasure(
    items: Sequence[DataCategory], ctx: ErasureContext, ground: str
) -> ErasureOutcome:
    """Erasure ordered by a rule other than Art 17(1) (e.g. LIL art 85 directives).

    No Art 17(1) ground is needed, but holds, Art 17(3) exceptions and statutory retention
    still prevail: such data is retained restricted until its own end (NS-048 art 5).
    """
    decisions = []
    for item in items:
        if item.lawful_basis not in KNOWN_BASES:
            raise RuleError("INVALID_INPUT", f"unknown lawful basis {item.lawful_basis!r}")
        limited = _limits(item, ctx)
        if limited is None and item.lawful_basis == "public_task":
            limited = _public_task(item, ctx)
        decisions.append(limited or ErasureDecision(item.category, ERASE, ground))
    return ErasureOutcome(tuple(decisions))


def erasure_decisions(items: Sequence[DataCategory], ctx: ErasureContext) -> ErasureOutcome:
    """Erase, refuse, retain or hold each category (GDPR Art 17(1), 17(3); NS-048 art 5)."""
    return ErasureOutcome(tuple(decide(item, ctx) for item in items))
