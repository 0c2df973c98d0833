"""Deadlines use cases on the in-memory repositories: batches loaded once, folded in order,
saved once, relayed once; refusals kept per event; lost races redone (milliseconds, no I/O)."""

from __future__ import annotations

import asyncio
import dataclasses
from datetime import UTC, datetime
from typing import Any

import pytest

from services.deadlines.memory import MemoryTimers
from shared.errors import TransitionRefused
from shared.persistence import Change, Saved
from tests.deadlines.fakes import event, world

T0 = datetime(2026, 12, 24, 17, 30, tzinfo=UTC)
BREACH = {
    "aware_at": "2026-12-24T18:30:00+01:00", "reported_by": "controller", "risk": "high",
    "categories": ["customer"], "approx_subjects": 3, "approx_records": 9,
}  # fmt: skip


def detected(bid: str) -> Any:
    return event(
        "gdpr.breach.detected", {"breach_id": bid, **BREACH}, BREACH["aware_at"], f"d-{bid}"
    )


def notified(bid: str, at: str, which: str = "authority") -> Any:
    data = {"breach_id": bid, "at": at}
    return event(f"gdpr.breach.{which}_notified", data, at, f"n-{which}-{bid}")


def accepted(rid: str) -> Any:
    data = {"request_id": rid, "right": "access", "status": "received",
            "received_at": "2027-03-05T16:45:00+01:00", "subject_kind": "customer",
            "channel": "web"}  # fmt: skip
    return event("gardien.request.accepted", data, data["received_at"], f"a-{rid}")


def step(rid: str, frm: str, to: str, at: str) -> Any:
    data = {"request_id": rid, "from": frm, "to": to, "cause": "x", "at": at}
    return event("gardien.request.status_changed", data, at, f"s-{rid}-{to}")


async def test_a_batch_is_loaded_once_folded_in_order_saved_once_relayed_once() -> None:
    w = world(T0)
    batch = [
        accepted("R1"),
        step("R1", "received", "awaiting_identity", "2027-03-10T10:00:00+01:00"),
        step("R1", "awaiting_identity", "in_progress", "2027-03-20T10:00:00+01:00"),
        accepted("R2"),
    ]
    await w.handle(*batch)
    assert w.timers.calls == {"load_many": 1, "save_many": 1, "relay": 1}
    r1 = w.doc("request:R1")
    assert r1["state"] == "open" and r1["due_date"] == "2027-04-15" and "R-DSR-3" in r1["rules"]
    assert r1["applied_events"] == [e.id for e in batch[:3]] and r1["version"] == 1
    # R1 was scheduled, then paused, then scheduled again with the moved deadline.
    due = [(e.data["timer_id"], e.data["due_date"]) for e in w.sent("scheduled")]
    assert due == [("request:R1", "2027-04-05"), ("request:R1", "2027-04-15"),
                   ("request:R2", "2027-04-05")]  # fmt: skip
    assert r1["outbox"] == [] and not r1["outbox_pending"]


async def test_a_redelivered_batch_changes_and_sends_nothing() -> None:
    w = world(T0)
    batch = [
        accepted("R1"),
        step("R1", "received", "awaiting_identity", "2027-03-10T10:00:00+01:00"),
    ]
    await w.handle(*batch)
    before, sent = dict(w.doc("request:R1")), len(w.timers.sent)
    await w.handle(*batch)
    await w.handle(batch[1], batch[1])
    assert w.doc("request:R1") == before and len(w.timers.sent) == sent


async def test_a_refused_event_does_not_sink_the_rest_of_its_batch() -> None:
    w = world(T0)
    unknown = notified("BR-NONE", "2026-12-25T09:00:00+01:00")
    with pytest.raises(TransitionRefused, match="unknown breach BR-NONE"):
        await w.handle(detected("BR-1"), unknown, accepted("R1"))
    assert {"breach:BR-1:authority", "breach:BR-1:subjects", "request:R1"} <= set(w.timers.docs)
    assert "breach:BR-NONE:authority" not in w.timers.docs
    # Replayed one by one (the consumer's contract): the good events change nothing more.
    await w.handle(detected("BR-1"))
    await w.handle(accepted("R1"))
    with pytest.raises(TransitionRefused):
        await w.handle(unknown)


async def test_a_breach_detected_and_notified_late_in_one_batch_closes_as_missed() -> None:
    w = world(T0)
    await w.handle(detected("BR-2"), notified("BR-2", "2026-12-28T09:00:00+01:00"))
    doc = w.doc("breach:BR-2:authority")
    assert doc["state"] == "missed" and "R-BR-3" in doc["rules"]
    [closed] = w.sent("missed")
    assert closed.data["late"] is True and closed.data["stage"] == "closed"


