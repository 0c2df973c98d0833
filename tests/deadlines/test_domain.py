"""Pure clock computations: deadlines, firing plans, pauses, holds, notifications."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest

from services.deadlines import clocks
from services.deadlines.domain import (
    Base,
    Kind,
    State,
    TimerSpec,
    end_of_day,
    fired_key,
    firing_plan,
    iso_utc,
    next_fire_ms,
    pending,
    shown_state,
    to_ms,
)
from services.deadlines.messages import Recompute, new_timer
from shared.errors import TransitionRefused
from shared.pseudonyms import Pseudonymiser
from shared.rules import Pause, default_policy, request_due

POLICY = default_policy()
BREACH = {
    "breach_id": "BR-1",
    "aware_at": "2026-12-24T18:30:00+01:00",
    "reported_by": "controller",
    "risk": "high",
    "categories": ["customer"],
    "approx_subjects": 10,
    "approx_records": 20,
}


def plan_of(spec: TimerSpec) -> list:  # type: ignore[type-arg]
    return firing_plan(spec, POLICY.rights.reminder_days(), POLICY.breach.reminder_hours())


def test_breach_deadline_is_72_elapsed_hours_and_warnings_at_policy_offsets() -> None:
    authority, subjects = clocks.breach_clocks(BREACH, POLICY)
    assert iso_utc(authority.due_at) == "2026-12-27T17:30:00Z"  # type: ignore[arg-type]
    assert authority.rules == ("R-BR-1",) and authority.base is Base.OPEN
    assert subjects.base is Base.OPEN and subjects.rules == ("R-BR-4",)
    plan = plan_of(authority)
    assert [f.name for f in plan] == [
        "approaching:PT48H", "approaching:PT24H", "approaching:PT6H", "due", "missed",
    ]  # fmt: skip
    due = to_ms(datetime(2026, 12, 27, 17, 30, tzinfo=UTC))
    assert plan[3].at_ms == due and plan[4].at_ms == due + 1
    assert plan[0].at_ms == due - 48 * 3600 * 1000


def test_risk_gates_open_or_close_the_obligations() -> None:
    authority, subjects = clocks.breach_clocks({**BREACH, "risk": "risk"}, POLICY)
    assert authority.base is Base.OPEN and subjects.base is Base.NOT_REQUIRED
    authority, _ = clocks.breach_clocks({**BREACH, "risk": "unlikely"}, POLICY)
    assert authority.base is Base.NOT_REQUIRED and plan_of(authority) == []


def test_disproportionate_effort_turns_the_subjects_clock_into_a_public_communication() -> None:
    # Issue 10 item 11: Art 34(3)(c) replaces the individual communication by a public one,
    # with the Art 34(1) timing (without undue delay; the 72 h deadline as internal target).
    data = {**BREACH, "art34_3_conditions": ["c_disproportionate_effort"]}
    authority, public = clocks.breach_clocks(data, POLICY)
    assert public.base is Base.OPEN and public.due_at == authority.due_at
    assert public.details["communication"] == "public_communication"
    assert public.details["replaces"] == "communication_to_data_subjects"
    assert public.details["timing"] == "without_undue_delay"
    assert "Art 34(3)(c)" in public.details["ground"]
    assert [f.type for f in plan_of(public)] == [f.type for f in plan_of(authority)]
    _, individual = clocks.breach_clocks(BREACH, POLICY)
    assert individual.details["communication"] == "data_subjects"
    assert individual.details["timing"] == "without_undue_delay"
    _, none = clocks.breach_clocks({**BREACH, "art34_3_conditions": ["a"]}, POLICY)
    assert none.base is Base.NOT_REQUIRED and none.details["communication"] is None


def test_processor_report_starts_at_controller_awareness_and_checks_the_sla() -> None:
    data = {**BREACH, "reported_by": "processor", "processor_aware_at": "2026-12-23T12:30:00+01:00"}
    authority, _ = clocks.breach_clocks(data, POLICY)
    assert authority.rules == ("R-BR-1", "R-BR-2")
    assert authority.details["processor_delay_hours"] == 30
    assert authority.details["processor_sla_breached"] is True
    with pytest.raises(TransitionRefused):
        clocks.breach_clocks({**data, "processor_aware_at": "2026-12-25T00:00:00+01:00"}, POLICY)


def test_late_notification_requires_reasons_and_a_72nd_hour_one_is_in_time() -> None:
    authority, _ = clocks.breach_clocks(BREACH, POLICY)
    deadline = datetime(2026, 12, 27, 17, 30, tzinfo=UTC)
    on_time = clocks.notified(authority, deadline, None)
    assert on_time.base is Base.MET and on_time.details["late"] is False
    late = clocks.notified(authority, deadline + timedelta(minutes=1), None)
    assert late.base is Base.MISSED and "R-BR-3" in late.rules
    assert late.details["reasons_for_delay_required"] is True
    assert late.details["reasons_for_delay_given"] is False


def test_pending_collapses_stale_warnings_and_records_all() -> None:
    authority, _ = clocks.breach_clocks(BREACH, POLICY)
    plan = plan_of(authority)
    due_ms = to_ms(authority.due_at)  # type: ignore[arg-type]
    emit, mark = pending(plan, set(), due_ms, due_ms - 5 * 3600 * 1000)
    assert [f.name for f in emit] == ["approaching:PT6H"] and len(mark) == 3
    emit, mark = pending(plan, set(mark), due_ms, due_ms)
    assert [f.name for f in emit] == ["due"]
    fired = set(mark) | {fired_key(plan[i], due_ms) for i in range(3)}
    assert next_fire_ms(plan, fired, due_ms) == due_ms + 1
    assert shown_state(Base.OPEN, plan, fired, due_ms) is State.DUE
    emit, _ = pending(plan, set(), due_ms, due_ms + 1)
    assert [f.name for f in emit] == ["due", "missed"]


def test_request_due_and_a_pause_moves_it_by_the_paused_days() -> None:
    inputs = {"receipt_date": "2027-03-05", "pauses": []}
    spec = clocks.request_from_inputs("R1", inputs, "FR-metropole")
    assert spec.due_date == request_due(date(2027, 3, 5)).due_date
    paused = {**inputs, "pauses": [["2027-03-10", None]]}
    spec = clocks.request_from_inputs("R1", paused, "FR-metropole")
    assert spec.base is Base.PAUSED and spec.due_at is None and plan_of(spec) == []
    resumed = {**inputs, "pauses": [["2027-03-10", "2027-03-20"]]}
    spec = clocks.request_from_inputs("R1", resumed, "FR-metropole")
    expected = request_due(date(2027, 3, 5), pauses=[Pause(date(2027, 3, 10), date(2027, 3, 20))])
    assert spec.due_date == expected.due_date == date(2027, 4, 15)
    assert "R-DSR-3" in spec.rules
    assert spec.due_at == end_of_day(date(2027, 4, 15))


def test_fallback_inputs_follow_status_changes() -> None:
    inputs = {"receipt_date": "2027-03-05", "pauses": []}
    step = {"from": "received", "to": "awaiting_identity", "at": "2027-03-10T10:00:00+01:00"}
    inputs = clocks.request_inputs_after(inputs, step)
    step = {"from": "awaiting_identity", "to": "in_progress", "at": "2027-03-20T10:00:00+01:00"}
    inputs = clocks.request_inputs_after(inputs, step)
    assert inputs["pauses"] == [["2027-03-10", "2027-03-20"]]
    step = {"from": "in_progress", "to": "responded", "at": "2027-04-14T10:00:00+02:00"}
    spec = clocks.request_from_inputs(
        "R1", clocks.request_inputs_after(inputs, step), "FR-metropole"
    )
    assert spec.base is Base.MET


def test_request_clock_from_intake_clock_object() -> None:
    clock = {
        "receipt_date": "2027-03-05", "raw_due_date": "2027-04-05", "due_date": "2027-04-05",
        "extended_due_date": "2027-06-07", "effective_due_date": "2027-06-07",
        "paused_days": 0, "state": "running",
    }  # fmt: skip
    spec = clocks.request_from_clock("R2", clock)
    assert spec.due_date == date(2027, 6, 7) and spec.rules == ("R-DSR-1", "R-DSR-2")
    stopped = clocks.request_from_clock(
        "R2", {**clock, "state": "stopped", "responded_on": "2027-06-08"}
    )
    assert stopped.base is Base.MISSED
    paused = clocks.request_from_clock("R2", {**clock, "state": "paused", "due_date": None})
    assert paused.base is Base.PAUSED and paused.due_at is None


def test_request_clock_paused_after_a_valid_extension_keeps_r_dsr_2() -> None:
    # Issue 10 item 9: intake's clock while a pause follows an extension: no due date runs,
    # the extension stays valid and the base/extended/effective dates reach the timer.
    clock = {
        "receipt_date": "2027-03-05", "raw_due_date": None, "due_date": None,
        "base_due_date": None, "extension_valid": True, "extension_notified_on": "2027-03-20",
        "extended_due_date": None, "effective_due_date": None, "paused_days": 0,
        "paused_since": "2027-03-22", "state": "paused",
    }  # fmt: skip
    spec = clocks.request_from_clock("R3", clock)
    assert spec.base is Base.PAUSED and spec.due_at is None
    assert spec.rules == ("R-DSR-1", "R-DSR-2", "R-DSR-3")
    assert spec.details["extension_valid"] is True


def test_request_clock_from_inputs_shows_base_extended_and_effective() -> None:
    inputs = {
        "receipt_date": "2027-03-05",
        "pauses": [["2027-03-08", "2027-03-18"]],
        "extension_on": "2027-04-12",
    }
    spec = clocks.request_from_inputs("R4", inputs, "FR-metropole")
    assert spec.due_date == date(2027, 6, 15)
    assert spec.details["base_due_date"] == "2027-04-15"
    assert spec.details["extended_due_date"] == spec.details["effective_due_date"] == "2027-06-15"
    assert spec.details["extension_valid"] is True


def test_retention_purge_due_and_holds_block_and_never_shorten() -> None:
    inputs = {"category": "customer", "start_date": "2026-06-30", "holds": []}
    spec = clocks.retention_clock("retention:C:customer", inputs, POLICY)
    assert spec.details["retain_until"] == "2031-06-30" and spec.due_date == date(2031, 7, 1)
    assert iso_utc(spec.due_at) == "2031-06-30T22:00:00Z"  # type: ignore[arg-type]
    assert [f.type for f in plan_of(spec)] == ["due"]
    hold = {"key": "H", "matter": "m", "opened_on": "2030-01-01", "released_on": None}
    blocked = clocks.retention_clock("r", {**inputs, "holds": [hold]}, POLICY)
    assert blocked.base is Base.BLOCKED and blocked.due_at is None and plan_of(blocked) == []
    early = clocks.retention_clock(
        "r", {**inputs, "holds": [{**hold, "released_on": "2030-05-01"}]}, POLICY
    )
    assert early.details["effective_retain_until"] == "2031-06-30"
    late = clocks.retention_clock(
        "r", {**inputs, "holds": [{**hold, "released_on": "2032-02-03"}]}, POLICY
    )
    assert late.details["effective_retain_until"] == "2032-02-03" and "R-RET-4" in late.rules
    with pytest.raises(TransitionRefused):
        clocks.retention_clock("r", {**inputs, "category": "nope"}, POLICY)


def test_a_hold_opened_after_the_purge_date_still_blocks_an_open_retention_clock() -> None:
    # Contract ended in 2019: retention ran out in 2024, the hold came in 2027, before the
    # contract-end event and so before any purge was carried out (R-RET-4, issue 10).
    inputs = {"category": "customer", "start_date": "2019-06-30"}
    hold = {"key": "H", "matter": "dispute-X", "opened_on": "2027-03-01", "released_on": None}
    blocked = clocks.retention_clock("r", {**inputs, "holds": [hold]}, POLICY)
    assert blocked.base is Base.BLOCKED and plan_of(blocked) == []
    assert blocked.details["late_holds"] == []
    released = {**hold, "released_on": "2027-09-30"}
    after = clocks.retention_clock("r", {**inputs, "holds": [released]}, POLICY)
    assert after.base is Base.OPEN and after.due_date == date(2027, 10, 1)


def test_hold_scope_matching() -> None:
    refs = Pseudonymiser(b"k" * 32).refs({"email": "a@b.c", "customer_id": "C1"})
    assert clocks.hold_applies({"subject_refs": refs[:1], "categories": []}, refs, "customer")
    assert not clocks.hold_applies({"subject_refs": ["s-x"], "categories": []}, refs, "customer")
    assert not clocks.hold_applies({"subject_refs": [], "categories": ["cctv"]}, refs, "customer")
    assert clocks.subject_key(refs) == clocks.subject_key(refs[::-1])
    assert clocks.subject_key(refs) != clocks.subject_key(refs[:1])


def test_processor_clock_closed_or_late() -> None:
    inputs = {
        "old_processor": "old", "new_processor": "new", "effective_on": "2027-06-30",
        "contractual_days": 30, "controller_choice": "delete",
    }  # fmt: skip
    spec = clocks.processor_clock(inputs)
    assert spec.timer_id == "processor:old:2027-06-30" and spec.due_date == date(2027, 7, 30)
    assert clocks.processor_clock(inputs, date(2027, 7, 15)).base is Base.MET
    assert clocks.processor_clock(inputs, date(2027, 8, 1)).base is Base.MISSED


def test_end_of_day_follows_paris_offsets() -> None:
    assert iso_utc(end_of_day(date(2027, 1, 15))) == "2027-01-15T23:00:00Z"
    assert iso_utc(end_of_day(date(2027, 7, 15))) == "2027-07-15T22:00:00Z"
    assert iso_utc(end_of_day(date(2027, 3, 27))) == "2027-03-27T23:00:00Z"  # DST next day


def test_new_timer_document_is_free_and_indexed() -> None:
    spec = clocks.request_from_inputs("R9", {"receipt_date": "2027-03-05"}, "FR-metropole")
    doc = new_timer(Recompute(spec, {}), POLICY, "evt-1")
    assert doc["lease_until_ms"] == 0 and doc["kind"] == Kind.REQUEST
    assert doc["next_fire_ms"] == doc["plan"][0]["at_ms"] and doc["state"] == "open"
