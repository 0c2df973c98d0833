"""Case adapters for the request rules R-DSR-1..12 (JSON input -> output dict)."""

from __future__ import annotations

from typing import Any

from shared.rules import _inputs as i
from shared.rules.errors import RuleError
from shared.rules.policy import default_policy
from shared.rules.requests import (
    SUSPENDED,
    Extension,
    Pause,
    access_frequency,
    extension,
    fee,
    on_time,
    receipt_date,
    request_due,
)

Out = dict[str, Any]
RECEIVED = ("received_at", "received_date", "received_on")


def has_receipt(inp: i.Input) -> bool:
    """True when the case says when the request was received."""
    return i.first_key(inp, *RECEIVED) is not None


def receipt(inp: i.Input) -> Any:
    """Day 0 of the request from ``received_at`` (instant) or ``received_date``."""
    key = i.first_key(inp, *RECEIVED)
    if key is None:
        raise RuleError("MISSING_FIELD", "received_at or received_date is required")
    if key == "received_at":
        return receipt_date(i.instant(inp, key), i.tz(inp))
    return i.day(inp, key)


def pauses(inp: i.Input) -> list[Pause]:
    """The R-DSR-3 pauses of the case."""
    out = []
    for raw in i.items(inp, "pauses"):
        p = i.mapping(raw, "pause")
        out.append(
            Pause(i.day(p, "requested_on"), i.opt_day(p, "received_on"), str(p.get("reason", "")))
        )
    return out


def responded(inp: i.Input) -> Any:
    """The reply date, if the case gives one."""
    key = i.first_key(inp, "responded_on", "responded_at")
    return None if key is None else i.day(inp, key)


def due_date_only(inp: i.Input) -> Any:
    """The plain R-DSR-1 due date (None while paused)."""
    return request_due(receipt(inp), i.calendar(inp), pauses(inp)).due_date


def with_due(inp: i.Input, out: Out) -> Out:
    """Prefix ``due_date`` when the case gives a receipt."""
    return {"due_date": due_date_only(inp), **out} if has_receipt(inp) else out


def dsr_due(inp: i.Input) -> Out:
    """R-DSR-1 and R-DSR-3; with an ``extension`` the R-DSR-2 output (pause and extension)."""
    if i.present(inp, "extension"):
        return dsr_extension(inp)
    due = request_due(receipt(inp), i.calendar(inp), pauses(inp))
    out: Out = {"receipt_date": due.receipt_date}
    if due.status == SUSPENDED:
        return {**out, "status": SUSPENDED, "paused_since": due.paused_since, "due_date": None}
    if "pauses" in inp:
        out["paused_days"] = due.paused_days
    out.update(raw_due_date=due.raw_due_date, due_date=due.due_date)
    answer = responded(inp)
    if answer is not None and due.due_date is not None:
        out["on_time"] = on_time(answer, due.due_date)
    return out


def _notice(inp: i.Input) -> Extension | None:
    if not i.present(inp, "extension"):
        return None
    e = i.mapping(inp["extension"], "extension")
    return Extension(i.day(e, "notified_on"), i.flag(e, "reasons_given"))


def dsr_extension(inp: i.Input) -> Out:
    """R-DSR-2."""
    res = extension(receipt(inp), _notice(inp), i.calendar(inp), pauses(inp))
    base = res.base
    out: Out = {"receipt_date": base.receipt_date}
    if base.status == SUSPENDED:
        out.update(status=SUSPENDED, paused_since=base.paused_since, base_due_date=None)
        if i.present(inp, "extension"):
            out["extension_valid"] = res.extension_valid
            if res.extension_valid:
                out["extended_due_date"] = None
        return {**out, "effective_due_date": None}
    if "pauses" in inp:
        out["paused_days"] = base.paused_days
    out.update(
        raw_due_date=base.raw_due_date,
        base_due_date=base.due_date,
        extension_valid=res.extension_valid,
    )
    if res.extension_valid:
        out["extended_due_date"] = res.extended_due_date
    out["effective_due_date"] = res.effective_due_date
    answer = responded(inp)
    if answer is not None and res.effective_due_date is not None:
        out["on_time"] = on_time(answer, res.effective_due_date)
    return out


def dsr_frequency(inp: i.Input) -> Out:
    """R-DSR-4."""
    new = i.day(inp, "new_request_date") if "new_request_date" in inp else receipt(inp)
    history = [i.day({"d": d, "tz": inp.get("tz")}, "d") for d in i.items(inp, "request_history")]
    cap = i.integer(
        inp, "policy_max_per_12_months", default_policy().rights.access_max_per_12_months
    )
    res = access_frequency(new, history, cap)
    return {
        "window_start_exclusive": res.window_start_exclusive,
        "count_in_window": res.count_in_window,
        "flag_art12_5_review": res.flag_art12_5_review,
        "auto_refuse": res.auto_refuse,
    }


def dsr_fee(inp: i.Input) -> Out:
    """R-DSR-5."""
    res = fee(
        i.text(inp, "request_type", "access"),
        i.integer(inp, "copy_number_within_request", 1),
        i.flag(inp, "manifestly_unfounded_or_excessive"),
    )
    if not res.fee_allowed:
        return with_due(inp, {"fee_allowed": False})
    return with_due(
        inp,
        {
            "fee_allowed": True,
            "fee_basis": res.fee_basis,
            "announce_fee_before_charging": res.announce_fee_before_charging,
        },
    )


ACCESS_CONTENT = (
    "confirmation",
    "copy_of_data",
    "purposes",
    "categories",
    "recipients",
    "retention_period_or_criteria",
    "rights_rectify_erase_restrict_object",
    "right_to_complain",
    "source",
    "automated_decision_logic",
    "transfer_safeguards",
)


def dsr_access_content(inp: i.Input) -> Out:
    """R-DSR-1b: the content of an Art 15 answer."""
    return with_due(inp, {"must_provide": list(ACCESS_CONTENT), "protect_rights_of_others": True})