async def test_a_lost_race_is_decided_again_from_the_other_writers_state() -> None:
    w = world(T0)
    await w.handle(detected("BR-3"))
    real_save = MemoryTimers.save_many
    raced = False

    async def racing(self: MemoryTimers, changes: Any) -> Saved:
        nonlocal raced
        if not raced:  # another member writes the timer between our read and our write
            raced = True
            doc = self.docs["breach:BR-3:authority"]
            await real_save(self, [Change(doc["_id"], doc["version"], {"other": "writer"})])
        return await real_save(self, changes)

    w.timers.save_many = racing.__get__(w.timers)  # type: ignore[method-assign]
    await w.handle(notified("BR-3", "2026-12-25T09:00:00+01:00"))
    doc = w.doc("breach:BR-3:authority")
    assert doc["other"] == "writer" and doc["state"] == "met" and doc["version"] == 3
    assert len(w.sent("met")) == 1


async def test_the_scheduler_fires_a_batch_once_and_advances_every_timer() -> None:
    w = world(T0)
    await w.handle(detected("BR-4"), detected("BR-5"))
    w.clock.set(datetime(2026, 12, 27, 17, 30, tzinfo=UTC))  # the deadline
    assert await w.scheduler.tick() == 4  # 2 breaches x (authority, subjects), claims of 2
    assert await w.scheduler.tick() == 0
    due = sorted(e.data["timer_id"] for e in w.sent("due"))
    assert due == sorted(f"breach:BR-{n}:{c}" for n in (4, 5) for c in ("authority", "subjects"))
    assert all(w.doc(t)["lease_token"] is None and w.doc(t)["state"] == "due" for t in due)


async def test_an_inbound_change_between_read_and_fire_is_fired_from_the_fresh_timer() -> None:
    w = world(T0)
    await w.handle(detected("BR-6"))
    w.clock.set(datetime(2026, 12, 27, 17, 30, 1, tzinfo=UTC))
    now = int(w.clock.now().timestamp() * 1000)
    found = await w.timers.due(now, 10)
    await w.handle(notified("BR-6", "2026-12-27T18:00:00+01:00"))  # met, after the read
    # The authority clock was met before the leased write landed: its firing is decided
    # again from the fresh timer, which has nothing left to fire; only the subjects clock fires.
    assert await w.scheduler.fire(found, now) == 1
    doc = w.doc("breach:BR-6:authority")
    assert doc["state"] == "met" and doc["lease_token"] is None and doc["lease_until_ms"] == 0
    fired = [(e.type, e.data["timer_id"]) for e in w.sent() if e.id.startswith("breach:")]
    subjects = "breach:BR-6:subjects"
    assert sorted(fired) == [
        ("gardien.deadline.due", subjects),
        ("gardien.deadline.missed", subjects),
    ]


def ended(contract: str, email: str) -> Any:
    data = {"contract_id": contract, "ended_at": "2026-06-30T18:00:00+02:00",
            "subject": {"kind": "customer", "identifiers": {"email": email}},
            "categories": ["customer"]}  # fmt: skip
    return event("gdpr.contract.ended", data, data["ended_at"], f"e-{contract}")


async def test_a_purge_sends_the_opened_subject_unless_a_hold_recorded_before_wins() -> None:
    w = world(datetime(2031, 7, 1, 12, tzinfo=UTC))
    await w.handle(ended("CTR-A", "a@example.org"), ended("CTR-B", "b@example.org"))
    stored = w.doc("retention:CTR-A:customer")["inputs"]["subject"]
    assert stored["kid"] == "retention:CTR-A:customer" and "identifiers" not in stored
    # hold_placed's first write (``holds``) happened; its timers' write has not yet.
    refs = w.uses.pseudonyms.refs({"email": "b@example.org"})
    await w.holds.save_many([{
        "_id": "H-1", "matter": "dispute", "subject_refs": refs, "scope_all_subjects": False,
        "categories": [], "opened_on": "2031-06-01", "released_on": None, "active": True,
    }], {})  # fmt: skip
    assert await w.scheduler.tick() == 1
    [work] = w.sent("work.requested")
    assert work.data["case_id"] == "ret:retention:CTR-A:customer"
    assert work.data["subject"]["identifiers"] == {"email": "a@example.org"}
    held = w.doc("retention:CTR-B:customer")
    assert held["state"] == "blocked" and [h["key"] for h in held["inputs"]["holds"]] == ["H-1"]
    assert held["lease_token"] is None and held["outbox"] == []


