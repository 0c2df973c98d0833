"""R-DSR-12: digital death in France (Loi 78-17 art 84-85)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from shared.rules.errors import RuleError

SETTLEMENT_ACTIONS = frozenset(
    {
        "access_for_settlement_of_succession",
        "recovery_of_digital_assets",
        "recovery_of_family_memories",
    }
)
DEATH_ACTIONS = frozenset(
    {
        "close_user_accounts",
        "object_to_further_processing",
        "update_data_to_reflect_death",
        "record_death",
    }
)
REQUIRED_HEIR_PROOFS = frozenset({"death_certificate", "proof_of_heir_status"})
TOS_ONLY = "accepted_via_terms_of_service_only"


@dataclass(frozen=True)
class Directives:
    """Directives left by the deceased on retention, erasure and communication of data."""

    type: str
    content: tuple[str, ...] = ()
    specific_consent: bool | None = None
    registered_with_controller: bool | None = None
    registered_with_certified_third_party: bool | None = None
    designated_person: str | None = None
    designated_person_deceased: bool = False
    revoked: bool = False


@dataclass(frozen=True)
class PostMortemResult:
    """Who may act and which requested actions are allowed."""

    directives_valid: bool | None
    competent_requester: str
    allowed_actions: tuple[str, ...]
    refused_actions: tuple[str, ...]
    free_of_charge_justification_of_operations: bool
    reason: str


def directives_valid(d: Directives) -> bool:
    """Particular directives need specific consent; general ones a certified third (LIL art 85)."""
    if d.revoked or TOS_ONLY in d.content:
        return False
    if d.type == "particular":
        return d.specific_consent is True and d.registered_with_controller is not False
    if d.type == "general":
        return d.registered_with_certified_third_party is not False
    raise RuleError("INVALID_INPUT", f"directives type must be general or particular: {d.type!r}")


def competent_requester(d: Directives | None) -> str:
    """The designated person executes valid directives; absent one, the heirs (art 85)."""
    if d is None or not directives_valid(d):
        return "heirs"
    if d.designated_person and not d.designated_person_deceased:
        return d.designated_person
    return "heirs"


def _contradicts(action: str, content: tuple[str, ...]) -> bool:
    text = " ".join(content)
    if "no_communication" in text and ("communication" in action or "access" in action):
        return True
    keep = "no_erasure" in text or "keep_data" in text
    return keep and ("erase" in action or "close" in action)


def _under_directives(
    d: Directives, role: str, requester: str | None, actions: Sequence[str]
) -> tuple[list[str], str]:
    competent = competent_requester(d)
    is_competent = (
        (competent == "heirs" and role == "heir")
        or role == "designated_person"
        or (requester is not None and requester == competent)
    )
    if competent != "heirs" and role == "heir" and requester != competent:
        is_competent = False
    if not is_competent:
        return [], f"directives exist; competent requester is {competent}"
    allowed = [a for a in actions if not _contradicts(a, d.content)]
    return allowed, "directives executed as written; contrary actions refused"


def _heirs_default(role: str, proofs: Sequence[str] | None, actions: Sequence[str]) -> list[str]:
    if role != "heir":
        return []
    if proofs is not None and not set(proofs) >= REQUIRED_HEIR_PROOFS:
        return []
    return [a for a in actions if a in SETTLEMENT_ACTIONS or a in DEATH_ACTIONS]


def postmortem(
    role: str,
    directives: Directives | None,
    actions: Sequence[str],
    proofs: Sequence[str] | None = None,
    requester: str | None = None,
) -> PostMortemResult:
    """Decide a request about a deceased person's data (Loi 78-17 art 84-85; GDPR Art 12(3))."""
    valid = None if directives is None else directives_valid(directives)
    if directives is not None and valid:
        allowed, reason = _under_directives(directives, role, requester, actions)
        free = False
    else:
        allowed = _heirs_default(role, proofs, actions)
        reason = "heirs' default rights: settle the estate and have the death taken into account"
        free = any(a in DEATH_ACTIONS for a in allowed)
    refused = tuple(a for a in actions if a not in allowed)
    return PostMortemResult(
        valid, competent_requester(directives), tuple(allowed), refused, free, reason
    )
