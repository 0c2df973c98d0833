"""Pure rules of a processor's offboarding (R-PROC-1): its terms and certificate deadline."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from pydantic import BaseModel, ConfigDict

from shared.rules import processor_status
from shared.rules.calendar import zone

OVERDUE = "processor_certificate_overdue"


class ProcessorTerms(BaseModel):
    """R-PROC-1 terms of a processor replacement and where the certificate stands."""

    model_config = ConfigDict(extra="ignore", validate_assignment=False)

    old: str
    new: str
    controller_choice: str
    contractual_days: int
    effective_at: datetime
    due_date: str
    status: str
    evidence_required: str
    certificate_ref: str | None = None
    certified_on: str | None = None
    overdue_flagged_at: datetime | None = None

    def done(self) -> bool:
        """The certificate is in (on time or late)."""
        return self.status in {"closed", "closed_late"}

    def due_at(self) -> datetime | None:
        """When the pending certificate becomes overdue (24:00 Paris of the due date)."""
        return day_end(date.fromisoformat(self.due_date)) if self.status == "pending" else None


def flag_overdue(terms: ProcessorTerms, now: datetime) -> bool:
    """Mark a pending certificate overdue once its day has passed; True when it just did."""
    if terms.status != "pending" or _status(terms, None, local_day(now)).status != "overdue":
        return False
    terms.status, terms.overdue_flagged_at = "overdue", now
    return True


def record_certificate(terms: ProcessorTerms, on: date, reference: str | None) -> bool:
    """Record the certificate dated ``on``; False when one was recorded already."""
    if terms.certified_on is not None:
        return False
    terms.status = _status(terms, on, None).status
    terms.certified_on, terms.certificate_ref = on.isoformat(), reference
    return True


def local_day(instant: datetime) -> date:
    """The Europe/Paris calendar day of ``instant``."""
    return instant.astimezone(zone()).date()


def day_end(day: date) -> datetime:
    """24:00 Europe/Paris of ``day``, as a UTC instant."""
    return datetime.combine(day + timedelta(days=1), time(0), zone()).astimezone(UTC)


def _status(terms: ProcessorTerms, certified: date | None, today: date | None) -> Any:
    return processor_status(
        local_day(terms.effective_at),
        terms.contractual_days,
        terms.controller_choice,
        certified,
        today,
    )
