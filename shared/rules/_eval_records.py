"""Case adapters for breaches (R-BR-*), retention (R-RET-*), processors and R-CAL-*."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from shared.rules import _inputs as i
from shared.rules._eval_requests import Out, dsr_due, has_receipt
from shared.rules.breaches import breach_deadline, breach_gates
from shared.rules.calendar import (
    add_hours,
    add_months,
    format_local,
    format_utc,
    local_date,
    roll_forward,
)
from shared.rules.errors import RuleError
from shared.rules.policy import default_policy
from shared.rules.processors import processor_status
from shared.rules.retention import (
    LegalHold,
    Retention,
    RetentionRule,
    apply_holds,
    e_contract_terms,
    financial_year_close,
    retention_until,
    schedule_rule,
)

AWARE = ("controller_informed_at", "awareness_at", "aware_at", "became_aware_at")


def breach_clock(inp: i.Input) -> Out:
    """R-BR-1, R-BR-2 and R-BR-3: one output grows with the inputs given."""
    key = i.first_key(inp, *AWARE)
    if key is None:
        raise RuleError("MISSING_FIELD", "awareness_at (or controller_informed_at) is required")
    aware, zone_name = i.instant(inp, key), i.tz(inp)
    processor = (
        i.instant(inp, "processor_aware_at") if i.present(inp, "processor_aware_at") else None
    )
    sla = (
        float(i.number(inp, "processor_sla_hours"))
        if i.present(inp, "processor_sla_hours")
        else default_policy().contractual.processor_breach_sla_hours
    )
    notified = i.instant(inp, "notified_at") if i.present(inp, "notified_at") else None
    res = breach_deadline(
        aware, processor_aware_at=processor, processor_sla_hours=sla, notified_at=notified
    )
    out: Out = {
        "clock_start_utc": format_utc(res.clock_start),
        "deadline_utc": format_utc(res.deadline),
        "deadline_local": format_local(res.deadline, zone_name),
        "weekend_holiday_shift": res.weekend_holiday_shift,
    }
    if res.processor_delay_hours is not None:
        out["processor_delay_hours"] = round(res.processor_delay_hours, 4)
        out["processor_sla_breached"] = res.processor_sla_breached
    if res.late is not None:
        out["late"] = res.late
        out["reasons_for_delay_required"] = res.reasons_for_delay_required
    return out


def breach_risk(inp: i.Input) -> Out:
    """R-BR-4."""
    res = breach_gates(i.text(inp, "risk_level"), i.strings(inp, "art34_3_conditions"))
    out: Out = {
        "notify_supervisory_authority": res.notify_supervisory_authority,
        "communicate_to_data_subjects": res.communicate_to_data_subjects,
        "ground": res.ground,
        "document_internally": res.document_internally,
    }
    if res.public_communication:
        out["public_communication"] = True
        out["communication_replaced_by"] = res.communication_replaced_by
    if res.communication_timing is not None:
        out["communication_timing"] = res.communication_timing
    return out


START_KEYS: dict[str, tuple[str, ...]] = {
    "contract_end": ("contract_end_date", "contract_end", "relationship_end_date", "end_date"),
    "last_contact": ("last_contact_date", "last_contact_at", "last_exchange_date", "last_contact"),
    "conclusion": ("conclusion_date", "concluded_on", "concluded_at"),
    "recording": ("recorded_at", "recorded_on", "recording_date", "recorded_date"),
    "event": ("event_at", "event_date", "event_on"),
    "collection": ("collected_at", "collection_date", "collected_on", "collected_date"),
}


def _fy_end(inp: i.Input) -> date | tuple[int, int] | None:
    raw = inp.get("financial_year_end")
    if isinstance(raw, str) and len(raw.lstrip("-")) == 5:
        month_day = raw.lstrip("-")
        i.parse_date_text(f"2000-{month_day}", "financial_year_end")
        return int(month_day[:2]), int(month_day[3:])
    return i.opt_day(inp, "financial_year_end")


def _start(inp: i.Input, rule: RetentionRule) -> tuple[date, RetentionRule]:
    if rule.category == "e_contract":
        return e_contract_terms(
            i.any_day(inp, *START_KEYS["conclusion"]),
            i.opt_day(inp, "delivery_date") or i.opt_day(inp, "performance_date"),
            i.number(inp, "amount_eur"),
        )
    if rule.category == "accounting":
        calendar_year = i.flag(inp, "calendar_financial_year", True)
        start = financial_year_close(i.opt_day(inp, "document_date"), _fy_end(inp), calendar_year)
        return start, rule
    keys = START_KEYS.get(rule.start_event, ("start_date",))
    return i.any_day(inp, *keys, "start_date"), rule


def _retention(inp: i.Input) -> Retention:
    rule = schedule_rule(i.text(inp, "category"))
    start, rule = _start(inp, rule)
    months = i.integer(inp, "duration_months", rule.months)
    return retention_until(start, months, rule.action)


def retention(inp: i.Input, holds_shape: bool = False) -> Out:
    """R-RET-1..4."""
    normal = _retention(inp)
    evaluated = i.opt_day(inp, "evaluated_on")
    if not holds_shape and "legal_holds" not in inp:
        out: Out = {
            "start_date": normal.start_date,
            "retain_until": normal.retain_until,
            "purge_due": normal.purge_due,
            "action_at_expiry": normal.action_at_expiry,
        }
        if evaluated is not None:
            out["purge_now"] = evaluated >= normal.purge_due
        return out
    # Without a record of the purge, the record is taken as purged when due (R-RET-4's
    # "cannot revive purged data"); ``purged_on: null`` evaluates it as not yet purged.
    purged = i.opt_day(inp, "purged_on") if "purged_on" in inp else normal.purge_due
    held = apply_holds(normal, [_hold(raw) for raw in i.items(inp, "legal_holds")], purged)
    out = {
        "start_date": normal.start_date,
        "normal_retain_until": normal.retain_until,
        "effective_retain_until": held.effective_retain_until,
    }
    if held.purge_blocked:
        out.update(purge_blocked=True, purge_due=None)
    else:
        out.update(purge_due=held.purge_due, action_at_expiry=normal.action_at_expiry)
        if evaluated is not None:
            out["purge_now"] = held.purge_now(evaluated)
    if held.late_holds:
        out["hold_opened_after_purge_due"] = True
    return out


def _hold(raw: Any) -> LegalHold:
    h = i.mapping(raw, "legal hold")
    scope = h.get("scope")
    return LegalHold(
        str(h.get("matter", "")),
        i.day(h, "opened_on"),
        i.opt_day(h, "released_on"),
        None if scope is None else str(scope),
    )


def processor(inp: i.Input) -> Out:
    """R-PROC-1."""
    values = default_policy().contractual
    res = processor_status(
        i.any_day(inp, "contract_end_date", "contract_end"),
        i.integer(inp, "contractual_days", values.processor_deletion_days),
        i.text(inp, "controller_choice", values.processor_end_choice),
        i.opt_day(inp, "certificate_received_on"),
        i.opt_day(inp, "evaluated_on"),
        tuple(i.strings(inp, "retention_required_by_law")),
    )
    out: Out = {
        "due_date": res.due_date,
        "status": res.status,
        "evidence_required": res.evidence_required,
    }
    if res.retained_under_law:
        out["retain_as_required_by_law"] = list(res.retained_under_law)
    return out


def _instant_key(inp: i.Input) -> str | None:
    return next((k for k in inp if k.endswith("_at") and inp[k] is not None), None)


def calendar_rule(inp: i.Input) -> Out:
    """R-CAL-1: validate the instants of any rule's input, then answer as that rule."""
    if i.first_key(inp, *AWARE):
        return breach_clock(inp)
    if has_receipt(inp):
        return dsr_due(inp)
    if i.present(inp, "category"):
        return retention(inp)
    key = _instant_key(inp)
    if key is None:
        raise RuleError("MISSING_FIELD", "no instant to read")
    at: datetime = i.instant(inp, key)
    return {
        "instant_utc": format_utc(at),
        "local": format_local(at, i.tz(inp)),
        "local_date": local_date(at, i.tz(inp)),
    }


def months_rule(inp: i.Input) -> Out:
    """R-CAL-2: add_months with end-of-month clamping."""
    start = i.any_day(inp, "date", "start_date")
    months = i.integer(inp, "months", 0) + 12 * i.integer(inp, "years", 0)
    return {"end_date": add_months(start, months)}


def rollover_rule(inp: i.Input) -> Out:
    """R-CAL-3: next working day."""
    return {"rolled_date": roll_forward(i.any_day(inp, "date", "end_date"), i.calendar(inp))}


def hours_rule(inp: i.Input) -> Out:
    """R-CAL-4: elapsed hours in UTC, rendered locally."""
    key = i.first_key(inp, "start", "start_at", "at", *AWARE) or _instant_key(inp)
    if key is None:
        raise RuleError("MISSING_FIELD", "a start instant is required")
    end = add_hours(i.instant(inp, key), i.integer(inp, "hours", 72))
    return {"deadline_utc": format_utc(end), "deadline_local": format_local(end, i.tz(inp))}
