"""Erasure on the embedded stack, with the reference systems running as separate processes."""

from __future__ import annotations

import asyncio
import json
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from examples.connected_systems.records import seed
from services.erasure.app import create_app
from services.erasure.registry import Registry
from services.erasure.settings import ErasureSettings
from shared import topics
from shared.clock import FakeClock
from shared.messaging import DLQ_REASON
from shared.mongo import create_client
from shared.settings import Settings
from tests.erasure.conftest import RefSystems
from tests.support import (
    api_key,
    event_bytes,
    produce,
    read_until,
    running,
    topic_reader,
    wait_for,
)

pytestmark = pytest.mark.integration

SETTINGS = ErasureSettings(
    retry_initial_seconds=30, retry_max_seconds=300, ack_timeout_seconds=3600
)


def registry(ref: RefSystems) -> Registry:
    kafka = {"kind": "kafka"}
    return Registry.model_validate(
        {
            "category_aliases": {
                "customer": ["profile", "marketing", "payment", "behaviour"],
                "accounting": ["invoices"],
            },
            "systems": [
                {
                    "id": "crm",
                    "categories": {"profile": {}},
                    "identifiers": ["email", "customer_id"],
                    "transport": kafka,
                },
                {
                    "id": "newsletter",
                    "categories": {"marketing": {}},
                    "identifiers": ["email"],
                    "transport": {
                        "kind": "http",
                        "url": f"http://127.0.0.1:{ref.http_port}/gardien/erasure",
                    },
                    "processor": True,
                    "recipient": True,
                },
                {
                    "id": "billing",
                    "identifiers": ["customer_id", "email"],
                    "transport": kafka,
                    "categories": {
                        "invoices": {
                            "action": "restrict",
                            "retention": {
                                "years": 10,
                                "ground": "Art 17(3)(b) legal obligation (C. com. L123-22)",
                            },
                        },
                        "payment": {"action": "anonymise"},
                    },
                },
                {
                    "id": "vendor",
                    "categories": {"behaviour": {}},
                    "identifiers": ["email"],
                    "transport": kafka,
                    "processor": True,
                    "recipient": True,
                },
                {
                    "id": "ghost",
                    "categories": {"tracking": {}},
                    "identifiers": ["email"],
                    "transport": kafka,
                    "ack_timeout_seconds": 10,
                    "retry": {"initial_seconds": 2, "max_seconds": 8},
                },
                {
                    "id": "mailer-old",
                    "categories": {"ads": {}},
                    "identifiers": ["email"],
                    "transport": kafka,
                    "processor": True,
                },
            ],
        }
    )


def subject() -> tuple[str, str]:
    uid = uuid.uuid4().hex[:8]
    return f"alice.{uid}@example.org", f"C-{uid}"


def cloud_event(event_type: str, data: dict[str, Any]) -> dict[str, Any]:
    return {
        "specversion": "1.0",
        "id": f"test-{uuid.uuid4().hex}",
        "source": "tests",
        "type": event_type,
        "time": datetime.now(UTC).isoformat(),
        "data": data,
    }


async def publish_work(
    settings: Settings, email: str, cid: str, *categories: tuple[str, str]
) -> str:
    case_id = f"req:REQ-{uuid.uuid4().hex[:8]}"
    event = cloud_event(
        "gardien.erasure.work.requested",
        {
            "case_id": case_id,
            "origin": "request",
            "request_id": case_id[4:],
            "subject": {"kind": "customer", "identifiers": {"email": email, "customer_id": cid}},
            "categories": [
                {"category": c, "action": a, "ground": "Art 17(1)(b)"} for c, a in categories
            ],
            "due_by": "2027-04-05",
        },
    )
    await produce(
        settings.kafka_bootstrap_servers,
        topics.ERASURE_WORK,
        [(case_id.encode(), event_bytes(event))],
    )
    return case_id


