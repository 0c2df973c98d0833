"""R-PROC-1: deletion or return of data at the end of a processing contract (GDPR Art 28(3)(g))."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta

from shared.rules.errors import RuleError

EVIDENCE = {
    "delete": "certificate_of_destruction_incl_subprocessors_and_backups",
    "return": "return_receipt_and_certificate_of_deletion_of_copies",
}


@dataclass(frozen=True)
class ProcessorStatus:
    """Where a processor stands on end-of-contract deletion or return."""

    due_date: date
    status: str
    evidence_required: str
    retained_under_law: tuple[str, ...] = ()


def processor_status(
    contract_end: date,
    contractual_days: int,
    controller_choice: str,
    certificate_received_on: date | None,
    evaluated_on: date | None,
    retention_required_by_law: tuple[str, ...] = (),
) -> ProcessorStatus:
    """Due = end + contractual days; closed/late/pending/overdue (GDPR Art 28(3)(g); SCC 10(d))."""
    if controller_choice not in EVIDENCE:
        raise RuleError("INVALID_INPUT", "controller_choice must be delete or return")
    if contractual_days < 0:
        raise RuleError("INVALID_INPUT", "contractual_days cannot be negative")
    due = contract_end + timedelta(days=contractual_days)
    if certificate_received_on is not None:
        status = "closed" if certificate_received_on <= due else "closed_late"
    elif evaluated_on is not None and evaluated_on > due:
        status = "overdue"
    else:
        status = "pending"
    return ProcessorStatus(due, status, EVIDENCE[controller_choice], retention_required_by_law)
