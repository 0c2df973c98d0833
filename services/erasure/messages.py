"""The events erasure produces: commands to systems and case progress (docs/erasure.md)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from services.erasure.domain import Case, Progress, summary
from shared import topics
from shared.events import CloudEvent, new_event

SOURCE = "gardien/erasure"

Keyed = tuple[CloudEvent, str]


def command_issued(case: Case, progress: Progress, now: datetime) -> Keyed:
    """``gardien.erasure.command.issued`` for the current attempt, keyed by system id."""
    grounds = sorted({line.ground for line in progress.lines if line.ground})
    data = {
        "command_id": progress.command_id,
        "case_id": case.case_id,
        "system": progress.system,
        "identifiers": progress.identifiers,
        "categories": [line.model_dump(exclude_none=True) for line in progress.lines],
        "action": progress.action,
        "ground": "; ".join(grounds),
        "due_by": case.due_by,
        "attempt": progress.attempts,
        "transport": progress.transport,
        "reply_to": topics.ERASURE_RESULTS,
    }
    event = new_event(
        "gardien.erasure.command.issued",
        {k: v for k, v in data.items() if v is not None},
        source=SOURCE,
        event_id=f"{progress.command_id}:{progress.attempts}",
        time=now,
    )
    return event, progress.system


def case_event(case: Case, kind: str, now: datetime, **extra: Any) -> Keyed:
    """``gardien.erasure.case.<kind>`` with the per-system view, keyed by case id."""
    data: dict[str, Any] = {
        **summary(case),
        "request_id": case.request_id,
        "due_by": case.due_by,
        "closed_at": case.closed_at.isoformat() if case.closed_at else None,
        "art19": case.art19,
        "processor": case.processor.model_dump(mode="json", exclude_none=True)
        if case.processor
        else None,
        "skipped": case.skipped or None,
        **extra,
    }
    suffix = {
        "opened": "opened",
        "closed": "closed",
        "escalated": f"escalated:{extra.get('system', '')}:{case.version + 1}",
    }.get(kind, f"{kind}:{case.version + 1}")
    event = new_event(
        f"gardien.erasure.case.{kind}",
        {k: v for k, v in data.items() if v is not None},
        source=SOURCE,
        event_id=f"{case.case_id}:{suffix}",
        time=now,
    )
    return event, case.case_id