async def seed_all(
    settings: Settings, ref: RefSystems, email: str, cid: str, *systems: str
) -> None:
    client = create_client(settings)
    try:
        for name in systems:
            await seed(client[ref.db_name(name)], name, email, cid)
    finally:
        await client.close()


class Cases:
    """Reads cases through the HTTP API."""

    def __init__(self, http: Any, settings: Settings) -> None:
        self.http, self.headers = http, api_key(settings, "audit:read")

    async def get(self, case_id: str) -> dict[str, Any] | None:
        r = await self.http.get(f"/v1/erasure/cases/{case_id}", headers=self.headers)
        return r.json() if r.status_code == 200 else None

    async def until(self, case_id: str, check: Any, timeout: float = 20.0) -> dict[str, Any]:
        async def probe() -> dict[str, Any] | None:
            case = await self.get(case_id)
            return case if case is not None and check(case) else None

        return await wait_for(probe, timeout=timeout)


def acked(*names: str) -> Any:
    return lambda c: all(c["systems"][n]["state"] == "acknowledged" for n in names)


async def test_erasure_clears_crm_and_newsletter_retains_invoices_and_waits_for_vendor(
    settings: Settings, refsys: RefSystems
) -> None:
    email, cid = subject()
    await seed_all(settings, refsys, email, cid, "crm", "newsletter", "billing", "vendor")
    app = create_app(
        settings, erasure_settings=SETTINGS, registry=registry(refsys), tick_seconds=0.1
    )
    async with (
        running(app) as http,
        topic_reader(settings.kafka_bootstrap_servers, topics.ERASURE_CASES) as case_events,
    ):
        cases = Cases(http, settings)
        case_id = await publish_work(
            settings, email, cid, ("customer", "erase"), ("accounting", "erase")
        )
        early = await cases.until(case_id, acked("crm", "newsletter", "billing"))
        assert early["state"] == "open"  # the slow vendor keeps it open
        assert early["systems"]["vendor"]["state"] == "sent"
        case = await cases.until(case_id, lambda c: c["state"] == "closed")
        systems = case["systems"]
        assert systems["crm"]["outcome"] == "erased"
        assert systems["newsletter"]["outcome"] == "erased"
        assert systems["newsletter"]["transport"] == "http"
        assert systems["billing"]["outcome"] == "retained"
        assert systems["billing"]["retained_until"] == "2036-12-31"
        assert systems["vendor"]["outcome"] == "erased"
        assert all(s["attempts"] == 1 for s in systems.values())
        assert case["art19"]["triggered"] and sorted(case["art19"]["notified"]) == [
            "newsletter",
            "vendor",
        ]
        closed = await read_until(
            case_events, lambda r: json.loads(r.value)["id"] == f"{case_id}:closed"
        )
        assert json.loads(closed.value)["data"]["art19"]["notified"]

    client = create_client(settings)
    try:
        crm, news = client[refsys.db_name("crm")], client[refsys.db_name("newsletter")]
        billing, vendor = client[refsys.db_name("billing")], client[refsys.db_name("vendor")]
        assert await crm["customers"].find_one({"email": email}) is None
        assert await crm["notes"].find_one({"customer_id": cid}) is None
        assert await news["subscribers"].find_one({"email": email}) is None
        assert await vendor["profiles"].find_one({"email": email}) is None
        assert await billing["invoices"].find_one({"customer_id": cid}) is None
        kept = [d async for d in billing["invoices_restricted"].find({"customer_id": cid})]
        assert sorted(d["retain_until"] for d in kept) == ["2035-12-31", "2036-12-31"]
        assert {d["access"] for d in kept} == {"legal_and_audit_only"}
        account = await billing["accounts"].find_one(
            {"iban_last4": "anonymised", "name": "anonymised"}
        )
        assert account is not None
    finally:
        await client.close()


