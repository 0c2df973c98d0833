"""Per-request compliance report, derived from the audited events only (pure)."""

from __future__ import annotations

import heapq
from collections import defaultdict
from datetime import UTC, date, datetime
from typing import Any
from zoneinfo import ZoneInfo

PARIS = ZoneInfo("Europe/Paris")  # deadlines end at 24:00 Paris time of their date


def _instant(value: Any) -> datetime | None:
    try:
        return datetime.fromisoformat(str(value)) if value else None
    except ValueError:
        return None


def _day(value: Any) -> date | None:
    try:
        return date.fromisoformat(str(value)[:10]) if value else None
    except ValueError:
        return None


def _recorded(rec: dict[str, Any]) -> tuple[datetime, str]:
    """When the audit stored ``rec`` (a date or its text), then its chain's name."""
    at = rec.get("recorded_at")
    when = at if isinstance(at, datetime) else _instant(at)
    when = when or datetime.min
    return (when if when.tzinfo else when.replace(tzinfo=UTC), str(rec.get("chain") or ""))


def trail_order(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The records in the trail's order: by position within a chain, chains merged by time.

    A chain (one topic partition) has one writer, so its positions are the order the events
    happened in for the aggregates keyed to it. Records of different chains have no common
    position: they are interleaved by when the audit recorded them (ties by chain name),
    never reordering a chain even if the recording clock went back.
    """
    chains: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for rec in records:
        chains[str(rec.get("chain") or "")].append(rec)
    runs = [sorted(run, key=lambda r: int(r.get("seq") or 0)) for _, run in sorted(chains.items())]
    return list(heapq.merge(*runs, key=_recorded))


EMPTY_REPORT: dict[str, Any] = {
    "received_at": None, "right": None, "channel": None, "due_date": None,
    "extended": False, "extended_due_date": None, "responded_at": None, "outcome": None,
    "status": None, "late": None,
}  # fmt: skip


def compliance_report(
    request_id: str, records: list[dict[str, Any]], today: date
) -> dict[str, Any]:
    """Received, due, extended, responded, late or not, and per-system outcomes."""
    out: dict[str, Any] = {"request_id": request_id, **EMPTY_REPORT}
    out.update(deadlines={}, cases={}, systems={}, timeline=[])
    clock: dict[str, Any] = {}
    for rec in trail_order(records):
        clock = _fold(out, rec, clock)
    _clock(out, clock)
    out["late"] = _late(out, clock, today)
    return out


def _fold(out: dict[str, Any], rec: dict[str, Any], clock: dict[str, Any]) -> dict[str, Any]:
    """One record folded into the report; the request's clock as it stands after it."""
    data, kind = rec.get("data") or {}, str(rec.get("type"))
    out["timeline"].append({"at": rec.get("event_time"), "type": kind, "record_id": rec["_id"]})
    if kind in ("gdpr.request.received", "gardien.request.accepted"):
        for field in ("received_at", "right", "channel"):
            out[field] = out[field] or data.get(field)
    if kind.startswith("gardien.request."):
        clock = data.get("clock") or clock
        out["status"] = data.get("to") or data.get("status") or out["status"]
    if kind == "gdpr.request.extended":
        out["extended"] = True
    if kind == "gdpr.request.responded":
        out["responded_at"] = data.get("at")
        out["outcome"] = data.get("outcome", "responded")
    if kind.startswith("gardien.deadline."):
        _deadline(out, data, kind)
    if kind.startswith("gardien.erasure.case."):
        _case(out, data, kind)
    if kind == "gdpr.erasure.result":
        slot = out["systems"].setdefault(str(data.get("system")), {})
        slot.update({"outcome": data.get("outcome"), "reported_at": rec.get("event_time")})
    return clock


def _deadline(out: dict[str, Any], data: dict[str, Any], kind: str) -> None:
    out["deadlines"][str(data.get("timer_id"))] = {
        "kind": data.get("kind"),
        "state": kind.rsplit(".", 1)[1],
        "due_at": data.get("due_at"),
        "basis": data.get("basis"),
        "request_id": (data.get("ref") or {}).get("request_id"),
    }


def _case(out: dict[str, Any], data: dict[str, Any], kind: str) -> None:
    out["cases"][str(data.get("case_id"))] = {
        "state": kind.rsplit(".", 1)[1],
        "closed_at": data.get("closed_at"),
        "origin": data.get("origin"),
    }
    for system, status in (data.get("systems") or {}).items():
        if isinstance(status, dict):
            slot = out["systems"].setdefault(str(system), {})
            slot.update({k: v for k, v in status.items() if v is not None})


def _clock(out: dict[str, Any], clock: dict[str, Any]) -> None:
    out["due_date"] = clock.get("effective_due_date") or clock.get("due_date")
    if clock.get("extended_due_date"):
        out["extended"] = True
        out["extended_due_date"] = clock["extended_due_date"]
    if not out["due_date"]:
        request_deadlines = [d for d in out["deadlines"].values() if d["kind"] == "request"]
        if request_deadlines:
            due = _instant(request_deadlines[-1]["due_at"])
            out["due_date"] = due.astimezone(PARIS).date().isoformat() if due else None


def _late(out: dict[str, Any], clock: dict[str, Any], today: date) -> bool | None:
    """True or False once known; None while the request is open and not yet due."""
    if clock.get("on_time") is not None:
        return not bool(clock["on_time"])
    if any(d["state"] == "missed" for d in out["deadlines"].values()):
        return True
    due = _day(out["extended_due_date"] or out["due_date"])
    responded = _instant(out["responded_at"])
    if responded is not None and due is not None:
        return responded.astimezone(PARIS).date() > due
    if due is not None and today > due:
        return True
    return None
