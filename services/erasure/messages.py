"""The events erasure produces: commands to systems and case progress (docs/erasure.md).

Their data are the models of erasure's section of ``shared/events/internal.py``.
"""

from __future__ import annotations

from datetime import datetime

from services.erasure.domain import Case, Effect, Progress
from services.erasure.uploads import UploadLinks
from shared import topics
from shared.events import CloudEvent, new_event
from shared.events.internal import CaseEvent, CommandIssued, SystemView
from shared.subject_vault import is_sealed

SOURCE = "gardien/erasure"
COMMAND_ISSUED = "gardien.erasure.command.issued"

Keyed = tuple[CloudEvent, str]
Events = list[Keyed]
CASE_KINDS = {
    "opened": "opened",
    "escalate": "escalated",
    "progress": "progressed",
    "held": "held",
    "released": "released",
    "close": "closed",
}


def events(
    case: Case, effects: list[Effect], now: datetime, links: UploadLinks | None = None
) -> Events:
    """The events telling ``effects``, in order (the case as it stands after them).

    Export commands carry an upload URL from ``links`` (a fresh one per attempt).
    """
    told: Events = []
    for effect in effects:
        if effect.kind == "issue" and effect.system:
            progress = case.systems[effect.system]
            link = links.link(progress.command_id, now) if links and case.collection else None
            told.append(command_issued(case, progress, now, link))
        elif effect.kind == "escalate":
            extra = {"system": effect.system, "reason": effect.reason or None}
            told.append(case_event(case, "escalated", now, **extra))
        else:
            told.append(case_event(case, CASE_KINDS[effect.kind], now, **effect.extra))
    return told


def command_issued(
    case: Case, progress: Progress, now: datetime, link: tuple[str, str] | None = None
) -> Keyed:
    """``gardien.erasure.command.issued`` for the current attempt, keyed by system id."""
    if is_sealed(progress.identifiers):
        raise ValueError(f"command {progress.command_id}: identifiers still sealed")
    grounds = sorted({line.ground for line in progress.lines if line.ground})
    data = CommandIssued(
        command_id=progress.command_id,
        case_id=case.case_id,
        system=progress.system,
        identifiers=progress.identifiers,
        categories=list(progress.lines),
        action=progress.action,
        ground="; ".join(grounds),
        due_by=case.due_by,
        attempt=progress.attempts,
        transport=progress.transport,
        reply_to=topics.ERASURE_RESULTS,
        upload_url=link[0] if link else None,
        upload_expires_at=link[1] if link else None,
    )
    event = new_event(
        COMMAND_ISSUED,
        data.model_dump(mode="json", exclude_none=True),
        source=SOURCE,
        event_id=f"{progress.command_id}:{progress.attempts}",
        time=now,
    )
    return event, progress.system


def case_event(case: Case, kind: str, now: datetime, **extra: object) -> Keyed:
    """``gardien.erasure.case.<kind>`` with the per-system view, keyed by case id."""
    data = CaseEvent.model_validate(
        {
            "case_id": case.case_id,
            "origin": case.origin,
            "state": case.state,
            "systems": {name: view(p, case) for name, p in case.systems.items()},
            "request_id": case.request_id,
            "due_by": case.due_by,
            "closed_at": case.closed_at.isoformat() if case.closed_at else None,
            "art19": case.art19,
            "processor": case.processor.model_dump(mode="json", exclude_none=True)
            if case.processor
            else None,
            "skipped": case.skipped or None,
            "package_id": case.collection.package_id if case.collection else None,
            **extra,
        }
    )
    suffix = {
        "opened": "opened",
        "closed": "closed",
        "escalated": f"escalated:{extra.get('system') or ''}:{case.revision}",
    }.get(kind, f"{kind}:{case.revision}")
    event = new_event(
        f"gardien.erasure.case.{kind}",
        data.model_dump(mode="json", exclude_none=True),
        source=SOURCE,
        event_id=f"{case.case_id}:{suffix}",
        time=now,
    )
    return event, case.case_id


def view(progress: Progress, case: Case | None = None) -> SystemView:
    """The per-system view carried by case events (no identifiers)."""
    counted = case.collection.counted.get(progress.system) if case and case.collection else None
    return SystemView(
        action=progress.action if case and case.collection else None,
        state=progress.state,
        outcome=progress.outcome,
        retained_until=progress.retained_until,
        attempts=progress.attempts,
        escalated=progress.escalated_at is not None or None,
        held_by=[h["matter"] for h in progress.held_by] or None,
        detail=progress.detail if case and case.collection else None,
        records=counted.records if counted else None,
        uploaded=progress.system in case.collection.uploads or None
        if case and case.collection
        else None,
    )
