"""Decisions at intake, through the rules engine and the active policy (pure).

Access frequency (R-DSR-4), per-category erasure (R-DSR-6), objection (R-DSR-7) and
post-mortem requests (R-DSR-12). The output says what to publish; nothing here does I/O.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date
from typing import Any

from services.intake.details import CategoryDetail, Details
from shared import rules
from shared.rules.retention import ALIASES
from shared.rules.rights import MARKETING_PURPOSES

ERASE_ACTIONS = {"erase": "erase", "retain_restricted": "restrict"}

# Lawful basis (and purpose) assumed for a category named without one.
DEFAULT_BASIS: dict[str, tuple[str, str | None]] = {
    "profile": ("contract", None),
    "account_profile": ("contract", None),
    "contract_data": ("contract", None),
    "marketing": ("consent", "direct_marketing"),
    "marketing_preferences": ("consent", "direct_marketing"),
    "newsletter": ("consent", "direct_marketing"),
    "prospect": ("legitimate_interest", "direct_marketing"),
    "customer": ("legal_claims", None),
    "contract": ("legal_claims", None),
    "contract_evidence": ("legal_claims", None),
    "accounting": ("legal_obligation", None),
    "candidate": ("consent", None),
    "technical": ("legitimate_interest", None),
    "cctv": ("legitimate_interest", None),
    "building_access": ("legitimate_interest", None),
}
# Categories assumed when a request names none, by subject kind; retention categories
# (customer, accounting, ...) are kept only when the active policy schedules them.
KIND_DEFAULTS: dict[str, tuple[str, ...]] = {
    "customer": ("profile", "marketing", "customer", "accounting"),
    "prospect": ("prospect", "marketing"),
    "candidate": ("candidate",),
    "employee": ("profile",),
    "visitor": ("technical", "cctv"),
}
NON_SCHEDULE = frozenset({"profile", "marketing"})
CLAIMS = frozenset({"legal_claims", "legitimate_interest_legal_claims"})


@dataclass
class Decided:
    """What intake decided on a new request."""

    decisions: list[dict[str, Any]] = field(default_factory=list)
    flags: list[str] = field(default_factory=list)
    frequency: dict[str, Any] | None = None
    objection: dict[str, Any] | None = None
    post_mortem: dict[str, Any] | None = None
    work: list[dict[str, Any]] = field(default_factory=list)
    work_case: str | None = None
    details_error: str | None = None
    collect: list[str] | None = None  # access/portability: categories to collect ([] = all)

    @property
    def has_work(self) -> bool:
        """Whether the request causes work for the erasure service (erasure or collection)."""
        return bool(self.work) or self.collect is not None

    @property
    def anything(self) -> bool:
        """Whether there is a decision worth a ``gardien.request.decided`` event."""
        return bool(self.decisions or self.flags or self.objection or self.post_mortem)


def access_screening(receipt: date, history: Sequence[date], policy: rules.Policy) -> Decided:
    """Art 12(5) screening: flag for review above the policy cap, never refuse (R-DSR-4)."""
    cap = policy.rights.access_max_per_12_months
    res = rules.access_frequency(receipt, history, cap)
    out = Decided(
        frequency={
            "count_in_window": res.count_in_window,
            "window_start_exclusive": res.window_start_exclusive,
            "max_per_12_months": cap,
            "auto_refuse": res.auto_refuse,
        }
    )
    if res.flag_art12_5_review:
        out.flags.append("art12_5_review")
    return out


def erasure(kind: str, details: Details, receipt: date, policy: rules.Policy) -> Decided:
    """Per-category erasure decisions and the erasure work they cause (R-DSR-6)."""
    status, unknown = _contract_status(kind, details, receipt, policy)
    ctx = rules.ErasureContext(receipt, kind, status, details.contract_end_date)
    items = [_category(c, details, receipt, policy) for c in _categories(kind, details, policy)]
    out = _with_work(Decided(), rules.erasure_decisions(items, ctx), policy)
    if unknown:
        out.flags.append("contract_status_unknown")
    return out


def _with_work(out: Decided, outcome: rules.ErasureOutcome, policy: rules.Policy) -> Decided:
    """Record the decisions and the erasure work (case ``req``) they cause."""
    out.work_case = "req"
    schedule = policy.retention
    for d in outcome.decisions:
        entry: dict[str, Any] = {"category": d.category, "action": d.action, "ground": d.ground}
        if d.retain_until is not None:
            entry["retain_until"] = d.retain_until
        out.decisions.append(entry)
        if d.action in ERASE_ACTIONS:
            action = ERASE_ACTIONS[d.action]
            rule = schedule.get(ALIASES.get(d.category, d.category))
            if action == "erase" and rule is not None and rule.action == "anonymise":
                action = "anonymise"
            out.work.append({**entry, "action": action})
    if outcome.partial_refusal:
        out.flags.append("partial_refusal")  # Art 12(4): reasons and complaint rights
    return out


def objection(details: Details) -> Decided:
    """Objection: direct marketing stops unconditionally, else a balancing test (R-DSR-7)."""
    purpose = details.purpose or "direct_marketing"
    res = rules.objection(purpose, details.lawful_basis)
    out = Decided(
        objection={
            "purpose": purpose,
            "direct_marketing": res.direct_marketing,
            "stop_processing_for_purpose": res.stop_processing_for_purpose,
            "balancing_test": res.balancing_test,
            "keep_suppression_entry": res.direct_marketing,
        }
    )
    if res.stop_processing_for_purpose is True:
        ground = (
            "Art 21(2)-(3) objection to direct marketing"
            if res.direct_marketing
            else "Art 7(3) consent withdrawn by objection"
        )
        entry = {"category": purpose, "action": "suppress", "ground": ground}
        out.decisions.append(entry)
        out.work, out.work_case = [entry], "obj"
    else:
        out.flags.append("art21_1_balancing_review")
    return out


def post_mortem(kind: str, details: Details, receipt: date, policy: rules.Policy) -> Decided:
    """A deceased person's data: directives, else the heirs' default rights (R-DSR-12).

    Directives that order erasure give per-category decisions and erasure work exactly like
    an erasure request (case ``req``); statutory retention stays restricted until its end.
    """
    d = details.directives
    directives = None
    if d is not None:
        directives = rules.Directives(**{**d.model_dump(), "content": tuple(d.content)})
    res = rules.postmortem(
        details.requester_role or "heir",
        directives,
        details.requested_actions,
        details.proofs,
        details.requester_id,
    )
    out = Decided(
        post_mortem={
            "directives_valid": res.directives_valid,
            "competent_requester": res.competent_requester,
            "allowed_actions": list(res.allowed_actions),
            "refused_actions": list(res.refused_actions),
            "free_of_charge_justification_of_operations": (
                res.free_of_charge_justification_of_operations
            ),
            "erasure_ordered": res.erasure_ordered,
            "reason": res.reason,
        }
    )
    if res.erasure_ordered:
        _directed_erasure(out, kind, details, receipt, policy)
    elif not details.requested_actions:
        out.flags.append("post_mortem_actions_missing")
    if res.refused_actions and "partial_refusal" not in out.flags:
        out.flags.append("partial_refusal")
    return out


def _directed_erasure(
    out: Decided, kind: str, details: Details, receipt: date, policy: rules.Policy
) -> None:
    """LIL art 85 erasure: the relationship ended with the death [I]."""
    end = details.contract_end_date or details.date_of_death
    known = details.model_copy(update={"contract_end_date": end})
    ctx = rules.ErasureContext(receipt, kind, details.contract_status or "terminated", end)
    items = [_category(c, known, receipt, policy) for c in _categories(kind, known, policy)]
    ground = rules.DIRECTIVE_ERASURE_GROUND
    _with_work(out, rules.ordered_erasure(items, ctx, ground), policy)
    if any(x["action"] == "retain_restricted" and "retain_until" not in x for x in out.decisions):
        out.flags.append("retention_end_unknown")


def decide(
    right: str,
    kind: str,
    details: Details,
    receipt: date,
    policy: rules.Policy,
    access_history: Sequence[date] = (),
) -> Decided:
    """Everything intake decides on a new request of ``right``."""
    if right == "access":
        return collection(access_screening(receipt, access_history, policy), details)
    if right == "portability":
        return collection(Decided(), details)
    if right == "erasure":
        return erasure(kind, details, receipt, policy)
    if right == "objection":
        return objection(details)
    if right == "post_mortem":
        return post_mortem(kind, details, receipt, policy)
    return Decided()


def collection(out: Decided, details: Details) -> Decided:
    """Access (Art 15) and portability (Art 20) collect the subject's data (case ``acc``)."""
    names = details.categories or []
    out.collect = [c.category if isinstance(c, CategoryDetail) else c for c in names]
    out.work_case = "acc"
    return out


