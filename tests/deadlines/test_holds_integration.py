"""Legal holds against retention purges on the embedded stack (R-RET-4, issue 10)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from services.deadlines import retention
from services.deadlines.app import create_app
from shared import topics
from shared.clock import FakeClock
from shared.settings import Settings
from tests.deadlines.helpers import Ticks, inbound, next_event, publish, stored, token
from tests.deadlines.test_integration import timer
from tests.support import api_key, running, topic_reader, wait_for

pytestmark = pytest.mark.integration


def parts(t: str) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
    """A subject, a hold on its customer data placed 2027-03-01, its contract's end (2019)."""
    subject = {"kind": "customer", "identifiers": {"email": f"late-{t}@example.org"}}
    hold = {"hold_id": f"H-{t}", "matter": f"dispute-{t}",
            "scope": {"subjects": [subject], "categories": ["customer"]},
            "at": "2027-03-01T09:00:00+01:00"}  # fmt: skip
    ended = {"contract_id": f"CTR-{t}", "subject": subject,
             "ended_at": "2019-06-30T18:00:00+02:00", "categories": ["customer"]}  # fmt: skip
    return subject, hold, ended


async def test_a_hold_opened_after_the_purge_date_blocks_a_purge_not_yet_fired(
    settings: Settings,
) -> None:
    # Retention ran out on 2024-06-30; the hold (2027) comes before the contract-end event.
    clock = FakeClock(datetime(2027, 3, 2, 12, tzinfo=UTC))
    app = create_app(settings, clock=clock, run_scheduler=False)
    scheduler, headers, t = Ticks(app), api_key(settings, "audit:read"), token()
    subject, hold, ended = parts(t)
    tid = f"retention:CTR-{t}:customer"
    async with (
        running(app) as client,
        topic_reader(settings.kafka_bootstrap_servers, topics.ERASURE_WORK) as reader,
    ):
        await publish(settings, topics.LEGAL_HOLDS, t, inbound("gdpr.legal_hold.placed", hold))
        placed = await wait_hold(app, f"H-{t}")
        assert placed["active"]
        await publish(settings, topics.CONTRACTS, t, inbound("gdpr.contract.ended", ended))
        item = await timer(client, headers, tid, state="blocked")
        assert item["due_at"] is None and item["details"]["late_holds"] == []
        # Ticks may fire other tests' timers (the shared broker replays their events here):
        # what matters is that this one stays blocked.
        await scheduler.tick()
        await timer(client, headers, tid, state="blocked")

        release = inbound("gdpr.legal_hold.released", {**hold, "at": "2027-09-30T10:00:00+02:00"})
        await publish(settings, topics.LEGAL_HOLDS, t, release)
        item = await timer(client, headers, tid, state="open")
        assert item["details"]["effective_retain_until"] == "2027-09-30"
        await scheduler.tick()
        await timer(client, headers, tid, state="open")
        clock.set(datetime(2027, 9, 30, 22, tzinfo=UTC))  # 2027-10-01 00:00 Paris
        assert await scheduler.tick() >= 1
        work = await next_event(reader, f"{tid}:purge:2027-09-30T22:00:00Z")
        assert work["data"]["subject"] == subject


async def test_a_hold_recorded_between_scheduling_and_firing_wins_at_fire_time(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    clock = FakeClock(datetime(2027, 3, 2, 12, tzinfo=UTC))
    app = create_app(settings, clock=clock, run_scheduler=False)
    scheduler, headers, t = Ticks(app), api_key(settings, "audit:read"), token()
    _, hold, ended = parts(t)
    tid = f"retention:CTR-{t}:customer"
    async with running(app) as client:
        await publish(settings, topics.CONTRACTS, t, inbound("gdpr.contract.ended", ended))
        await timer(client, headers, tid, state="open", due_date="2024-07-01")

        # The hold is recorded, but not yet applied to the timer when the scheduler ticks
        # (the moment between hold_placed's two writes).
        async def not_yet(*_: Any) -> list[Any]:
            return []

        monkeypatch.setattr(retention, "rehold", not_yet)
        await publish(settings, topics.LEGAL_HOLDS, t, inbound("gdpr.legal_hold.placed", hold))
        await wait_hold(app, f"H-{t}")
        await scheduler.tick()  # this timer does not fire (others' may)
        item = await timer(client, headers, tid, state="blocked")
        assert item["due_at"] is None and "R-RET-4" in item["rules"]
        doc = await stored(app, tid)
        assert doc is not None
        assert doc["outbox"] == [] and doc["lease_token"] is None
        assert [h["key"] for h in doc["inputs"]["holds"]] == [f"H-{t}"]


async def wait_hold(app: Any, key: str) -> dict[str, Any]:
    """The stored hold once the deadlines service has recorded it."""

    async def probe() -> dict[str, Any] | None:
        found: dict[str, Any] | None = (await app.state.repositories.holds.get_many([key])).get(key)
        return found

    return await wait_for(probe)
