"""Pure rules of a collection case (access Art 15, portability Art 20).

A collection case is an erasure ``Case`` with ``collection`` set: one ``export`` command per
connected system holding a category of the subject, sent, retried and escalated by the
erasure domain (``domain.advance``). What differs is said here: how a case is planned, what
an export answer and an upload change, when the case is ready for its package (every system
answered, failed for good or was escalated) and what the package is told about each system.
No I/O, no clock reads.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from services.erasure import domain
from services.erasure.domain import Case, Effect, Line, Progress
from services.erasure.exports import EXPORT_OUTCOMES, Collection, Counted, Upload, package_kid
from services.erasure.planning import progress_for
from services.erasure.registry import Registry, System
from services.erasure.settings import ErasureSettings
from shared.errors import TransitionRefused
from shared.events.internal import AccessWorkRequested

GROUNDS = {
    "access": "Art 15 right of access",
    "portability": "Art 20 right to data portability",
}
NO_UPLOAD = "exported, but no upload was received for the command"
Step = Callable[[Case], list[Effect] | None]
BUILD_GRACE = timedelta(minutes=5)  # a ready case's package not built by then: offered again


class UploadRefused(TransitionRefused):
    """An upload the case cannot take: ``status`` is the HTTP status to answer."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status


def _categories(system: System, registry: Registry, work: AccessWorkRequested) -> list[str]:
    """The system's categories the request asks for (portability: those the subject gave)."""
    wanted = {c for name in work.categories for c in registry.expand(name)}
    held = [c for c in system.categories if not wanted or c in wanted]
    if work.right == "portability":
        held = [c for c in held if system.categories[c].provided_by_subject]
    return sorted(held)


def plan_collection(
    work: AccessWorkRequested, registry: Registry, defaults: ErasureSettings, now: datetime
) -> Case:
    """A new collection case: one pending ``export`` command per system holding a category."""
    case = Case(
        case_id=work.case_id,
        origin=work.right,
        request_id=work.request_id,
        subject_kind=work.subject.kind.value,
        due_by=work.due_by.isoformat() if work.due_by else None,
        opened_at=now,
        next_due_at=now,
        collection=Collection(
            right=work.right, kid=package_kid(work.request_id), received_at=work.received_at
        ),
    )
    known = work.subject.identifiers.present()
    for system in registry.systems:
        _ask(case, system, work, known, registry, defaults, now)
    return case


def _ask(
    case: Case,
    system: System,
    work: AccessWorkRequested,
    known: dict[str, str],
    registry: Registry,
    defaults: ErasureSettings,
    now: datetime,
) -> None:
    """Add ``system``'s export command to ``case`` (or its reason to skip it)."""
    categories = _categories(system, registry, work)
    if not categories:
        return
    reason = _unreachable(system, known)
    if reason:
        case.skipped.append({"system": system.id, "reason": reason})
        return
    ground = GROUNDS[work.right]
    lines = [Line(category=c, action="export", ground=ground, kind="export") for c in categories]
    ids = {k: v for k, v in known.items() if k in system.identifiers}
    case.systems[system.id] = progress_for(system, work.case_id, lines, ids, defaults, now)
    if work.right == "portability":
        case.collection.provided[system.id] = categories  # type: ignore[union-attr]


def _unreachable(system: System, known: dict[str, str]) -> str:
    if system.transport.kind == "none":
        return "no transport: " + (system.transport.unreachable_reason or "")
    if not any(k in system.identifiers for k in known):
        return "knows none of the subject's identifiers"
    return ""


def _collection(case: Case) -> Collection:
    if case.collection is None:
        raise TransitionRefused(f"case {case.case_id} is not a collection case")
    return case.collection


def exported(
    case: Case,
    key: str,
    outcome: str,
    now: datetime,
    counted: Counted,
    detail: str | None = None,
) -> list[Effect] | None:
    """A system's export answer; None when it changes nothing (duplicate, late, built).

    ``exported`` with records announced but nothing uploaded is a failure (retried, then
    escalated): the package can only carry what was received.
    """
    collection = _collection(case)
    if key not in case.systems:
        raise TransitionRefused(f"case {case.case_id} sent no command to {key}")
    if collection.package_id is not None:
        return None
    if outcome == "exported" and key not in collection.uploads and counted.records != 0:
        outcome, detail = "failed", NO_UPLOAD
    if not domain.acknowledge(case, key, outcome, now, detail):
        return None
    collection.counted[key] = counted
    return [Effect("progress", extra={"system": key, "outcome": outcome})]


