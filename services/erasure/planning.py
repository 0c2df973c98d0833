"""Pure planning: which systems a case reaches, with what command, and Art 19 at the end."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from services.erasure.domain import Case, Line, Progress
from services.erasure.processors import ProcessorTerms, local_day
from services.erasure.registry import Action, CategoryPolicy, Registry, System
from services.erasure.settings import ErasureSettings
from shared.events.internal import ProcessorChange, WorkLine, WorkRequested
from shared.rules import art19_notifications, processor_status
from shared.rules.rights import Recipient

SKIPPED_ACTIONS = {"refuse", "refuse_while_hold"}
PROCESSOR_GROUND = "Art 28(3)(g) end of processing contract (R-PROC-1)"


WorkCategory = WorkLine  # the name planning has always used


def known_identifiers(work: WorkRequested) -> dict[str, str]:
    """The subject's identifiers the work names (the contract id for some purges)."""
    known = work.subject.identifiers.present() if work.subject else {}
    if work.contract_id:
        known["contract_id"] = work.contract_id
    return known


def apply_routes(registry: Registry, routes: dict[str, dict[str, Any]]) -> Registry:
    """The registry as replaced processors leave it: their categories go to the new one."""
    systems = {s.id: s for s in registry.systems}
    for old, route in routes.items():
        source = systems.get(old)
        if source is None:
            continue
        moved = set(route.get("categories") or source.categories)
        kept = {c: p for c, p in source.categories.items() if c not in moved}
        taken = {c: p for c, p in source.categories.items() if c in moved}
        systems[old] = source.model_copy(update={"categories": kept})
        target = systems.get(route["new"]) or source.model_copy(
            update={"id": route["new"], "categories": {}}
        )
        merged = {**taken, **target.categories}
        systems[target.id] = target.model_copy(update={"categories": merged})
    return registry.model_copy(update={"systems": list(systems.values())})


def _line(category: str, policy: CategoryPolicy, work: WorkCategory) -> Line | None:
    if work.action in SKIPPED_ACTIONS:
        return None
    retained = work.action == "retain_restricted" or (
        work.action == "restrict" and work.retain_until
    )
    if retained and policy.retention is not None:
        # The system keeps each record under its own rule (e.g. each invoice until its own
        # financial year end + 10 years): one date for the category would keep older
        # records too long and later ones too short.
        return Line(
            category=category,
            action="restrict",
            ground=work.ground or policy.retention.ground,
            kind="retention",
            retention=policy.retention.model_dump(),
        )
    if work.action == "suppress":
        return Line(category=category, action="suppress", ground=work.ground, kind="suppression")
    if work.action == "restrict" and work.retain_until:
        # Restricted until a date: intermediate archiving of retained data (R-DSR-6).
        return Line(
            category=category,
            action="restrict",
            ground=work.ground,
            kind="retention",
            retain_until=work.retain_until,
        )
    if work.action == "restrict":
        return Line(category=category, action="restrict", ground=work.ground, kind="restriction")
    if work.action == "retain_restricted":
        return Line(
            category=category,
            action="restrict",
            ground=work.ground,
            kind="retention",
            retain_until=work.retain_until,
        )
    if policy.retention is not None:
        return Line(
            category=category,
            action="restrict",
            ground=policy.retention.ground,
            kind="retention",
            retention=policy.retention.model_dump(),
        )
    action = policy.action.value if work.action == "erase" else work.action
    kind: Literal["erasure", "suppression"] = (
        "suppression" if action == Action.SUPPRESS else "erasure"
    )
    return Line(category=category, action=action, ground=work.ground, kind=kind)


def lines_for(system: System, registry: Registry, work: list[WorkCategory]) -> list[Line]:
    """The command lines ``system`` receives for the case's categories (first decision wins)."""
    lines: dict[str, Line] = {}
    for item in work:
        for category in registry.expand(item.category):
            policy = system.categories.get(category)
            if policy is None or category in lines:
                continue
            line = _line(category, policy, item)
            if line is not None:
                lines[category] = line
    return list(lines.values())


def progress_for(
    system: System,
    case_id: str,
    lines: list[Line],
    identifiers: dict[str, str],
    defaults: ErasureSettings,
    now: datetime,
) -> Progress:
    """A pending command for ``system``, due now."""
    actions = {line.action for line in lines}
    transport = system.transport
    return Progress(
        system=system.id,
        command_id=f"{case_id}:{system.id}",
        transport="http" if transport.kind == "http" else "kafka",
        url=str(transport.url) if transport.url else None,
        action=actions.pop() if len(actions) == 1 else "mixed",
        lines=lines,
        identifiers=identifiers,
        timeout_seconds=system.ack_timeout_seconds or defaults.ack_timeout_seconds,
        retry_initial=system.retry.initial_seconds or defaults.retry_initial_seconds,
        retry_max=system.retry.max_seconds or defaults.retry_max_seconds,
        retry_multiplier=system.retry.multiplier or defaults.retry_multiplier,
        next_attempt_at=now,
    )


