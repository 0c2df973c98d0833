"""The compliance report reads a request's records in the trail's order (pure, no I/O)."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Any

from services.audit.report import compliance_report, trail_order

CASES = "gardien.erasure.cases.v1/2"
RESULTS = "gdpr.erasure.results.v1/4"
T0 = datetime(2027, 3, 6, 9, 0, tzinfo=UTC)
SAME_INSTANT = "2027-03-06T10:00:00+00:00"


def rec(
    chain: str, seq: int, event_id: str, kind: str, at: datetime, **data: Any
) -> dict[str, Any]:
    return {
        "_id": f"{chain.split('/')[0]}|{event_id}",
        "chain": chain,
        "seq": seq,
        "recorded_at": at,
        "event_time": SAME_INSTANT,
        "type": kind,
        "refs": {"request_id": "R-1", "case_id": "req:R-1"},
        "data": {"case_id": "req:R-1", "request_id": "R-1", **data},
    }


def test_a_closed_case_stays_closed_when_its_last_progress_shares_the_instant() -> None:
    progressed = rec(CASES, 7, "req:R-1:progressed:3", "gardien.erasure.case.progressed", T0)
    closed = rec(CASES, 8, "req:R-1:closed", "gardien.erasure.case.closed", T0)
    # (event_time, _id) would put "progressed" last: "closed" < "progressed".
    report = compliance_report("R-1", [closed, progressed], date(2027, 3, 6))
    assert report["cases"]["req:R-1"]["state"] == "closed"
    assert [t["record_id"] for t in report["timeline"]] == [progressed["_id"], closed["_id"]]


def test_chain_position_wins_over_a_recorded_clock_that_went_back() -> None:
    first = rec(CASES, 1, "a", "gardien.erasure.case.progressed", T0)
    second = rec(CASES, 2, "b", "gardien.erasure.case.closed", T0 - timedelta(seconds=5))
    assert [r["_id"] for r in trail_order([second, first])] == [first["_id"], second["_id"]]


def test_chains_interleave_in_recorded_order() -> None:
    c1 = rec(CASES, 1, "c1", "gardien.erasure.case.opened", T0)
    r1 = rec(RESULTS, 1, "r1", "gdpr.erasure.result", T0 + timedelta(seconds=1))
    c2 = rec(CASES, 2, "c2", "gardien.erasure.case.closed", T0 + timedelta(seconds=2))
    r2 = rec(RESULTS, 2, "r2", "gdpr.erasure.result", T0 + timedelta(seconds=3))
    ordered = trail_order([r2, c2, r1, c1])
    assert [r["_id"].split("|")[1] for r in ordered] == ["c1", "r1", "c2", "r2"]


def test_recorded_times_as_text_or_dates_sort_alike() -> None:
    a = rec(CASES, 1, "a", "gardien.erasure.case.opened", T0)
    b = rec(RESULTS, 1, "b", "gdpr.erasure.result", T0 + timedelta(milliseconds=3))
    b["recorded_at"] = b["recorded_at"].isoformat()
    assert [r["_id"] for r in trail_order([b, a])] == [a["_id"], b["_id"]]