async def test_silent_system_is_retried_then_escalated_and_the_case_stays_open(
    settings: Settings, refsys: RefSystems
) -> None:
    email, cid = subject()
    clock = FakeClock(datetime.now(UTC))
    app = create_app(
        settings,
        erasure_settings=SETTINGS,
        registry=registry(refsys),
        clock=clock,
        tick_seconds=0.05,
    )
    async with (
        running(app) as http,
        topic_reader(settings.kafka_bootstrap_servers, topics.ERASURE_CASES) as case_events,
    ):
        cases = Cases(http, settings)
        case_id = await publish_work(settings, email, cid, ("tracking", "erase"))
        await cases.until(case_id, lambda c: c["systems"]["ghost"]["attempts"] == 1)
        for step, attempts in ((2, 2), (4, 3)):  # backoff 2 s, then 4 s
            clock.advance(timedelta(seconds=step))
            await cases.until(case_id, lambda c, n=attempts: c["systems"]["ghost"]["attempts"] == n)
        clock.advance(timedelta(seconds=4))  # 10 s after the first send: the timeout
        case = await cases.until(case_id, lambda c: c["state"] == "escalated")
        assert case["systems"]["ghost"]["escalated_at"] is not None
        escalated = await read_until(
            case_events,
            lambda r: (
                json.loads(r.value)["type"] == "gardien.erasure.case.escalated"
                and json.loads(r.value)["data"].get("case_id") == case_id
            ),
        )
        assert json.loads(escalated.value)["data"]["system"] == "ghost"
        clock.advance(timedelta(days=1))
        await asyncio.sleep(0.5)
        later = await cases.get(case_id)
        assert later is not None and later["state"] == "escalated"  # never closed on a guess
        assert later["systems"]["ghost"]["attempts"] == 3

    client = create_client(settings)
    try:
        received = client[refsys.db_name("ghost")]["received"]
        seen = [d["attempt"] async for d in received.find({"command_id": f"{case_id}:ghost"})]
        assert sorted(seen) == [1, 2, 3]
    finally:
        await client.close()


async def test_duplicate_acknowledgement_changes_nothing_and_unknown_is_dead_lettered(
    settings: Settings, refsys: RefSystems
) -> None:
    email, cid = subject()
    await seed_all(settings, refsys, email, cid, "crm")
    app = create_app(
        settings, erasure_settings=SETTINGS, registry=registry(refsys), tick_seconds=0.1
    )
    async with (
        running(app) as http,
        topic_reader(settings.kafka_bootstrap_servers, topics.dlq(topics.ERASURE_RESULTS)) as dlq,
    ):
        cases = Cases(http, settings)
        case_id = await publish_work(settings, email, cid, ("profile", "erase"))
        before = await cases.until(case_id, lambda c: c["state"] == "closed")
        command_id = f"{case_id}:crm"
        again = cloud_event(
            "gdpr.erasure.result",
            {"command_id": command_id, "system": "crm", "outcome": "not_found"},
        )
        unknown = cloud_event(
            "gdpr.erasure.result",
            {"command_id": "req:NOPE:crm", "system": "crm", "outcome": "erased"},
        )
        key = command_id.encode()  # one partition: the unknown result comes last
        await produce(
            settings.kafka_bootstrap_servers,
            topics.ERASURE_RESULTS,
            [(key, event_bytes(again)), (key, event_bytes(again)), (key, event_bytes(unknown))],
        )
        dead = await read_until(dlq, lambda r: r.value == event_bytes(unknown))
        assert "unknown command" in dict(dead.headers)[DLQ_REASON].decode()
        assert await cases.get(case_id) == before


