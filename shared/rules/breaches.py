"""Personal-data breaches: R-BR-1 72 h clock, -2 awareness via processor, -3 late, -4 gates."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from shared.rules.calendar import add_hours
from shared.rules.errors import RuleError

NOTIFICATION_HOURS = 72
RISK_LEVELS = ("unlikely", "risk", "high")
ART34_3 = {
    "a": "Art 34(3)(a) data unintelligible (e.g. encrypted, key not compromised)",
    "b": "Art 34(3)(b) subsequent measures remove the high risk",
    "c": "Art 34(3)(c) disproportionate effort: public communication instead",
}


@dataclass(frozen=True)
class BreachDeadline:
    """The Art 33(1) clock and what is known about its observance."""

    clock_start: datetime
    deadline: datetime
    processor_delay_hours: float | None = None
    processor_sla_breached: bool | None = None
    late: bool | None = None

    @property
    def weekend_holiday_shift(self) -> bool:
        """Always False: hour periods never roll over (Reg 1182/71 Art 3(4))."""
        return False

    @property
    def reasons_for_delay_required(self) -> bool:
        """A late notification must give the reasons for the delay (GDPR Art 33(1))."""
        return self.late is True


def breach_deadline(
    aware_at: datetime,
    *,
    processor_aware_at: datetime | None = None,
    processor_sla_hours: float | None = None,
    notified_at: datetime | None = None,
    hours: float = NOTIFICATION_HOURS,
) -> BreachDeadline:
    """Awareness + 72 elapsed hours, no roll-over (GDPR Art 33(1)-(2); Reg 1182/71 Art 3(4))."""
    deadline = add_hours(aware_at, hours)
    delay = breached = None
    if processor_aware_at is not None:
        seconds = (aware_at - processor_aware_at).total_seconds()
        if seconds < 0:
            raise RuleError("INVALID_INPUT", "controller informed before the processor was aware")
        delay = seconds / 3600
        breached = processor_sla_hours is not None and delay > processor_sla_hours
    late = None if notified_at is None else notified_at > deadline
    return BreachDeadline(add_hours(aware_at, 0), deadline, delay, breached, late)


WITHOUT_UNDUE_DELAY = "without_undue_delay"
PUBLIC_COMMUNICATION = "public_communication"


@dataclass(frozen=True)
class BreachGates:
    """Who must be told of a breach (GDPR Art 33-34).

    Under Art 34(3)(c) ``communicate_to_data_subjects`` is False because the individual
    communication is replaced (``communication_replaced_by``) by a public one, which keeps
    the Art 34(1) timing (``communication_timing``).
    """

    notify_supervisory_authority: bool
    communicate_to_data_subjects: bool
    public_communication: bool
    ground: str
    document_internally: bool = True

    @property
    def communication_replaced_by(self) -> str | None:
        """``public_communication`` under Art 34(3)(c), else None."""
        return PUBLIC_COMMUNICATION if self.public_communication else None

    @property
    def communication_timing(self) -> str | None:
        """``without_undue_delay`` for any communication owed (Art 34(1)), else None."""
        owed = self.communicate_to_data_subjects or self.public_communication
        return WITHOUT_UNDUE_DELAY if owed else None


KEYWORDS = {"unintelligible": "a", "encrypt": "a", "subsequent": "b", "disproportionate": "c"}


def _condition_letter(condition: str) -> str:
    text = condition.strip().lower()
    if len(text) > 2 and text[1] != "_":
        for word, letter in KEYWORDS.items():
            if word in text:
                return letter
    for prefix in ("art 34(3)", "34(3)", "art34_3_", "art34(3)"):
        text = text.removeprefix(prefix)
    letter = text.strip("()_ ")[:1]
    if letter not in ART34_3:
        raise RuleError("INVALID_INPUT", f"unknown Art 34(3) condition {condition!r}")
    return letter


def breach_gates(risk_level: str, art34_3_conditions: Sequence[str] = ()) -> BreachGates:
    """SA unless unlikely; subjects if high, save Art 34(3) (GDPR Art 33(1), 33(5), 34)."""
    if risk_level not in RISK_LEVELS:
        raise RuleError("INVALID_INPUT", f"risk_level must be one of {RISK_LEVELS}")
    if risk_level == "unlikely":
        return BreachGates(False, False, False, "Art 33(1) unlikely to result in a risk; 33(5)")
    if risk_level == "risk":
        return BreachGates(True, False, False, "Art 33(1) risk: notify the supervisory authority")
    letters = sorted({_condition_letter(c) for c in art34_3_conditions})
    if not letters:
        return BreachGates(True, True, False, "Art 34(1) high risk")
    public = letters == ["c"]
    return BreachGates(True, False, public, "; ".join(ART34_3[x] for x in letters))
