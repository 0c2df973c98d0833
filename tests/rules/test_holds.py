"""R-RET-4: a hold counts until the purge is carried out, whatever the purge date."""

from __future__ import annotations

from datetime import date

from shared.rules import LegalHold, apply_holds, retention_until
from shared.rules.evaluate import evaluate

NORMAL = retention_until(date(2019, 6, 30), 60)  # kept through 2024-06-30, purge due 07-01


def test_a_hold_opened_after_the_purge_date_blocks_a_purge_not_yet_carried_out() -> None:
    held = apply_holds(NORMAL, [LegalHold("dispute-X", date(2027, 3, 1))])
    assert held.purge_blocked and held.purge_due is None and held.late_holds == ()


def test_its_release_sets_the_end_and_the_purge_follows_the_release() -> None:
    held = apply_holds(NORMAL, [LegalHold("dispute-X", date(2027, 3, 1), date(2027, 9, 30))])
    assert held.effective_retain_until == date(2027, 9, 30)
    assert held.purge_due == date(2027, 10, 1) and held.late_holds == ()


def test_a_hold_opened_once_the_purge_was_carried_out_is_late_and_revives_nothing() -> None:
    purged = date(2024, 7, 1)
    held = apply_holds(NORMAL, [LegalHold("dispute-X", date(2027, 3, 1))], purged)
    assert not held.purge_blocked and held.late_holds == ("dispute-X",)
    assert held.effective_retain_until == NORMAL.retain_until
    earlier = apply_holds(NORMAL, [LegalHold("dispute-Y", date(2024, 6, 1))], purged)
    assert earlier.purge_blocked and earlier.late_holds == ()


def test_the_evaluation_command_takes_the_purge_record_into_account() -> None:
    inp = {
        "category": "customer",
        "contract_end_date": "2019-06-30",
        "legal_holds": [{"matter": "dispute-X", "opened_on": "2027-03-01"}],
    }
    assumed = evaluate("R-RET-4", inp)  # no purge record: taken as purged when due
    assert assumed["hold_opened_after_purge_due"] is True
    assert assumed["purge_due"] == "2024-07-01"
    not_purged = evaluate("R-RET-4", {**inp, "purged_on": None})
    assert not_purged["purge_blocked"] is True and not_purged["purge_due"] is None
