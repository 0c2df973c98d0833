"""The fire-time gate of retention purges: a hold recorded before the purge fires wins.

A hold is written to ``holds`` first and applied to the timers it covers afterwards
(``retention.hold_placed``). The scheduler looks at ``holds`` again when a purge is about to
fire and, if an active hold covers the timer but is not on it yet, blocks the timer in the
same leased, version-checked write that would otherwise have fired it (R-RET-4).
"""

from __future__ import annotations

from typing import Any

from services.deadlines import clocks
from services.deadlines.messages import PURGE, timer_fields
from shared.rules import Policy

Doc = dict[str, Any]


def hold_entry(hold: Doc) -> Doc:
    """A hold as a retention timer's inputs record it."""
    return {
        "key": hold["_id"],
        "matter": hold["matter"],
        "opened_on": hold["opened_on"],
        "released_on": hold.get("released_on"),
    }


def unapplied(doc: Doc, holds: list[Doc]) -> list[Doc]:
    """Active holds covering the retention timer ``doc`` that its inputs do not record."""
    known = {h["key"] for h in doc.get("inputs", {}).get("holds", [])}
    refs, category = doc.get("subject_refs", []), doc.get("category", "")
    return [
        h
        for h in holds
        if h.get("active") and h["_id"] not in known and clocks.hold_applies(h, refs, category)
    ]


def held_fields(doc: Doc, holds: list[Doc], policy: Policy) -> Doc:
    """The fields that record ``holds`` on the timer instead of firing it (lease freed)."""
    inputs = dict(doc["inputs"])
    inputs["holds"] = [*inputs.get("holds", []), *(hold_entry(h) for h in holds)]
    spec = clocks.retention_clock(str(doc["_id"]), inputs, policy)
    fields = timer_fields(spec, set(doc.get("fired", [])), policy)
    return {"inputs": inputs, **fields, "lease_until_ms": 0, "lease_token": None}


def fires_purge(events: list[Any]) -> bool:
    """True when the firing about to be written asks erasure for a purge."""
    return any(event.type == PURGE for event, _ in events)