async def test_restart_mid_case_loses_nothing_and_sends_no_command_twice(
    settings: Settings, refsys: RefSystems
) -> None:
    email, cid = subject()
    await seed_all(settings, refsys, email, cid, "crm", "billing", "vendor")
    case_id = ""
    async with running(
        create_app(settings, erasure_settings=SETTINGS, registry=registry(refsys), tick_seconds=0.1)
    ) as http:
        case_id = await publish_work(
            settings,
            email,
            cid,
            ("profile", "erase"),
            ("invoices", "erase"),
            ("behaviour", "erase"),
        )
        mid = await Cases(http, settings).until(case_id, acked("crm", "billing"))
        assert mid["systems"]["vendor"]["state"] == "sent"
    await asyncio.sleep(2.5)  # the vendor answers while erasure is down
    async with running(
        create_app(settings, erasure_settings=SETTINGS, registry=registry(refsys), tick_seconds=0.1)
    ) as http:
        case = await Cases(http, settings).until(case_id, lambda c: c["state"] == "closed")
        assert {n: s["attempts"] for n, s in case["systems"].items()} == {
            "crm": 1,
            "billing": 1,
            "vendor": 1,
        }
    async with topic_reader(settings.kafka_bootstrap_servers, topics.ERASURE_COMMANDS) as rd:
        sent: list[str] = []
        while batch := await rd.getmany(timeout_ms=500):
            sent += [
                json.loads(r.value)["id"]
                for rs in batch.values()
                for r in rs
                if json.loads(r.value)["data"].get("case_id") == case_id
            ]
    assert sorted(sent) == sorted(f"{case_id}:{n}:1" for n in ("crm", "billing", "vendor"))
    client = create_client(settings)
    try:
        received = client[refsys.db_name("crm")]["received"]
        assert len([d async for d in received.find({"command_id": f"{case_id}:crm"})]) == 1
    finally:
        await client.close()


def _order_for(value: bytes, system: str) -> bool:
    data = json.loads(value)["data"]
    return bool(data.get("system") == system and data.get("action") == "delete_all")


async def test_processor_replacement_orders_deletion_routes_and_closes_on_certificate(
    settings: Settings, refsys: RefSystems
) -> None:
    now = datetime.now(UTC)
    replaced = cloud_event(
        "gdpr.processor.replaced",
        {
            "old_processor": "mailer-old",
            "new_processor": "mailer-new",
            "effective_at": now.isoformat(),
            "controller_choice": "delete",
            "contractual_days": 30,
            "categories": ["ads"],
        },
    )
    app = create_app(
        settings, erasure_settings=SETTINGS, registry=registry(refsys), tick_seconds=0.1
    )
    async with (
        running(app) as http,
        topic_reader(settings.kafka_bootstrap_servers, topics.ERASURE_COMMANDS) as commands,
    ):
        cases = Cases(http, settings)
        await produce(
            settings.kafka_bootstrap_servers,
            topics.PROCESSORS,
            [(b"mailer-old", event_bytes(replaced))],
        )
        # The reader starts at the topic's beginning: earlier tests' access cases left
        # export commands for mailer-old there; this test's order is the delete_all.
        order = await read_until(commands, lambda r: _order_for(r.value, "mailer-old"))
        data = json.loads(order.value)["data"]
        assert data["action"] == "delete_all" and data["categories"][0]["category"] == "ads"
        case_id = data["case_id"]
        case = await cases.until(case_id, lambda c: c["processor"]["status"] == "pending")
        assert (
            case["processor"]["due_date"]
            == (now + timedelta(days=30))
            .astimezone(__import__("zoneinfo").ZoneInfo("Europe/Paris"))
            .date()
            .isoformat()
        )

        email, cid = subject()
        routed = await publish_work(settings, email, cid, ("ads", "erase"))
        assert list((await cases.until(routed, lambda c: True))["systems"]) == ["mailer-new"]

        certified = cloud_event(
            "gdpr.processor.deletion_certified",
            {"processor": "mailer-old", "at": now.isoformat(), "certificate_ref": "CERT-1"},
        )
        await produce(
            settings.kafka_bootstrap_servers,
            topics.PROCESSORS,
            [(b"mailer-old", event_bytes(certified))],
        )
        closed = await cases.until(case_id, lambda c: c["state"] == "closed")
        assert closed["processor"]["status"] == "closed"
        assert closed["processor"]["certificate_ref"] == "CERT-1"