async def test_several_claim_loops_in_one_tick_never_fire_a_timer_twice() -> None:
    w = world(T0)
    await w.handle(*(detected(f"BR-W{n}") for n in range(3)))
    w.scheduler.workers, w.scheduler.batch = 4, 1
    w.clock.set(datetime(2026, 12, 27, 17, 30, tzinfo=UTC))
    assert await w.scheduler.tick() == 6
    ids = [e.id for e in w.sent("due")]
    assert len(ids) == len(set(ids)) == 6


async def tick_dying(w: Any, step: str) -> None:
    """A scheduler tick whose ``w.timers.<step>`` fails, as when the member dies there."""

    async def dies(*_: Any) -> Any:
        raise ConnectionError(f"the member died at {step}")

    setattr(w.timers, step, dies)
    try:
        with pytest.raises(ConnectionError):
            await w.scheduler.tick()
    finally:
        delattr(w.timers, step)


async def test_a_holder_that_dies_after_its_leased_write_loses_no_firing_and_repeats_none() -> None:
    w = world(T0)
    await w.handle(detected("BR-D"))
    w.clock.set(datetime(2026, 12, 27, 17, 30, tzinfo=UTC))  # the deadline
    await tick_dying(w, "publish")  # after its write, before publishing
    doc = w.doc("breach:BR-D:authority")
    assert doc["outbox_pending"] and doc["lease_token"] and w.sent("due") == []
    w.clock.set(datetime(2026, 12, 27, 17, 30, 10, tzinfo=UTC))  # the lease is still live
    assert await w.scheduler.tick() == 0 and w.sent("due") == []
    now_ms = int(w.clock.now().timestamp() * 1000)
    assert await w.timers.relay_pending(now_ms) == 2  # the sweep sends what the write decided
    w.clock.set(datetime(2026, 12, 27, 17, 31, tzinfo=UTC))  # lease over: the next firing
    await w.scheduler.tick()
    ids = [e.id for e in w.sent() if e.id.startswith("breach:BR-D")]
    assert len(ids) == len(set(ids)) and len(w.sent("due")) == 2  # authority + subjects


async def test_a_burst_is_published_before_its_outboxes_are_cleared_and_then_all_are() -> None:
    w = world(T0)
    await w.handle(*(detected(f"BR-C{n}") for n in range(3)))
    w.scheduler.batch = 2  # 6 timers: three claims, each published as soon as written
    calls: list[tuple[str, int]] = []
    real_publish, real_clear = MemoryTimers.publish, MemoryTimers.clear

    async def publish(self: MemoryTimers, saved: Any) -> int:
        calls.append(("publish", len(saved)))
        return await real_publish(self, saved)

    async def clear(self: MemoryTimers, published: Any) -> None:
        calls.append(("clear", len(published)))
        await real_clear(self, published)

    w.timers.publish = publish.__get__(w.timers)  # type: ignore[method-assign]
    w.timers.clear = clear.__get__(w.timers)  # type: ignore[method-assign]
    w.clock.set(datetime(2026, 12, 27, 17, 30, tzinfo=UTC))
    assert await w.scheduler.tick() == 6
    assert calls[:4] == [("publish", 2), ("publish", 2), ("publish", 2), ("clear", 6)]
    docs = [d for d in w.timers.docs.values() if str(d["_id"]).startswith("breach:BR-C")]
    assert len(docs) == 6 and all(d["outbox"] == [] and not d["outbox_pending"] for d in docs)
    assert all(d["lease_token"] is None and d["lease_until_ms"] == 0 for d in docs)


async def test_a_holder_dying_after_publishing_before_the_clear_repeats_only_the_same_ids() -> None:
    w = world(T0)
    await w.handle(detected("BR-P"))
    w.clock.set(datetime(2026, 12, 27, 17, 30, tzinfo=UTC))
    await tick_dying(w, "clear")  # after publishing, before clearing
    first = [e.id for e in w.sent() if e.id.startswith("breach:BR-P")]
    assert first and w.doc("breach:BR-P:authority")["outbox_pending"]
    w.clock.set(datetime(2026, 12, 27, 17, 30, 10, tzinfo=UTC))
    assert await w.timers.relay_pending(int(w.clock.now().timestamp() * 1000)) == len(first)
    again = [e.id for e in w.sent() if e.id.startswith("breach:BR-P")]
    assert sorted(again) == sorted(first * 2)  # the same events, recognisable, none new