def _contract_status(
    kind: str, details: Details, receipt: date, policy: rules.Policy
) -> tuple[str | None, bool]:
    """The contract status the rules see; unknown customers count as active (policy)."""
    if details.contract_status is not None:
        return details.contract_status, False
    end = details.contract_end_date
    if end is not None:
        return ("terminated" if end <= receipt else "active"), False
    if kind in ("customer", "employee") and policy.rights.erasure_only_after_contract_end:
        return "active", True
    return None, False


def _categories(kind: str, details: Details, policy: rules.Policy) -> list[CategoryDetail]:
    if details.categories is not None:
        raw = details.categories
    else:
        names = KIND_DEFAULTS.get(kind, ("profile",))
        raw = [n for n in names if n in NON_SCHEDULE or n in policy.retention]
    return [c if isinstance(c, CategoryDetail) else CategoryDetail(category=c) for c in raw]


def _category(
    c: CategoryDetail, details: Details, receipt: date, policy: rules.Policy
) -> rules.DataCategory:
    basis: str | None = c.lawful_basis
    purpose = c.purpose
    if basis is None:
        if c.category not in DEFAULT_BASIS:
            raise rules.RuleError(
                "MISSING_FIELD", f"details.categories: {c.category!r} needs a lawful_basis"
            )
        basis, default_purpose = DEFAULT_BASIS[c.category]
        purpose = purpose or default_purpose
    hold = c.legal_hold or next(
        (h.matter for h in details.legal_holds if not h.categories or c.category in h.categories),
        None,
    )
    fye, until = c.financial_year_end, c.retain_until
    rule = policy.retention.get(ALIASES.get(c.category, c.category))
    if rule is not None and until is None:
        if rule.start_event == "financial_year_close" and basis == "legal_obligation":
            fye = fye or date((details.contract_end_date or receipt).year, 12, 31)
            until = rules.add_months(fye, rule.duration_months)
        elif rule.start_event == "contract_end" and basis in CLAIMS and details.contract_end_date:
            until = rules.add_months(details.contract_end_date, rule.duration_months)
    return rules.DataCategory(
        category=c.category,
        lawful_basis=basis,
        financial_year_end=fye,
        retain_until=until,
        legal_hold=hold,
        exception=c.exception,
        unlawful=c.unlawful,
        legal_obligation_to_erase=c.legal_obligation_to_erase,
        overriding_legitimate_grounds=c.overriding_legitimate_grounds,
        direct_marketing=purpose in MARKETING_PURPOSES if purpose else False,
    )
