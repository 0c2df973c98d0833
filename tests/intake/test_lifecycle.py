"""The request state machine and its clock (pure; R-DSR-1..3 through the rules engine)."""

from __future__ import annotations

from dataclasses import replace
from datetime import date

import pytest

from services.intake import lifecycle as domain
from services.intake.lifecycle import Lifecycle, Status, Step
from shared import rules
from shared.errors import TransitionRefused

RECEIPT = date(2027, 3, 5)


def new(receipt: date = RECEIPT) -> Lifecycle:
    return Lifecycle(Status.RECEIVED, receipt)


def run(lc: Lifecycle, *steps: Step) -> Lifecycle:
    for step in steps:
        lc = domain.apply(lc, step)
    return lc


def test_new_request_clock_is_one_month_rolled() -> None:
    clock = domain.clock(new())
    assert clock["receipt_date"] == date(2027, 3, 5)
    assert clock["raw_due_date"] == clock["due_date"] == date(2027, 4, 5)
    assert clock["effective_due_date"] == date(2027, 4, 5)
    assert clock["state"] == "running" and clock["paused_days"] == 0


def test_due_date_rolls_over_weekend_and_holiday() -> None:
    # 2027-01-31 + 1 month = 2027-02-28, a Sunday -> Monday 1 March (EXT-01 base).
    assert domain.clock(new(date(2027, 1, 31)))["due_date"] == date(2027, 3, 1)


def test_open_pause_nulls_the_due_date() -> None:
    lc = run(new(), Step("info_requested", date(2027, 3, 8), "identity_verification"))
    assert lc.status is Status.AWAITING_IDENTITY
    clock = domain.clock(lc)
    assert clock["state"] == "paused" and clock["due_date"] is None
    assert clock["effective_due_date"] is None and clock["paused_since"] == date(2027, 3, 8)


def test_closed_pause_adds_paused_days_then_rolls() -> None:
    lc = run(
        new(),
        Step("info_requested", date(2027, 3, 8), "identity_verification"),
        Step("info_received", date(2027, 3, 18)),
    )
    clock = domain.clock(lc)
    # PAUSE-01: 10 paused days; 5 Apr + 10 = 15 Apr 2027 (a Thursday).
    assert clock["paused_days"] == 10 and clock["due_date"] == date(2027, 4, 15)
    assert lc.status is Status.RECEIVED and lc.pauses[0].received_on == date(2027, 3, 18)


def test_pause_matches_the_rules_engine_for_many_dates() -> None:
    for offset in range(0, 40, 3):
        start = date(2027, 3, 6 + offset % 20)
        end = date(2027, 4, 1 + offset % 25)
        lc = run(new(), Step("info_requested", start, "clarification"), Step("info_received", end))
        expected = rules.request_due(RECEIPT, "FR-metropole", [rules.Pause(start, end)])
        assert domain.clock(lc)["due_date"] == expected.due_date


def test_clarification_pause_awaits_information_and_resumes_where_it_was() -> None:
    lc = run(new(), Step("identity_verified", date(2027, 3, 6)))
    lc = run(lc, Step("info_requested", date(2027, 3, 7), "clarification"))
    assert lc.status is Status.AWAITING_INFORMATION and lc.resume_to is Status.IN_PROGRESS
    assert run(lc, Step("info_received", date(2027, 3, 9))).status is Status.IN_PROGRESS


def test_identity_verified_ends_an_identity_pause() -> None:
    lc = run(
        new(),
        Step("info_requested", date(2027, 3, 8), "identity"),
        Step("identity_verified", date(2027, 3, 12)),
    )
    assert lc.status is Status.IN_PROGRESS and domain.clock(lc)["paused_days"] == 4


def test_extension_in_time_gives_three_months_from_receipt() -> None:
    lc = run(new(date(2027, 1, 31)), Step("extended", date(2027, 2, 20), reasons=("complex",)))
    clock = domain.clock(lc)
    assert lc.status is Status.EXTENDED
    assert clock["extended_due_date"] == clock["effective_due_date"] == date(2027, 4, 30)
    assert clock["basis"] == "R-DSR-2"


def test_extension_on_the_last_day_is_valid() -> None:
    lc = run(new(), Step("extended", date(2027, 4, 5), reasons=("volume",)))
    assert domain.clock(lc)["effective_due_date"] == rules.roll_forward(date(2027, 6, 5))


def test_extension_after_the_limit_is_refused() -> None:
    with pytest.raises(TransitionRefused, match="after the one-month limit 2027-04-05"):
        domain.apply(new(), Step("extended", date(2027, 4, 6), reasons=("late",)))


def test_extension_after_a_pause_counts_paused_days() -> None:
    lc = run(
        new(),
        Step("info_requested", date(2027, 3, 8), "identity"),
        Step("info_received", date(2027, 3, 18)),
        Step("extended", date(2027, 4, 14), reasons=("complex",)),  # base due is 15 Apr
    )
    expected = rules.roll_forward(date(2027, 6, 5) + (date(2027, 3, 18) - date(2027, 3, 8)))
    assert domain.clock(lc)["extended_due_date"] == expected


