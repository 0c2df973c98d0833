"""Pure computation of each kind of clock from its inputs, through the rules engine."""

from __future__ import annotations

import hashlib
from datetime import date, datetime
from typing import Any

from services.deadlines.domain import Base, Kind, TimerSpec, end_of_day, iso_utc
from shared.errors import TransitionRefused
from shared.rules import (
    BreachGates,
    Extension,
    LegalHold,
    Pause,
    Policy,
    RuleError,
    apply_holds,
    breach_deadline,
    breach_gates,
    extension,
    local_date,
    processor_status,
    retention_until,
    schedule_rule,
)

PAUSED_STATUSES = {"awaiting_identity", "awaiting_information"}
FINAL_STATUSES = {"responded", "partly_refused", "refused", "closed"}


def subject_key(refs: list[str]) -> str:
    """A stable key for a subject without a contract, from its pseudonyms (already keyed)."""
    return "s-" + hashlib.sha256("|".join(sorted(refs)).encode()).hexdigest()[:20]


def _day(value: str | None) -> date | None:
    return date.fromisoformat(value) if value else None


# ---- requests (R-DSR-1/2/3) -------------------------------------------------------------


def request_from_clock(request_id: str, clock: dict[str, Any]) -> TimerSpec:
    """A request clock from intake's ``clock`` object (docs/events.md)."""
    state = clock.get("state", "running")
    due = _day(clock.get("effective_due_date") or clock.get("due_date"))
    rules = ["R-DSR-1"]
    if clock.get("extension_valid") or clock.get("extended_due_date"):
        rules.append("R-DSR-2")
    if clock.get("paused_days") or state == "paused":
        rules.append("R-DSR-3")
    base = Base.OPEN
    if state == "paused":
        base, due = Base.PAUSED, None
    elif state == "stopped":
        responded = _day(clock.get("responded_on"))
        on_time = clock.get("on_time")
        if on_time is None:
            on_time = responded is not None and due is not None and responded <= due
        base = Base.MET if on_time else Base.MISSED
    details = {k: v for k, v in clock.items() if v is not None}
    return _request_spec(request_id, rules, base, due, details)


def request_from_inputs(request_id: str, inputs: dict[str, Any], calendar: str) -> TimerSpec:
    """A request clock computed here when intake sent no ``clock`` (rules engine)."""
    receipt = date.fromisoformat(inputs["receipt_date"])
    pauses = [Pause(_day(a) or receipt, _day(b)) for a, b in inputs.get("pauses", [])]
    ext_on = _day(inputs.get("extension_on"))
    notice = Extension(ext_on, True) if ext_on else None
    try:
        result = extension(receipt, notice, calendar, pauses)
    except RuleError as exc:
        raise TransitionRefused(f"request clock: {exc.code}") from exc
    rules = ["R-DSR-1"] + (["R-DSR-2"] if result.extension_valid else [])
    if pauses:
        rules.append("R-DSR-3")
    due = result.effective_due_date
    base = Base.PAUSED if result.base.due_date is None else Base.OPEN
    responded = _day(inputs.get("responded_on"))
    if responded is not None and due is not None:
        base = Base.MET if responded <= due else Base.MISSED
    details: dict[str, Any] = {
        "receipt_date": receipt.isoformat(),
        "paused_days": result.base.paused_days,
        "base_due_date": _iso(result.base.due_date),
        "extension_valid": result.extension_valid,
        "extended_due_date": _iso(result.extended_due_date),
        "effective_due_date": _iso(due),
        "computed_by": "deadlines",
    }
    if responded:
        details["responded_on"] = responded.isoformat()
    return _request_spec(request_id, rules, base, due, details)


def _request_spec(
    request_id: str, rules: list[str], base: Base, due: date | None, details: dict[str, Any]
) -> TimerSpec:
    due_at = end_of_day(due) if due is not None else None
    return TimerSpec(
        f"request:{request_id}", Kind.REQUEST, {"request_id": request_id},
        tuple(rules), base, due_at, due, details,
    )  # fmt: skip


