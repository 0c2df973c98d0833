"""Deadlines on the embedded stack: breach, request and retention clocks, driven by a fake clock."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from services.deadlines.app import create_app
from shared import topics
from shared.clock import FakeClock
from shared.messaging import DLQ_REASON
from shared.settings import Settings
from tests.deadlines.helpers import Ticks, inbound, next_event, publish, token
from tests.support import api_key, read_until, running, topic_reader, wait_for

pytestmark = pytest.mark.integration


async def timer(
    client: httpx.AsyncClient, headers: dict[str, str], timer_id: str, **want: Any
) -> dict[str, Any]:
    """The listed timer once it shows every ``want`` field value."""

    async def probe() -> dict[str, Any] | None:
        r = await client.get("/v1/deadlines", params={"limit": 500}, headers=headers)
        assert r.status_code == 200, r.text
        for item in r.json()["items"]:
            if item["timer_id"] == timer_id and all(item.get(k) == v for k, v in want.items()):
                return item
        return None

    return await wait_for(probe)


async def test_breach_fires_due_at_the_72nd_hour_and_late_notice_is_missed(
    settings: Settings,
) -> None:
    clock = FakeClock(datetime(2026, 12, 24, 17, 30, tzinfo=UTC))
    app = create_app(settings, clock=clock, run_scheduler=False)
    scheduler, headers, bid = Ticks(app), api_key(settings, "audit:read"), f"BR-{token()}"
    tid = f"breach:{bid}:authority"
    async with (
        running(app) as client,
        topic_reader(settings.kafka_bootstrap_servers, topics.DEADLINES) as reader,
    ):
        detected = inbound("gdpr.breach.detected", {
            "breach_id": bid, "aware_at": "2026-12-24T18:30:00+01:00", "reported_by": "controller",
            "risk": "high", "categories": ["customer"], "approx_subjects": 3, "approx_records": 9,
        })  # fmt: skip
        await publish(settings, topics.BREACHES, bid, detected)
        item = await timer(client, headers, tid, state="open")
        assert item["due_at"] == "2026-12-27T17:30:00Z" and item["basis"] == "R-BR-1"
        scheduled = await next_event(reader, f"{detected['id']}:{tid}:scheduled")
        assert scheduled["data"]["due_at"] == "2026-12-27T17:30:00Z"
        subjects = await timer(client, headers, f"breach:{bid}:subjects", state="open")
        assert subjects["basis"] == "R-BR-4"

        clock.set(datetime(2026, 12, 26, 17, 30, tzinfo=UTC))  # 24 h before: one warning
        await scheduler.tick()
        warned = await next_event(reader, f"{tid}:approaching:PT24H:2026-12-27T17:30:00Z")
        assert warned["data"]["offset"] == "PT24H"

        clock.set(datetime(2026, 12, 27, 17, 29, 59, 999000, tzinfo=UTC))
        await scheduler.tick()
        assert (await timer(client, headers, tid))["state"] == "approaching"
        clock.set(datetime(2026, 12, 27, 17, 30, tzinfo=UTC))
        await scheduler.tick()
        due = await next_event(reader, f"{tid}:due:2026-12-27T17:30:00Z")
        assert due["type"] == "gardien.deadline.due"
        assert datetime.fromisoformat(due["time"]) == datetime(2026, 12, 27, 17, 30, tzinfo=UTC)
        assert (await timer(client, headers, tid))["state"] == "due"

        clock.advance(timedelta(hours=1))
        await scheduler.tick()
        missed = await next_event(reader, f"{tid}:missed:2026-12-27T17:30:00Z")
        assert missed["data"]["stage"] == "deadline_passed"

        notice = inbound(
            "gdpr.breach.authority_notified", {"breach_id": bid, "at": "2026-12-28T09:00:00+01:00"}
        )
        await publish(settings, topics.BREACHES, bid, notice)
        closed = await next_event(reader, f"{notice['id']}:{tid}:missed")
        assert closed["data"]["late"] is True and closed["data"]["stage"] == "closed"
        assert closed["data"]["reasons_for_delay_required"] is True
        assert closed["data"]["reasons_for_delay_given"] is False
        item = await timer(client, headers, tid, state="missed")
        assert "R-BR-3" in item["rules"]

        # The same notice again changes nothing; the subjects clock closes in time or not.
        await publish(settings, topics.BREACHES, bid, notice)
        told = inbound(
            "gdpr.breach.subjects_notified", {"breach_id": bid, "at": "2026-12-27T12:00:00+01:00"}
        )
        await publish(settings, topics.BREACHES, bid, told)
        await next_event(reader, f"{told['id']}:breach:{bid}:subjects:met")

        r = await client.get("/v1/deadlines", params={"state": "bogus"}, headers=headers)
        assert r.status_code == 422
        r = await client.get(
            "/v1/deadlines", params={"due_before": "2026-01-01T00:00"}, headers=headers
        )
        assert r.status_code == 422
        r = await client.get(
            "/v1/deadlines", params={"kind": "breach_subjects", "state": "met"}, headers=headers
        )
        assert [i["timer_id"] for i in r.json()["items"]] == [f"breach:{bid}:subjects"]
        r = await client.get("/v1/deadlines", headers=api_key(settings, "intake:read"))
        assert r.status_code == 403


async def test_disproportionate_effort_opens_a_public_communication_clock(
    settings: Settings,
) -> None:
    # Issue 10 item 11: under Art 34(3)(c) the subjects clock is the public communication,
    # due like an Art 34(1) communication, and closed by gdpr.breach.subjects_notified.
    clock = FakeClock(datetime(2026, 12, 24, 17, 30, tzinfo=UTC))
    app = create_app(settings, clock=clock, run_scheduler=False)
    headers, bid = api_key(settings, "audit:read"), f"BR-{token()}"
    tid = f"breach:{bid}:subjects"
    async with (
        running(app) as client,
        topic_reader(settings.kafka_bootstrap_servers, topics.DEADLINES) as reader,
    ):
        detected = inbound("gdpr.breach.detected", {
            "breach_id": bid, "aware_at": "2026-12-24T18:30:00+01:00", "reported_by": "controller",
            "risk": "high", "categories": ["customer"], "approx_subjects": 90000,
            "approx_records": 90000, "art34_3_conditions": ["c_disproportionate_effort"],
        })  # fmt: skip
        await publish(settings, topics.BREACHES, bid, detected)
        item = await timer(client, headers, tid, state="open")
        assert item["due_at"] == "2026-12-27T17:30:00Z" and item["basis"] == "R-BR-4"
        assert item["details"]["communication"] == "public_communication"
        assert item["details"]["replaces"] == "communication_to_data_subjects"
        assert item["details"]["timing"] == "without_undue_delay"
        told = inbound(
            "gdpr.breach.subjects_notified", {"breach_id": bid, "at": "2026-12-26T12:00:00+01:00"}
        )
        await publish(settings, topics.BREACHES, bid, told)
        await next_event(reader, f"{told['id']}:{tid}:met")


async def test_request_clock_pause_moves_the_due_date(settings: Settings) -> None:
    clock = FakeClock(datetime(2027, 3, 5, tzinfo=UTC))
    app = create_app(settings, clock=clock, run_scheduler=False)
    headers, rid = api_key(settings, "audit:read"), f"REQ-{token()}"
    tid = f"request:{rid}"
    async with running(app) as client:
        accepted = inbound("gardien.request.accepted", {
            "request_id": rid, "right": "access", "status": "received",
            "received_at": "2027-03-05T16:45:00+01:00", "subject_kind": "customer",
            "channel": "web",
        })  # fmt: skip
        await publish(settings, topics.REQUEST_EVENTS, rid, accepted)
        assert (await timer(client, headers, tid))["due_date"] == "2027-04-05"
        for frm, to, at in [
            ("received", "awaiting_identity", "2027-03-10T10:00:00+01:00"),
            ("awaiting_identity", "in_progress", "2027-03-20T10:00:00+01:00"),
        ]:
            step = inbound("gardien.request.status_changed", {
                "request_id": rid, "from": frm, "to": to, "cause": "x", "at": at,
            })  # fmt: skip
            await publish(settings, topics.REQUEST_EVENTS, rid, step)
            if to == "awaiting_identity":
                item = await timer(client, headers, tid, state="paused")
                assert item["due_at"] is None
        item = await timer(client, headers, tid, state="open", due_date="2027-04-15")
        assert "R-DSR-3" in item["rules"]

        # With intake's clock object the clock follows it as sent.
        rid2 = f"REQ-{token()}"
        clock_obj = {
            "receipt_date": "2027-03-05", "raw_due_date": None, "due_date": None,
            "effective_due_date": None, "paused_days": 0, "paused_since": "2027-03-08",
            "state": "paused", "calendar": "FR-metropole", "basis": "R-DSR-1",
        }  # fmt: skip
        paused = inbound("gardien.request.accepted", {
            "request_id": rid2, "right": "erasure", "status": "awaiting_identity",
            "received_at": "2027-03-05T16:45:00+01:00", "subject_kind": "customer",
            "channel": "web", "clock": clock_obj,
        })  # fmt: skip
        await publish(settings, topics.REQUEST_EVENTS, rid2, paused)
        await timer(client, headers, f"request:{rid2}", state="paused")
        resumed = inbound("gardien.request.status_changed", {
            "request_id": rid2, "from": "awaiting_identity", "to": "in_progress", "cause": "x",
            "at": "2027-03-12T10:00:00+01:00",
            "clock": {**clock_obj, "state": "running", "paused_since": None, "paused_days": 4,
                      "raw_due_date": "2027-04-09", "due_date": "2027-04-09",
                      "effective_due_date": "2027-04-09"},
        })  # fmt: skip
        await publish(settings, topics.REQUEST_EVENTS, rid2, resumed)
        await timer(client, headers, f"request:{rid2}", state="open", due_date="2027-04-09")


async def test_retention_expiry_requests_purge_unless_a_hold_is_active(settings: Settings) -> None:
    # Contracts ended 2026-06-30: kept through 2031-06-30, purge due 2031-07-01 (Paris).
    clock = FakeClock(datetime(2031, 7, 1, 12, tzinfo=UTC))
    app = create_app(settings, clock=clock, run_scheduler=False)
    scheduler, headers, t = Ticks(app), api_key(settings, "audit:read"), token()
    free, held = f"CTR-{t}-A", f"CTR-{t}-B"
    subject = {"kind": "customer", "identifiers": {"email": f"held-{t}@example.org"}}
    hold_data = {"hold_id": f"H-{t}", "matter": f"dispute-{t}",
                 "scope": {"subjects": [subject], "categories": ["customer"]},
                 "at": "2030-01-15T09:00:00+01:00"}  # fmt: skip
    async with (
        running(app) as client,
        topic_reader(
            settings.kafka_bootstrap_servers, topics.ERASURE_WORK, topics.dlq(topics.LEGAL_HOLDS)
        ) as reader,
    ):
        placed = inbound("gdpr.legal_hold.placed", hold_data)
        await publish(settings, topics.LEGAL_HOLDS, hold_data["matter"], placed)
        for cid, subj in (
            (free, {"kind": "customer", "identifiers": {"customer_id": f"C-{t}"}}),
            (held, subject),
        ):
            ended = inbound("gdpr.contract.ended", {
                "contract_id": cid, "subject": subj, "ended_at": "2026-06-30T18:00:00+02:00",
                "categories": ["customer"],
            })  # fmt: skip
            await publish(settings, topics.CONTRACTS, cid, ended)
        await timer(client, headers, f"retention:{free}:customer", state="open")
        item = await timer(client, headers, f"retention:{held}:customer", state="blocked")
        assert item["due_at"] is None and "R-RET-4" in item["rules"]

        await scheduler.tick()
        work = await next_event(reader, f"retention:{free}:customer:purge:2031-06-30T22:00:00Z")
        assert work["data"]["case_id"] == f"ret:retention:{free}:customer"
        assert work["data"]["origin"] == "retention"
        assert work["data"]["categories"][0]["action"] == "erase"
        await timer(client, headers, f"retention:{free}:customer", state="done")

        released = inbound(
            "gdpr.legal_hold.released", {**hold_data, "at": "2031-08-01T09:00:00+02:00"}
        )
        await publish(settings, topics.LEGAL_HOLDS, hold_data["matter"], released)
        item = await timer(client, headers, f"retention:{held}:customer", state="open")
        assert item["details"]["effective_retain_until"] == "2031-08-01"
        assert await scheduler.tick() == 0
        clock.set(datetime(2031, 8, 1, 22, tzinfo=UTC))  # 2031-08-02 00:00 Paris
        await scheduler.tick()
        work = await next_event(reader, f"retention:{held}:customer:purge:2031-08-01T22:00:00Z")
        assert work["data"]["subject"] == subject

        unknown = inbound("gdpr.legal_hold.released", {**hold_data, "hold_id": f"NOPE-{t}"})
        await publish(settings, topics.LEGAL_HOLDS, "x", unknown)
        dead = await read_until(
            reader,
            lambda r: r.topic.endswith(".dlq") and unknown["id"].encode() in (r.value or b""),
        )
        assert "unknown legal hold" in dict(dead.headers)[DLQ_REASON].decode()