def plan_case(
    work: WorkRequested, registry: Registry, defaults: ErasureSettings, now: datetime
) -> Case:
    """A new case with one pending command per affected system (none sent yet)."""
    case = Case(
        case_id=work.case_id,
        origin=work.origin,
        request_id=work.request_id,
        subject_kind=work.subject.kind.value if work.subject else None,
        due_by=work.due_by,
        opened_at=now,
        next_due_at=now,
    )
    known = known_identifiers(work)
    for system in registry.systems:
        lines = lines_for(system, registry, list(work.categories))
        if not lines:
            continue
        if system.transport.kind == "none":
            case.skipped.append(
                {
                    "system": system.id,
                    "reason": "no transport: " + (system.transport.unreachable_reason or ""),
                }
            )
            continue
        ids = {k: v for k, v in known.items() if k in system.identifiers}
        if not ids:
            case.skipped.append(
                {"system": system.id, "reason": "knows none of the subject's identifiers"}
            )
            continue
        case.systems[system.id] = progress_for(system, work.case_id, lines, ids, defaults, now)
    return case


def plan_processor_case(
    case_id: str,
    change: ProcessorChange,
    registry: Registry,
    defaults: ErasureSettings,
    now: datetime,
) -> Case:
    """A case ordering the old processor to delete or return everything (R-PROC-1)."""
    choice = change.controller_choice or defaults.processor_choice
    days = defaults.processor_days if change.contractual_days is None else change.contractual_days
    effective = change.effective_at or now
    status = processor_status(local_day(effective), days, choice, None, None)
    old = registry.get(change.old) or System(
        id=change.old, categories={}, identifiers=["all"], processor=True
    )
    categories = change.categories or sorted(old.categories) or ["all"]
    lines = [
        Line(category=c, action=choice, ground=PROCESSOR_GROUND, kind="processor_end")
        for c in categories
    ]
    case = Case(
        case_id=case_id,
        origin="processor",
        due_by=status.due_date.isoformat(),
        opened_at=now,
        next_due_at=now,
    )
    progress = progress_for(old, case_id, lines, {}, defaults, now)
    case.systems[old.id] = progress.model_copy(update={"action": f"{choice}_all"})
    case.processor = ProcessorTerms(
        old=change.old,
        new=change.new,
        controller_choice=choice,
        contractual_days=days,
        effective_at=effective,
        due_date=status.due_date.isoformat(),
        status=status.status,
        evidence_required=status.evidence_required,
    )
    return case


def art19_record(case: Case, registry: Registry) -> dict[str, Any]:
    """Who Art 19 says to notify once the case is carried out, or why not (R-DSR-10)."""
    outcomes = {
        line.kind
        for p in case.systems.values()
        if p.outcome in {"erased", "anonymised", "retained"}
        for line in p.lines
    }
    action = (
        "erasure"
        if "erasure" in outcomes
        else "restriction"
        if "restriction" in outcomes
        else "none"
    )
    categories = {line.category for p in case.systems.values() for line in p.lines}
    recipients = [
        Recipient(s.id, s.transport.kind != "none", s.disproportionate_effort_documented)
        for s in registry.systems
        if (s.recipient or s.processor) and categories & set(s.categories)
    ]
    result = art19_notifications(action, action != "none", recipients)
    reasons = {s.id: s.transport.unreachable_reason or "" for s in registry.systems}
    reasons |= {item["system"]: item["reason"] for item in case.skipped}
    not_notified = [
        {"id": rid, "reason": why, "detail": reasons.get(rid, "")}
        for rid, why in result.not_notified
    ]
    # The erasure command is the notification: only a recipient that answered it was told.
    commanded = {p.system for p in case.systems.values()}
    notified = [rid for rid in result.notify if rid in commanded]
    not_notified += [
        {"id": rid, "reason": "impossible_document_why", "detail": reasons.get(rid, "")}
        for rid in result.notify
        if rid not in commanded
    ]
    return {
        "triggered": result.triggered,
        "action": action,
        "notified": notified,
        "notified_by": "erasure command acknowledged by the recipient",
        "not_notified": not_notified,
    }