def request_inputs_after(inputs: dict[str, Any], data: dict[str, Any]) -> dict[str, Any]:
    """Fallback inputs after a ``status_changed``: pauses, extension, response (R-DSR-2/3)."""
    new = {**inputs, "pauses": [list(p) for p in inputs.get("pauses", [])]}
    on = local_date(datetime.fromisoformat(data["at"])).isoformat()
    to, frm = data.get("to"), data.get("from")
    if to in PAUSED_STATUSES and frm not in PAUSED_STATUSES:
        new["pauses"].append([on, None])
    elif frm in PAUSED_STATUSES and to not in PAUSED_STATUSES and new["pauses"]:
        new["pauses"][-1][1] = on
    if to == "extended":
        new["extension_on"] = on
    if to in FINAL_STATUSES and not new.get("responded_on"):
        new["responded_on"] = on
    return new


# ---- breaches (R-BR-1..4) ---------------------------------------------------------------


def breach_clocks(data: dict[str, Any], policy: Policy) -> tuple[TimerSpec, TimerSpec]:
    """The authority clock (72 h, R-BR-1/2) and the data-subject clock (R-BR-4).

    Under Art 34(3)(c) the data-subject clock is the public communication that replaces the
    individual one, with the same Art 34(1) timing.
    """
    aware = datetime.fromisoformat(data["aware_at"])
    by_processor = data.get("reported_by") == "processor"
    processor_aware = by_processor and data.get("processor_aware_at")
    try:
        clock = breach_deadline(
            aware,
            processor_aware_at=datetime.fromisoformat(processor_aware) if processor_aware else None,
            processor_sla_hours=policy.contractual.processor_breach_sla_hours,
        )
        gates = breach_gates(data["risk"], list(data.get("art34_3_conditions") or []))
    except RuleError as exc:
        raise TransitionRefused(f"breach clock: {exc.code}: {exc}") from exc
    bid = data["breach_id"]
    details: dict[str, Any] = {
        "clock_start": iso_utc(clock.clock_start),
        "risk": data["risk"],
        "reported_by": data.get("reported_by"),
        "ground": gates.ground,
    }
    if clock.processor_delay_hours is not None:
        details["processor_delay_hours"] = round(clock.processor_delay_hours, 3)
        details["processor_sla_hours"] = policy.contractual.processor_breach_sla_hours
        details["processor_sla_breached"] = clock.processor_sla_breached
    rules = ("R-BR-1", "R-BR-2") if by_processor else ("R-BR-1",)
    authority = TimerSpec(
        f"breach:{bid}:authority", Kind.BREACH_AUTHORITY, {"breach_id": bid}, rules,
        Base.OPEN if gates.notify_supervisory_authority else Base.NOT_REQUIRED,
        clock.deadline, None, details,
    )  # fmt: skip
    # "Without undue delay" has no fixed end; the 72 h deadline is the internal target [I].
    owed = gates.communication_timing is not None
    subjects = TimerSpec(
        f"breach:{bid}:subjects", Kind.BREACH_SUBJECTS, {"breach_id": bid}, ("R-BR-4",),
        Base.OPEN if owed else Base.NOT_REQUIRED,
        clock.deadline, None, {**details, **_communication(gates)},
    )  # fmt: skip
    return authority, subjects


def _communication(gates: BreachGates) -> dict[str, Any]:
    """Which communication the subjects clock tracks, and its timing (Art 34(1), 34(3)(c))."""
    public = gates.public_communication
    channel = "public_communication" if public else "data_subjects"
    return {
        "communication": channel if gates.communication_timing else None,
        "replaces": "communication_to_data_subjects" if public else None,
        "timing": gates.communication_timing,
        "target": "without undue delay (Art 34(1))",
    }