def replied(result: dict[str, Any]) -> tuple[str, Counted, str | None]:
    """(outcome, counts, detail) of an HTTP system's export answer; garbage is a failure."""
    outcome = str(result.get("outcome"))
    detail = str(result.get("detail") or "")[:4000] or None
    if outcome not in EXPORT_OUTCOMES:
        return "failed", Counted(), f"the answer's outcome is not an export outcome: {outcome}"
    try:
        counted = Counted.model_validate(result)
    except ValueError:
        return "failed", Counted(), "the answer's counts are not numbers"
    return outcome, counted, detail


def accept_upload(case: Case, key: str) -> Progress:
    """The command an upload is for, if the case still takes uploads (else ``UploadRefused``)."""
    collection = case.collection
    if collection is None or key not in case.systems:
        raise UploadRefused(404, "no such export command")
    if case.state == "closed" or collection.package_id is not None:
        raise UploadRefused(409, "the collection case is closed: its package is built")
    progress = case.systems[key]
    if progress.final:
        raise UploadRefused(409, f"the system already answered {progress.outcome}")
    return progress


def uploaded(case: Case, key: str, upload: Upload) -> list[Effect] | None:
    """Record an upload (a rewrite replaces the earlier one); refuses as ``accept_upload``."""
    accept_upload(case, key)
    collection = _collection(case)
    if collection.uploads.get(key) == upload:
        return None
    collection.uploads[key] = upload
    return []


def done(case: Case, key: str) -> bool:
    """Whether a system's part is over: answered, nothing found, or escalated."""
    progress = case.systems[key]
    return progress.final or progress.escalated_at is not None


def ready(case: Case, now: datetime) -> bool:
    """Every system answered, failed for good or was escalated, and no package is built."""
    collection = case.collection
    if collection is None or collection.package_id is not None or case.state == "closed":
        return False
    if collection.build_after is not None and collection.build_after > now:
        return False
    return all(done(case, key) for key in case.systems)


def hold_for_build(case: Case, now: datetime) -> None:
    """A case just ready is saved due at ``now + BUILD_GRACE``: if its package is not built by
    then (the builder's process died, its waiting list was full), the sweeper offers it again."""
    if ready(case, now) and case.next_due_at is None:
        case.next_due_at = now + BUILD_GRACE


def build_failed(case: Case, retry_at: datetime) -> list[Effect]:
    """The package could not be built: the sweeper brings the case back at ``retry_at``."""
    collection = _collection(case)
    collection.build_after = case.next_due_at = retry_at
    return []


def built(case: Case, package_id: str, now: datetime) -> list[Effect] | None:
    """The package is built: the case closes (identifiers no longer needed)."""
    collection = _collection(case)
    if collection.package_id is not None:
        return None
    collection.package_id, collection.built_at = package_id, now
    case.state, case.closed_at, case.next_due_at = "closed", now, None
    for progress in case.systems.values():
        progress.identifiers = {}
    return [Effect("close", extra={"package_id": package_id})]


def answers(case: Case) -> list[dict[str, Any]]:
    """What the package is told of each system (``packages.SystemAnswer`` fields)."""
    collection = _collection(case)
    out = [_answer(case, key, collection) for key in case.systems]
    for skipped in case.skipped:
        out.append(
            {
                "system": skipped["system"],
                "status": "no_answer",
                "at": None,
                "reason": "not asked: " + skipped["reason"],
                "blob_id": None,
                "content_type": None,
                "categories": [],
                "provided_by_subject": [],
            }
        )
    return out


def _answer(case: Case, key: str, collection: Collection) -> dict[str, Any]:
    progress = case.systems[key]
    upload = collection.uploads.get(key)
    status, at, reason = _status(progress)
    keep = status == "answered" and upload is not None
    return {
        "system": progress.system,
        "status": status,
        "at": at,
        "reason": reason,
        "blob_id": upload.blob_id if keep and upload else None,
        "content_type": upload.content_type if keep and upload else None,
        "categories": [line.category for line in progress.lines],
        "provided_by_subject": collection.provided.get(key, []),
    }


def _status(progress: Progress) -> tuple[str, datetime | None, str | None]:
    if progress.outcome == "exported":
        return "answered", progress.acknowledged_at, None
    if progress.outcome == "not_found":
        return "not_found", progress.acknowledged_at, progress.detail
    escalation = next((s for s in reversed(progress.steps) if s.kind == "escalated"), None)
    at = escalation.at if escalation else progress.escalated_at
    if progress.outcome == "failed":
        why = progress.detail or "the system reported a failure"
        return "failed", at, f"{why} ({progress.attempts} attempt(s), then escalated)"
    reason = escalation.detail if escalation else "no answer"
    return "no_answer", at, reason