def test_paused_then_extended_shows_base_extended_effective_and_validity() -> None:
    # Issue 10 item 9: the pause moves the base end (5 -> 15 Apr), so a notice on 12 Apr,
    # past the unpaused end, is valid; the extended end moves by the same 10 days.
    lc = run(
        new(),
        Step("info_requested", date(2027, 3, 8), "clarification"),
        Step("info_received", date(2027, 3, 18)),
        Step("extended", date(2027, 4, 12), reasons=("volume",)),
    )
    clock = domain.clock(lc)
    assert clock["base_due_date"] == clock["due_date"] == date(2027, 4, 15)
    assert clock["extension_valid"] is True
    assert clock["extension_notified_on"] == date(2027, 4, 12)
    assert clock["extended_due_date"] == clock["effective_due_date"] == date(2027, 6, 15)
    assert clock["basis"] == "R-DSR-2"


def test_extended_then_paused_keeps_the_extension_while_suspended() -> None:
    lc = run(
        new(),
        Step("extended", date(2027, 3, 20), reasons=("volume",)),
        Step("info_requested", date(2027, 3, 22), "clarification"),
    )
    clock = domain.clock(lc)
    assert clock["state"] == "paused" and clock["extension_valid"] is True
    assert clock["base_due_date"] is None and clock["effective_due_date"] is None
    assert clock["basis"] == "R-DSR-2"
    resumed = domain.apply(lc, Step("info_received", date(2027, 4, 1)))
    assert resumed.status is Status.EXTENDED
    assert domain.clock(resumed)["effective_due_date"] == date(2027, 6, 15)


def test_clock_without_extension_says_so() -> None:
    clock = domain.clock(new())
    assert clock["extension_valid"] is False and clock["extension_notified_on"] is None
    assert clock["base_due_date"] == clock["effective_due_date"] == date(2027, 4, 5)


@pytest.mark.parametrize(
    ("status", "step", "message"),
    [
        (Status.EXTENDED, Step("extended", date(2027, 3, 20), reasons=("x",)), "already extended"),
        (Status.AWAITING_IDENTITY, Step("extended", date(2027, 3, 20), reasons=("x",)), "cannot"),
        (Status.RECEIVED, Step("extended", date(2027, 3, 20)), "needs reasons"),
        (Status.RECEIVED, Step("info_received", date(2027, 3, 20)), "no information"),
        (Status.IN_PROGRESS, Step("identity_verified", date(2027, 3, 20)), "identity cannot"),
        (Status.AWAITING_INFORMATION, Step("identity_verified", date(2027, 3, 20)), "cannot"),
        (Status.RESPONDED, Step("info_requested", date(2027, 3, 20)), "cannot request"),
        (Status.RESPONDED, Step("responded", date(2027, 3, 20)), "already answered"),
        (Status.CLOSED, Step("responded", date(2027, 3, 20)), "closed"),
        (Status.RECEIVED, Step("responded", date(2027, 3, 20), outcome="refused"), "reasons"),
        (Status.RECEIVED, Step("responded", date(2027, 3, 1)), "before receipt"),
        (Status.RECEIVED, Step("withdrawn", date(2027, 3, 20)), "does not handle"),
    ],
)
def test_impossible_transitions_are_refused_with_a_reason(
    status: Status, step: Step, message: str
) -> None:
    lc = replace(new(), status=status)
    if status in domain.PAUSED:
        lc = replace(lc, pauses=(rules.Pause(date(2027, 3, 10)),))
    with pytest.raises(TransitionRefused, match=message):
        domain.apply(lc, step)


def test_answer_while_paused_must_be_a_refusal() -> None:
    lc = run(new(), Step("info_requested", date(2027, 3, 8), "identity"))
    with pytest.raises(TransitionRefused, match="only a refusal"):
        domain.apply(lc, Step("responded", date(2027, 4, 20)))
    refused = domain.apply(
        lc, Step("responded", date(2027, 4, 20), outcome="refused", reasons=("no id",))
    )
    assert refused.status is Status.REFUSED and refused.pauses[0].received_on == date(2027, 4, 20)


def test_response_stops_the_clock_and_says_whether_it_was_on_time() -> None:
    lc = run(new(), Step("extended", date(2027, 3, 25), reasons=("x",)))
    late = run(new(), Step("responded", date(2027, 4, 6)))
    on_time = run(lc, Step("responded", date(2027, 4, 20)))
    assert domain.clock(on_time)["state"] == "stopped" and domain.clock(on_time)["on_time"]
    assert domain.clock(late)["on_time"] is False
    assert domain.clock(late)["responded_on"] == date(2027, 4, 6)


def test_refusal_records_reasons_and_flags_missing_complaint_rights() -> None:
    lc = run(new(), Step("responded", date(2027, 3, 20), outcome="partly_refused", reasons=("r",)))
    assert lc.status is Status.PARTLY_REFUSED and lc.answer is not None
    assert lc.answer.reasons == ("r",)
    assert domain.answer_flags(lc.answer) == ["art12_4_complaint_rights_missing"]
    ok = replace(lc.answer, complaint_rights_given=True)
    assert domain.answer_flags(ok) == []


def test_answered_request_closes_once_its_work_is_done() -> None:
    lc = run(replace(new(), open_work=frozenset({"req"})), Step("responded", date(2027, 3, 20)))
    assert domain.close_if_done(lc).status is Status.RESPONDED
    done = domain.close_if_done(replace(lc, open_work=frozenset()))
    assert done.status is Status.CLOSED
    assert domain.close_if_done(new()).status is Status.RECEIVED