def notified(spec: TimerSpec, at: datetime, reasons: str | None) -> TimerSpec:
    """The clock closed by a notification: met, or late with reasons required (R-BR-3)."""
    late = spec.due_at is not None and at > spec.due_at and spec.base is not Base.NOT_REQUIRED
    details = {
        **spec.details,
        "notified_at": iso_utc(at),
        "late": late,
        "reasons_for_delay_required": late,
        "reasons_for_delay_given": reasons is not None,
    }
    rules = spec.rules if "R-BR-3" in spec.rules or not late else (*spec.rules, "R-BR-3")
    base = Base.MISSED if late else Base.MET
    return TimerSpec(
        spec.timer_id, spec.kind, spec.ref, rules, base, spec.due_at, spec.due_date, details
    )


# ---- retention (R-RET-1/2/4) ------------------------------------------------------------


def retention_clock(timer_id: str, inputs: dict[str, Any], policy: Policy) -> TimerSpec:
    """Keep through start + duration, purge the next day, unless a hold blocks it."""
    try:
        rule = schedule_rule(inputs["category"], policy.schedule())
        normal = retention_until(date.fromisoformat(inputs["start_date"]), rule.months)
        holds = [
            LegalHold(h["matter"], date.fromisoformat(h["opened_on"]), _day(h.get("released_on")))
            for h in inputs.get("holds", [])
        ]
        held = apply_holds(normal, holds)
    except RuleError as exc:
        raise TransitionRefused(f"retention clock: {exc.code}: {exc}") from exc
    rules = ("R-RET-1", "R-RET-2", "R-RET-4") if holds else ("R-RET-1", "R-RET-2")
    details = {
        "category": inputs["category"],
        "start_date": inputs["start_date"],
        "duration_months": rule.months,
        "category_basis": rule.basis,
        "action": rule.action,
        "retain_until": normal.retain_until.isoformat(),
        "effective_retain_until": _iso(held.effective_retain_until),
        "purge_due": _iso(held.purge_due),
        "late_holds": list(held.late_holds),
    }
    due_at = end_of_day(held.effective_retain_until) if held.effective_retain_until else None
    base = Base.BLOCKED if held.purge_blocked else Base.OPEN
    ref = {k: inputs[k] for k in ("contract_id",) if inputs.get(k)}
    return TimerSpec(timer_id, Kind.RETENTION, ref, rules, base, due_at, held.purge_due, details)


def _iso(day: date | None) -> str | None:
    return day.isoformat() if day else None


def hold_applies(hold: dict[str, Any], refs: list[str], category: str) -> bool:
    """True when a hold's scope (subjects and categories; empty = all) covers a record."""
    subjects_ok = not hold.get("subject_refs") or bool(set(hold["subject_refs"]) & set(refs))
    categories_ok = not hold.get("categories") or category in hold["categories"]
    return subjects_ok and categories_ok


# ---- processors (R-PROC-1) --------------------------------------------------------------


def processor_clock(inputs: dict[str, Any], certified_on: date | None = None) -> TimerSpec:
    """Deletion or return due ``contractual_days`` after the end of services."""
    end = date.fromisoformat(inputs["effective_on"])
    try:
        status = processor_status(
            end, inputs["contractual_days"], inputs["controller_choice"], certified_on, None
        )
    except RuleError as exc:
        raise TransitionRefused(f"processor clock: {exc.code}") from exc
    base = {"closed": Base.MET, "closed_late": Base.MISSED}.get(status.status, Base.OPEN)
    old = inputs["old_processor"]
    details = {
        "new_processor": inputs.get("new_processor"),
        "controller_choice": inputs["controller_choice"],
        "contractual_days": inputs["contractual_days"],
        "evidence_required": status.evidence_required,
        "status": status.status,
    }
    if certified_on:
        details["certified_on"] = certified_on.isoformat()
    return TimerSpec(
        f"processor:{old}:{end.isoformat()}", Kind.PROCESSOR_DELETION, {"processor": old},
        ("R-PROC-1",), base, end_of_day(status.due_date), status.due_date, details,
    )  # fmt: skip
