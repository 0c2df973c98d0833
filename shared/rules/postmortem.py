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
ERASURE_WORDS = ("erase", "erasure", "delete", "deletion")
DIRECTIVE_ERASURE_GROUND = "LIL art 85: the deceased's directives order erasure"
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
    erasure_ordered: bool = False


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


def orders_erasure(d: Directives) -> bool:
    """Whether the directives order the data erased (LIL art 85: retention, erasure, ...)."""
    if not directives_valid(d) or any(_keeps(c) for c in d.content):
        return False
    return any(w in c for c in d.content for w in ERASURE_WORDS)


def _keeps(token: str) -> bool:
    return "keep_data" in token or (token.startswith("no_") and "eras" in token)


def _contradicts(action: str, content: tuple[str, ...]) -> bool:
    text = " ".join(content)
    if "no_communication" in text and ("communication" in action or "access" in action):
        return True
    keep = "no_erasure" in text or "keep_data" in text
    return keep and ("erase" in action or "close" in action)


def _under_directives(
    d: Directives, role: str, requester: str | None, actions: Sequence[str]
) -> tuple[list[str], str, bool]:
    competent = competent_requester(d)
    is_competent = (
        (competent == "heirs" and role == "heir")
        or role == "designated_person"
        or (requester is not None and requester == competent)
    )
    if competent != "heirs" and role == "heir" and requester != competent:
        is_competent = False
    if not is_competent:
        return [], f"directives exist; competent requester is {competent}", False
    allowed = [a for a in actions if not _contradicts(a, d.content)]
    return allowed, "directives executed as written; contrary actions refused", True


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
    """Decide a request about a deceased person's data (Loi 78-17 art 84-85; GDPR Art 12(3)).

    ``erasure_ordered``: valid directives order erasure and the requester may execute them;
    the per-category decisions are then ``erasure.ordered_erasure`` (R-DSR-6 limits apply).
    """
    valid = None if directives is None else directives_valid(directives)
    ordered = False
    if directives is not None and valid:
        allowed, reason, competent = _under_directives(directives, role, requester, actions)
        ordered = competent and orders_erasure(directives)
        free = False
    else:
        allowed = _heirs_default(role, proofs, actions)
        reason = "heirs' default rights: settle the estate and have the death taken into account"
        free = any(a in DEATH_ACTIONS for a in allowed)
    refused = tuple(a for a in actions if a not in allowed)
    return PostMortemResult(
        valid, competent_requester(directives), tuple(allowed), refused, free, reason, ordered
    )
