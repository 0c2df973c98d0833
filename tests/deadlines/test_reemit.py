"""The event that created a clock, delivered again while the clock is still in its first
state, publishes the clock's first events again (same ids, data and time): the broker may
have lost them after the outbox was cleared (docs/reliability.md §3, found by make chaos
broker_restart: 2 of 300 ``gardien.deadline.scheduled`` never audited)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from services.deadlines.app import create_app
from services.deadlines.messages import entries
from shared import topics
from shared.clock import FakeClock
from shared.events import CloudEvent
from shared.settings import Settings
from tests.deadlines.fakes import World, event, world
from tests.deadlines.helpers import inbound, next_event, publish, stored, token
from tests.deadlines.test_usecases import T0, accepted, detected, ended, notified, step
from tests.support import running, topic_reader, wait_for


def published(w: World, since: int = 0) -> list[tuple[str, str, dict[str, Any], Any, str]]:
    """(id, type, data, time, key) of what was relayed, from position ``since``."""
    return [(e.id, e.type, e.data, e.time, key) for e, key in w.timers.sent[since:]]


async def test_the_creating_event_again_publishes_the_same_scheduled_event() -> None:
    w = world(T0)
    first = accepted("R1")
    await w.handle(first)
    before = published(w)
    assert [p[1] for p in before] == ["gardien.deadline.scheduled"]
    doc = dict(w.doc("request:R1"))
    await w.handle(first)  # the broker lost the scheduled event; intake re-sent accepted
    assert published(w, len(before)) == before
    after = w.doc("request:R1")
    assert after["outbox"] == [] and not after["outbox_pending"]
    assert after["applied_events"] == [first.id] and after["state"] == doc["state"] == "open"
    assert {k: v for k, v in after.items() if k not in VOLATILE} == {
        k: v for k, v in doc.items() if k not in VOLATILE
    }


VOLATILE = {"version", "_w", "outbox_at_ms"}


async def test_the_breach_clocks_publish_their_scheduled_events_again() -> None:
    w = world(T0)
    await w.handle(detected("BR-1"))
    before = published(w)
    assert sorted(p[4] for p in before) == ["breach:BR-1:authority", "breach:BR-1:subjects"]
    await w.handle(detected("BR-1"))
    assert published(w, len(before)) == before


async def test_the_first_time_stands_when_the_same_event_comes_with_another_time() -> None:
    w = world(T0)
    first = accepted("R1")
    await w.handle(first)
    (_, _, data, at, _) = published(w)[0]
    later = first.model_copy(update={"time": datetime(2027, 3, 9, tzinfo=UTC)})
    await w.handle(later)
    [again] = published(w, 1)
    assert again[2] == data and again[3] == at == first.time


async def test_a_retention_clock_publishes_its_scheduled_event_again() -> None:
    w = world(T0)
    first = ended("CTR-R", "r@example.org")
    await w.handle(first)
    before = published(w)
    assert [p[4] for p in before] == ["retention:CTR-R:customer"]
    await w.handle(first)
    assert published(w, len(before)) == before
    assert "r@example.org" not in str(before)


async def test_a_clock_created_closed_publishes_its_closing_event_again() -> None:
    w = world(T0)
    clock = {"receipt_date": "2027-03-05", "due_date": "2027-04-05",
             "effective_due_date": "2027-04-05", "state": "stopped",
             "responded_on": "2027-03-20", "on_time": True, "calendar": "FR-metropole",
             "basis": "R-DSR-1"}  # fmt: skip
    data = {"request_id": "R-C", "right": "access", "status": "responded",
            "received_at": "2027-03-05T16:45:00+01:00", "subject_kind": "customer",
            "channel": "web", "clock": clock}  # fmt: skip
    first = event("gardien.request.accepted", data, data["received_at"], "a-R-C")
    await w.handle(first)
    before = published(w)
    assert [p[1] for p in before] == ["gardien.deadline.met"]
    await w.handle(first)
    assert published(w, len(before)) == before


async def test_once_a_later_event_was_applied_nothing_is_published_again() -> None:
    w = world(T0)
    first = accepted("R1")
    await w.handle(first, step("R1", "received", "awaiting_identity", "2027-03-10T10:00:00+01:00"))
    count, version = len(w.timers.sent), w.doc("request:R1")["version"]
    await w.handle(first)
    assert published(w, count) == [] and w.doc("request:R1")["version"] == version


async def test_once_the_clock_is_closed_nothing_is_published_again() -> None:
    w = world(T0)
    await w.handle(detected("BR-2"), notified("BR-2", "2026-12-25T09:00:00+01:00"))
    count = len(w.timers.sent)
    await w.handle(detected("BR-2"))
    # The subjects clock is still first-state (nothing notified it): it alone is re-sent.
    assert [p[4] for p in published(w, count)] == ["breach:BR-2:subjects"]


async def test_once_the_clock_fired_nothing_is_published_again() -> None:
    w = world(T0)
    first = accepted("R1")
    await w.handle(first)
    w.clock.set(datetime(2027, 4, 5, 12, tzinfo=UTC))  # the deadline day: due warning out
    assert await w.scheduler.tick() >= 1
    assert w.doc("request:R1")["fired"] != []
    count = len(w.timers.sent)
    await w.handle(first)
    assert published(w, count) == []


async def test_a_new_event_for_the_same_request_is_not_a_redelivery() -> None:
    w = world(T0)
    await w.handle(accepted("R1"))
    count = len(w.timers.sent)
    other = accepted("R1").model_copy(update={"id": "a-R1-other"})  # same clock, new id
    await w.handle(other)
    assert published(w, count) == []  # the deadline did not move: nothing to schedule


async def test_the_creating_event_twice_in_one_batch_publishes_once() -> None:
    w = world(T0)
    first = accepted("R1")
    await w.handle(first, first)
    assert len(w.sent("scheduled")) == 1
    assert w.timers.calls == {"load_many": 1, "save_many": 1, "relay": 1}


async def test_a_batch_of_redeliveries_is_one_write_and_one_relay() -> None:
    w = world(T0)
    batch = [accepted(f"R{i}") for i in range(5)]
    await w.handle(*batch)
    w.timers.calls.clear()
    await w.handle(*batch)
    assert w.timers.calls == {"load_many": 1, "save_many": 1, "relay": 1}
    assert len(w.sent("scheduled")) == 10


async def test_events_still_in_the_outbox_are_left_to_the_sweep_not_sent_twice() -> None:
    w = world(T0)
    first = accepted("R1")
    await w.handle(first)
    [(scheduled, key)] = w.timers.sent
    # A writer crashed after its write, before its relay: the event waits in the outbox.
    w.doc("request:R1").update(outbox=entries([(scheduled, key)]), outbox_pending=True)
    await w.handle(first)
    assert w.timers.sent[1:] == [] and w.doc("request:R1")["outbox_pending"]
    w.clock.advance(timedelta(minutes=1))
    assert await w.uses.relay_stale() == 1
    assert [e.id for e, _ in w.timers.sent[1:]] == [scheduled.id]


def as_received(record: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in record.items() if k != "traceparent"}


@pytest.mark.integration
async def test_on_the_embedded_stack_the_same_scheduled_event_is_published_again(
    settings: Settings,
) -> None:
    clock = FakeClock(T0)
    app = create_app(settings, clock=clock, run_scheduler=False)
    rid = f"REQ-{token()}"
    tid = f"request:{rid}"
    async with (
        running(app),
        topic_reader(settings.kafka_bootstrap_servers, topics.DEADLINES) as reader,
    ):
        first = inbound("gardien.request.accepted", {
            "request_id": rid, "right": "access", "status": "received",
            "received_at": "2027-03-05T16:45:00+01:00", "subject_kind": "customer",
            "channel": "web",
        })  # fmt: skip
        await publish(settings, topics.REQUEST_EVENTS, rid, first)
        scheduled_id = f"{first['id']}:{tid}:scheduled"
        sent = await next_event(reader, scheduled_id)
        await wait_for(lambda: relayed(app, tid))  # the outbox is cleared: published, done
        await publish(settings, topics.REQUEST_EVENTS, rid, first)  # intake re-sent it
        again = await next_event(reader, scheduled_id)
        assert as_received(again) == as_received(sent)
        assert CloudEvent.model_validate(again).data["due_date"] == "2027-04-05"


async def relayed(app: Any, timer_id: str) -> bool | None:
    doc = await stored(app, timer_id)
    return True if doc is not None and not doc.get("outbox_pending") else None