async def test_the_scheduler_wakes_at_the_next_timer_due_within_its_interval() -> None:
    w = world(T0)
    await w.handle(detected("BR-N"))
    first = min(int(d["next_fire_ms"]) for d in w.timers.docs.values())
    w.clock.set(datetime.fromtimestamp((first - 250) / 1000, tz=UTC))  # 250 ms before
    assert await w.scheduler.until_next(1.0) == pytest.approx(0.25)
    w.clock.set(datetime.fromtimestamp((first - 5000) / 1000, tz=UTC))  # none within 1 s
    assert await w.scheduler.until_next(1.0) == 1.0


async def test_the_scheduler_sweeps_stale_outboxes_at_its_sweep_interval_not_every_tick() -> None:
    w = world(T0)
    sweeps: list[int] = []
    real = MemoryTimers.relay_pending

    async def counted(self: MemoryTimers, older_than_ms: int) -> int:
        sweeps.append(older_than_ms)
        return await real(self, older_than_ms)

    w.timers.relay_pending = counted.__get__(w.timers)  # type: ignore[method-assign]
    task = asyncio.create_task(w.scheduler.run(0.01, sweep_every=3600))
    await asyncio.sleep(0.3)  # ~30 ticks
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    assert len(sweeps) == 1  # the first tick only


async def test_the_holds_of_a_batch_are_read_once_and_written_once_in_order() -> None:
    from services.deadlines.memory import MemoryHolds

    class Counting(MemoryHolds):
        def __init__(self) -> None:
            super().__init__()
            self.reads = self.writes = 0

        async def get_many(self, keys: Any) -> dict[str, Any]:
            self.reads += 1
            return await super().get_many(keys)

        async def save_many(self, new: Any, released: dict[str, str]) -> None:
            self.writes += 1
            await super().save_many(new, released)

    def hold_event(kind: str, matter: str, at: str, event_id: str) -> Any:
        data = {"matter": matter, "at": at, "scope": {"categories": ["billing"]}}
        return event(f"gdpr.legal_hold.{kind}", data, at, event_id)

    w = world(datetime(2031, 7, 1, 12, tzinfo=UTC))
    counting = Counting()
    w.uses.repos = dataclasses.replace(w.uses.repos, holds=counting)
    at = "2031-06-01T10:00:00+02:00"
    placed = [hold_event("placed", f"M-{i}", at, f"p-{i}") for i in range(3)]
    released = hold_event("released", "M-1", "2031-06-02T10:00:00+02:00", "r-1")
    await w.handle(*placed, released, placed[0])  # a re-delivery too
    assert (counting.reads, counting.writes) == (1, 1)
    assert [k for k, d in sorted(counting.docs.items()) if d["active"]] == ["M-0", "M-2"]
    assert counting.docs["M-1"]["released_on"] == "2031-06-02"


def case_closed(timer_id: str) -> Any:
    data = {"case_id": f"ret:{timer_id}", "origin": "retention", "state": "closed", "systems": {}}
    return event("gardien.erasure.case.closed", data, "2031-07-02T10:00:00+02:00", f"c-{timer_id}")


async def test_a_batch_reads_its_subject_keys_once_and_a_shredded_subject_is_left_out(
    caplog: pytest.LogCaptureFixture,
) -> None:
    w = world(datetime(2031, 7, 1, 12, tzinfo=UTC))
    tids = ["retention:CTR-K1:customer", "retention:CTR-K2:customer"]
    await w.handle(ended("CTR-K1", "k1@example.org"), ended("CTR-K2", "k2@example.org"))
    assert w.vault.prepared == [tids]  # the batch's two new keys, in one go
    await w.vault.destroy(tids[1], w.clock.now())  # shredded before its purge fires
    with caplog.at_level("INFO"):
        assert await w.scheduler.tick() == 2  # one batch (of 2): its keys read once
    assert w.vault.prepared[1:] == [tids]
    subjects = {e.data["timer_id"]: e.data.get("subject") for e in w.sent("work.requested")}
    assert subjects[tids[0]] == {"kind": "customer", "identifiers": {"email": "k1@example.org"}}
    assert subjects[tids[1]] is None and "k2@example.org" not in caplog.text
    assert f"{tids[1]}:purge" in caplog.text  # the log names the event, not the subject
    # Closed together, then a contract end redelivered with a closing: no copy kept.
    await w.handle(case_closed(tids[0]), case_closed("retention:CTR-K3:customer"))
    assert w.vault.gone == {*tids, "retention:CTR-K3:customer"}
    await w.handle(case_closed("retention:CTR-K4:customer"), ended("CTR-K4", "k4@example.org"))
    assert w.doc("retention:CTR-K4:customer")["inputs"].get("subject") is None
