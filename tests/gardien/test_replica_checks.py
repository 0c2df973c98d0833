"""The replica run's checks fail on what they are meant to catch (bench/replica_checks.py)."""

from __future__ import annotations

from typing import Any

from bench.replica_checks import (
    Record,
    Verdict,
    check_audit,
    check_commands,
    check_firings,
    check_requests,
)
from shared import topics


def rec(
    topic: str, partition: int, offset: int, key: str, kind: str, eid: str, **data: Any
) -> Record:
    return Record(topic, partition, offset, key, {"id": eid, "type": kind, "data": data})


ACCEPTED, DECIDED = "gardien.request.accepted", "gardien.request.decided"


def requests_story(*extra: Record) -> list[Record]:
    t = topics.REQUEST_EVENTS
    return [rec(t, 0, 1, "R1", ACCEPTED, "a1"), rec(t, 0, 2, "R1", DECIDED, "d1"), *extra]


def test_a_request_decided_once_in_order_passes() -> None:
    v = Verdict()
    check_requests(v, requests_story(), {"R1": "erasure"})
    assert v.ok, v.failures


def test_a_second_decision_a_missing_one_or_a_moved_key_fail() -> None:
    t = topics.REQUEST_EVENTS
    v = Verdict()
    check_requests(v, requests_story(rec(t, 0, 3, "R1", DECIDED, "d2")), {"R1": "erasure"})
    assert v.failures["decided_once"]
    v = Verdict()
    check_requests(v, requests_story()[:1], {"R1": "erasure"})
    assert v.failures["decided_once"]
    v = Verdict()
    check_requests(v, requests_story(rec(t, 3, 0, "R1", "x", "x1")), {"R1": "erasure"})
    assert v.failures["order_per_key"]
    v = Verdict()
    swapped = [rec(t, 0, 2, "R1", ACCEPTED, "a1"), rec(t, 0, 1, "R1", DECIDED, "d1")]
    check_requests(v, swapped, {"R1": "erasure"})
    assert v.failures["order_per_key"]


def test_a_firing_recorded_twice_or_a_clock_not_done_fails() -> None:
    due = rec(topics.DEADLINES, 0, 1, "retention:C1:customer", "gardien.deadline.due", "f1")
    v = Verdict()
    check_firings(v, [due, due], [{"_id": "t", "fired": ["due@1"], "state": "done"}])
    assert v.ok and v.counts["firings_published_twice"] == 1
    v = Verdict()
    check_firings(v, [due], [{"_id": "t", "fired": ["due@1", "due@1"], "state": "done"}])
    assert v.failures["fired_once"]
    v = Verdict()
    check_firings(v, [due], [{"_id": "t", "fired": ["due@1"], "state": "open"}])
    assert v.failures["fired_once"]


def test_a_command_issued_twice_or_a_case_left_open_fails() -> None:
    cmd = "gardien.erasure.command.issued"
    c = topics.ERASURE_COMMANDS
    one = rec(c, 0, 1, "s1", cmd, "k:s1:1", command_id="k:s1", case_id="k")
    closed = [{"_id": "k", "state": "closed", "systems": {"s1": {"attempts": 1}}}]
    v = Verdict()
    check_commands(v, [one], closed, {"k"})
    assert v.ok, v.failures
    again = rec(c, 0, 2, "s1", cmd, "k:s1:2", command_id="k:s1", case_id="k")
    v = Verdict()
    check_commands(v, [one, again], closed, {"k"})
    assert v.failures["command_once"]
    v = Verdict()
    check_commands(v, [one], [{"_id": "k", "state": "open", "systems": {}}], {"k"})
    assert v.failures["acknowledged_once"]


def test_a_command_relayed_again_under_its_own_id_is_one_command() -> None:
    """A member stopped between its publish and its outbox clear leaves the outbox to the
    next owner, which publishes the same events again (same ids): one command, not two."""
    cmd = "gardien.erasure.command.issued"
    one = rec(topics.ERASURE_COMMANDS, 0, 1, "s1", cmd, "k:s1:1", command_id="k:s1", case_id="k")
    relayed = rec(
        topics.ERASURE_COMMANDS, 0, 2, "s1", cmd, "k:s1:1", command_id="k:s1", case_id="k"
    )
    closed = [{"_id": "k", "state": "closed", "systems": {"s1": {"attempts": 1}}}]
    v = Verdict()
    check_commands(v, [one, relayed], closed, {"k"})
    assert v.ok, v.failures
    assert v.counts["commands"] == 1


def audited(eid: str, seq: int, offset: int) -> dict[str, Any]:
    t = topics.REQUEST_EVENTS
    return {"topic": t, "event_id": eid, "chain": f"{t}/0", "seq": seq, "offset": offset,
            "kind": "event"}  # fmt: skip


def test_the_audit_must_hold_each_event_once_in_partition_order() -> None:
    story = requests_story()
    v = Verdict()
    check_audit(v, story, [audited("a1", 1, 1), audited("d1", 2, 2)])
    assert v.ok, v.failures
    v = Verdict()
    check_audit(v, story, [audited("a1", 1, 1)])
    assert v.failures["audited_once"]  # d1 never audited
    v = Verdict()
    check_audit(v, story, [audited("a1", 1, 1), audited("d1", 2, 2), audited("d1", 3, 2)])
    assert v.failures["audited_once"]
    v = Verdict()
    check_audit(v, story, [audited("a1", 2, 1), audited("d1", 1, 2)])
    assert v.failures["order_per_key"]
