"""R-DSR-7..11: objection, restriction, portability, Art 19 notices, rectification, Art 22."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

MARKETING_PURPOSES = frozenset(
    {"direct_marketing", "prospecting", "marketing", "profiling_for_direct_marketing"}
)
RESTRICTION_UNTIL = {
    "accuracy_contested": "accuracy_verified",
    "unlawful_processing": "lifted_at_data_subject_request",
    "legal_claims": "legal_claims_concluded",
    "objection_pending": "objection_assessed",
}
RESTRICTION_ALIASES = {
    "unlawful": "unlawful_processing",
    "unlawful_subject_prefers_restriction": "unlawful_processing",
    "no_longer_needed_legal_claims": "legal_claims",
    "objection": "objection_pending",
}
ALLOWED_WHILE_RESTRICTED = (
    "storage",
    "with_consent",
    "legal_claims",
    "protection_of_others",
    "important_public_interest",
)
PORTABLE_BASES = frozenset({"consent", "explicit_consent", "contract"})
ART19_ACTIONS = frozenset({"rectification", "erasure", "restriction"})
ART22_BASES = frozenset({"contract", "law", "authorised_by_law", "explicit_consent"})


@dataclass(frozen=True)
class ObjectionDecision:
    """Art 21 outcome for one purpose."""

    direct_marketing: bool
    stop_processing_for_purpose: bool | str
    balancing_test: bool


def objection(purpose: str, lawful_basis: str | None = None) -> ObjectionDecision:
    """Direct marketing stops unconditionally, else balancing (GDPR Art 21(1)-(3), 18(1)(d))."""
    if purpose in MARKETING_PURPOSES:
        return ObjectionDecision(True, True, False)
    if lawful_basis in ("consent", "explicit_consent"):
        return ObjectionDecision(False, True, False)  # read as withdrawal, Art 7(3)
    return ObjectionDecision(False, "unless_compelling_legitimate_grounds_or_legal_claims", True)


@dataclass(frozen=True)
class RestrictionDecision:
    """Art 18 outcome."""

    restrict: bool
    restricted_until: str | None
    allowed_processing: tuple[str, ...]


def restriction(ground: str) -> RestrictionDecision:
    """Restrict on one of the four Art 18(1) grounds; store only (GDPR Art 18(1)-(3))."""
    key = RESTRICTION_ALIASES.get(ground, ground)
    if key not in RESTRICTION_UNTIL:
        return RestrictionDecision(False, None, ())
    return RestrictionDecision(True, RESTRICTION_UNTIL[key], ALLOWED_WHILE_RESTRICTED)


@dataclass(frozen=True)
class PortableItem:
    """A data category considered for portability."""

    category: str
    lawful_basis: str
    automated: bool = True
    provided_by_data_subject: bool = True


def portability(items: Sequence[PortableItem]) -> tuple[list[str], list[str]]:
    """In scope only for consent/contract data processed by automated means (GDPR Art 20(1))."""
    inside = [
        i.category
        for i in items
        if i.lawful_basis in PORTABLE_BASES and i.automated and i.provided_by_data_subject
    ]
    return inside, [i.category for i in items if i.category not in inside]


@dataclass(frozen=True)
class Recipient:
    """A recipient the data were disclosed to."""

    id: str
    reachable: bool = True
    disproportionate_effort_documented: bool = False


@dataclass(frozen=True)
class Art19Result:
    """Whom to notify of a rectification, erasure or restriction."""

    triggered: bool
    notify: tuple[str, ...]
    not_notified: tuple[tuple[str, str], ...]


def art19_notifications(
    action_taken: str, carried_out: bool, recipients: Sequence[Recipient]
) -> Art19Result:
    """Notify each recipient unless impossible or disproportionate (GDPR Art 19)."""
    if action_taken not in ART19_ACTIONS or not carried_out:
        return Art19Result(False, (), ())
    notify = tuple(r.id for r in recipients if r.reachable)
    skipped = tuple(
        (
            r.id,
            "impossible_or_disproportionate_effort_documented"
            if r.disproportionate_effort_documented
            else "impossible_document_why",
        )
        for r in recipients
        if not r.reachable
    )
    return Art19Result(True, notify, skipped)


@dataclass(frozen=True)
class Art22Result:
    """Whether a solely automated significant decision may stand, and the safeguards."""

    art22_applies: bool
    decision_permitted: bool
    human_intervention_required: bool


def automated_decision(
    solely_automated: bool, significant_effect: bool, basis: str | None
) -> Art22Result:
    """Solely automated decisions need contract, law or explicit consent (GDPR Art 22(1)-(3))."""
    if not (solely_automated and significant_effect):
        return Art22Result(False, True, False)
    permitted = basis in ART22_BASES
    return Art22Result(True, permitted, True)
