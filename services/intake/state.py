"""The stored form of a request's lifecycle: document fields <-> ``domain.Lifecycle``."""

from __future__ import annotations

from datetime import date
from typing import Any

from services.intake import domain
from services.intake.domain import Answer, Lifecycle, Status
from services.intake.messages import jsonable
from shared import rules


def _day(value: Any) -> date | None:
    return None if value is None else date.fromisoformat(str(value))


def lifecycle(doc: dict[str, Any]) -> Lifecycle:
    """The lifecycle stored in a request document."""
    ext, ans = doc.get("extension"), doc.get("answer")
    pauses = tuple(
        rules.Pause(date.fromisoformat(p["requested_on"]), _day(p.get("received_on")), p["reason"])
        for p in doc.get("pauses", [])
    )
    return Lifecycle(
        status=Status(doc["status"]),
        receipt=date.fromisoformat(doc["receipt_date"]),
        calendar=doc.get("calendar", "FR-metropole"),
        resume_to=Status(doc.get("resume_to", Status.RECEIVED)),
        pauses=pauses,
        extension=(rules.Extension(date.fromisoformat(ext["notified_on"]), True) if ext else None),
        extension_reasons=tuple(ext["reasons"]) if ext else (),
        answer=(
            Answer(
                date.fromisoformat(ans["responded_on"]),
                Status(ans["outcome"]),
                tuple(ans.get("reasons", [])),
                bool(ans.get("complaint_rights_given")),
            )
            if ans
            else None
        ),
        open_work=frozenset(doc.get("open_work", [])),
    )


def fields(lc: Lifecycle) -> dict[str, Any]:
    """The document fields that hold ``lc``, its clock included."""
    answer = None
    if lc.answer is not None:
        a = lc.answer
        answer = {
            "responded_on": a.responded_on,
            "outcome": a.outcome.value,
            "reasons": list(a.reasons),
            "complaint_rights_given": a.complaint_rights_given,
        }
    extension = None
    if lc.extension is not None:
        extension = {
            "notified_on": lc.extension.notified_on,
            "reasons": list(lc.extension_reasons),
        }
    out: dict[str, Any] = jsonable(
        {
            "status": lc.status.value,
            "resume_to": lc.resume_to.value,
            "receipt_date": lc.receipt,
            "calendar": lc.calendar,
            "pauses": [
                {"requested_on": p.requested_on, "received_on": p.received_on, "reason": p.reason}
                for p in lc.pauses
            ],
            "extension": extension,
            "answer": answer,
            "open_work": sorted(lc.open_work),
            "clock": domain.clock(lc),
        }
    )
    return out
