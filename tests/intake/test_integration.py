"""Intake on the embedded stack: lifecycle, clock, refusals, decisions and erasure work."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, date, datetime
from typing import Any

import httpx
import pytest
from aiokafka import AIOKafkaConsumer

from services.erasure import planning
from services.erasure.registry import Registry
from services.erasure.settings import ErasureSettings
from services.intake.app import create_app
from shared import rules, topics
from shared.messaging import DLQ_REASON
from shared.settings import Settings
from tests.support import (
    api_key,
    event_bytes,
    example,
    produce,
    read_until,
    running,
    structured_event,
    topic_reader,
    wait_for,
)

pytestmark = pytest.mark.integration


def rid(name: str) -> str:
    return f"{name}-{uuid.uuid4().hex[:8]}"


def step(name: str, request_id: str, at: str, **data: Any) -> dict[str, Any]:
    event = example(name, request_id=request_id, at=at, **data)
    event["time"] = at
    return event


async def send(settings: Settings, *events: dict[str, Any], topic: str = topics.REQUESTS) -> None:
    items = [(str(e["data"].get("request_id", e["id"])).encode(), event_bytes(e)) for e in events]
    await produce(settings.kafka_bootstrap_servers, topic, items)


async def events_of(
    reader: AIOKafkaConsumer, request_id: str, event_type: str, count: int
) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []

    def match(record: Any) -> bool:
        event = structured_event(record.value)  # other tests publish other shapes here too
        if event is None:
            return False
        data = event.get("data") or {}
        if event["type"] == event_type and data.get("request_id") == request_id:
            found.append(event)
        return len(found) >= count

    await read_until(reader, match)
    return found


async def get(client: httpx.AsyncClient, headers: dict[str, str], request_id: str) -> Any:
    r = await client.get(f"/v1/requests/{request_id}", headers=headers)
    return r.json() if r.status_code == 200 else None


async def until_status(
    client: httpx.AsyncClient, headers: dict[str, str], request_id: str, status: str
) -> dict[str, Any]:
    async def probe() -> dict[str, Any] | None:
        doc = await get(client, headers, request_id)
        return doc if doc and doc["status"] == status else None

    return await wait_for(probe)


async def test_request_lifecycle_pause_extension_and_refusals(settings: Settings) -> None:
    headers = api_key(settings)
    a, late, ghost = rid("REQ-LIFE"), rid("REQ-LATE"), rid("REQ-GHOST")
    bootstrap = settings.kafka_bootstrap_servers
    async with (
        running(create_app(settings)) as intake,
        topic_reader(bootstrap, topics.REQUEST_EVENTS) as out,
        topic_reader(bootstrap, topics.dlq(topics.REQUESTS)) as dlq,
    ):
        await send(
            settings,
            example("request-received.json", request_id=a),
            step("request-info-requested.json", a, "2027-03-08T09:00:00+01:00"),
        )
        paused = (await events_of(out, a, "gardien.request.status_changed", 1))[0]["data"]
        assert (paused["from"], paused["to"]) == ("received", "awaiting_identity")
        assert paused["clock"]["state"] == "paused" and paused["clock"]["due_date"] is None
        assert paused["clock"]["paused_since"] == "2027-03-08"

        await send(
            settings,
            step("request-info-received.json", a, "2027-03-18T10:00:00+01:00"),
            step("request-identity-verified.json", a, "2027-03-18T11:00:00+01:00"),
            step("request-extended.json", a, "2027-04-12T09:00:00+02:00"),  # after 5 Apr
            step("request-responded.json", a, "2027-04-20T15:00:00+02:00"),
        )
        closed = await until_status(intake, headers, a, "closed")
        statuses = [h["status"] for h in closed["history"]]
        assert statuses == [
            "received",
            "awaiting_identity",
            "received",
            "in_progress",
            "extended",
            "responded",
            "closed",
        ]
        # R-DSR-3: 10 paused days move 5 Apr to 15 Apr; the extension counts them too.
        assert closed["receipt_date"] == "2027-03-05"
        assert closed["due_date"] == "2027-04-15"
        extended = rules.roll_forward(date(2027, 6, 5) + (date(2027, 3, 18) - date(2027, 3, 8)))
        assert closed["extended_due_date"] == closed["effective_due_date"] == extended.isoformat()
        # Issue 10 item 9: notified past the unpaused end, within the paused one: valid.
        assert closed["base_due_date"] == "2027-04-15" and closed["extension_valid"] is True
        assert closed["clock"]["extension_notified_on"] == "2027-04-12"
        assert closed["pauses"] == [
            {
                "requested_on": "2027-03-08",
                "received_on": "2027-03-18",
                "reason": "identity_verification",
            }
        ]
        assert closed["extension"]["reasons"] == ["complex request spanning seven systems"]
        assert closed["clock"]["state"] == "stopped" and closed["clock"]["on_time"] is True
        changes = await events_of(out, a, "gardien.request.status_changed", 5)  # after the pause
        assert [c["data"]["to"] for c in changes] == statuses[2:]
        assert changes[0]["data"]["clock"]["due_date"] == "2027-04-15"
        assert changes[2]["data"]["reasons"] == ["complex request spanning seven systems"]

        # An extension after the one-month limit is refused and audited, not applied.
        await send(
            settings,
            example("request-received.json", request_id=late),
            step("request-extended.json", late, "2027-04-06T09:00:00+02:00"),
            step("request-identity-verified.json", ghost, "2027-03-18T11:00:00+01:00"),
        )
        refusal = (await events_of(out, late, "gardien.request.transition_refused", 1))[0]
        assert "after the one-month limit 2027-04-05" in refusal["data"]["reason"]
        assert refusal["data"]["cause"] == "gdpr.request.extended"
        doc = await get(intake, headers, late)
        assert doc["status"] == "received" and doc["extended_due_date"] is None
        assert doc["refusals"][0]["cause"] == "gdpr.request.extended"
        # A follow-up for an unknown request is dead-lettered with its reason.
        dead = await read_until(dlq, lambda r: ghost.encode() in (r.value or b""))
        assert f"unknown request {ghost}" in dict(dead.headers)[DLQ_REASON].decode()


async def test_decisions_erasure_work_progress_and_frequency(settings: Settings) -> None:
    headers = api_key(settings)
    bootstrap = settings.kafka_bootstrap_servers
    erase = rid("REQ-ERASE")
    email = f"{uuid.uuid4().hex[:8]}@example.org"
    accesses = [rid("REQ-ACC") for _ in range(5)]
    days = ["2026-04-01", "2026-06-01", "2026-09-01", "2026-12-01", "2027-03-15"]
    async with (
        running(create_app(settings)) as intake,
        topic_reader(bootstrap, topics.REQUEST_EVENTS) as out,
        topic_reader(bootstrap, topics.ERASURE_WORK) as work,
    ):
        await send(settings, example("request-erasure-received.json", request_id=erase))
        decided = (await events_of(out, erase, "gardien.request.decided", 1))[0]["data"]
        assert {d["category"]: d["action"] for d in decided["decisions"]} == {
            "profile": "erase",
            "marketing": "erase",
            "customer": "retain_restricted",
            "accounting": "retain_restricted",
        }
        item = await read_until(
            work, lambda r: json.loads(r.value)["data"].get("request_id") == erase
        )
        assert item.key == f"req:{erase}".encode()
        data = json.loads(item.value)["data"]
        assert data["case_id"] == f"req:{erase}" and data["due_by"] == "2027-04-05"
        assert data["subject"]["identifiers"]["customer_id"] == "C-1042"
        assert {c["category"]: c["action"] for c in data["categories"]} == {
            "profile": "erase",
            "marketing": "erase",
            "customer": "restrict",
            "accounting": "restrict",
        }
        retained = {c["category"]: c.get("retain_until") for c in data["categories"]}
        assert retained["customer"] == "2031-06-30" and retained["accounting"] == "2036-12-31"

        # The erasure service reports; the answered request closes when its case closes.
        case = {
            "specversion": "1.0",
            "id": f"case-{erase}",
            "source": "gardien/erasure",
            "type": "gardien.erasure.case.closed",
            "time": "2027-03-20T10:00:00+01:00",
            "data": {
                "case_id": f"req:{erase}",
                "origin": "request",
                "request_id": erase,
                "state": "closed",
                "systems": {"crm": {"state": "acknowledged", "outcome": "erased", "attempts": 1}},
                "closed_at": "2027-03-20T10:00:00+01:00",
            },
        }
        await send(settings, step("request-responded.json", erase, "2027-03-19T10:00:00+01:00"))
        await until_status(intake, headers, erase, "responded")
        await produce(
            bootstrap, topics.ERASURE_CASES, [(f"req:{erase}".encode(), event_bytes(case))]
        )
        doc = await until_status(intake, headers, erase, "closed")
        assert doc["progress"]["req"]["systems"] == [
            {"system": "crm", "state": "acknowledged", "outcome": "erased", "attempts": 1}
        ]

        # Five access requests by one subject in 12 months: the fifth is flagged.
        received = [
            example(
                "request-received.json",
                request_id=r,
                received_at=f"{day}T10:00:00+01:00",
                subject={"kind": "customer", "identifiers": {"email": email}},
            )
            for r, day in zip(accesses, days, strict=True)
        ]
        await send(settings, *received[:4])
        for r in accesses[:4]:
            await until_status(intake, headers, r, "received")
        await send(settings, received[4])

        async def fifth() -> Any:
            return await get(intake, headers, accesses[-1])

        flagged = await wait_for(fifth)
        assert flagged["flags"] == ["art12_5_review"]
        assert flagged["frequency"]["count_in_window"] == 5
        assert flagged["status"] == "received"
        assert (await get(intake, headers, accesses[3]))["flags"] == []

        # The HTTP face: precise 422s, 409 for an existing id, list and CSV export.
        body = example("request-received.json", request_id=rid("REQ-HTTP"))["data"]
        bad = await intake.post(
            "/v1/requests", json={**body, "details": {"contract_end_date": "x"}}, headers=headers
        )
        assert bad.status_code == 422 and "details.contract_end_date" in bad.text
        missing = await intake.post("/v1/requests", json={**body, "right": "nope"}, headers=headers)
        assert missing.status_code == 422 and "right" in missing.text
        dup = await intake.post("/v1/requests", json={**body, "request_id": erase}, headers=headers)
        assert dup.status_code == 409
        ok = await intake.post("/v1/requests", json=body, headers=headers)
        assert ok.status_code == 202
        await until_status(intake, headers, body["request_id"], "received")
        page = (
            await intake.get("/v1/requests", params={"status": "closed"}, headers=headers)
        ).json()
        assert [i["request_id"] for i in page["items"]] == [erase]
        first = (await intake.get("/v1/requests", params={"limit": 2}, headers=headers)).json()
        rest = (
            await intake.get(
                "/v1/requests", params={"cursor": first["next_cursor"]}, headers=headers
            )
        ).json()
        assert len(first["items"]) + len(rest["items"]) == 7
        csv = await intake.get("/v1/requests/export.csv", headers=headers)
        assert csv.text.startswith("request_id,right,status") and "art12_5_review" in csv.text
        assert email not in csv.text


async def test_post_mortem_directive_ordering_erasure_becomes_erasure_work(
    settings: Settings,
) -> None:
    # Issue 10 item 10: the directive's erasure reaches the erasure service as a request
    # case, invoices restricted until their own end (C. com. L123-22), and plans like one.
    pm = rid("REQ-PM")
    details = {
        "requester_role": "designated_person",
        "requester_id": "executor_x",
        "directives": {
            "type": "particular",
            "specific_consent": True,
            "registered_with_controller": True,
            "content": ["erase_all_data"],
            "designated_person": "executor_x",
        },
        "requested_actions": ["erase_all_data"],
        "date_of_death": "2027-02-10",
        "categories": [
            "profile",
            {
                "category": "invoices",
                "lawful_basis": "legal_obligation",
                "financial_year_end": "2026-12-31",
            },
        ],
    }
    bootstrap = settings.kafka_bootstrap_servers
    async with (
        running(create_app(settings)),
        topic_reader(bootstrap, topics.REQUEST_EVENTS) as out,
        topic_reader(bootstrap, topics.ERASURE_WORK) as work,
    ):
        await send(
            settings, example("request-postmortem-received.json", request_id=pm, details=details)
        )
        decided = (await events_of(out, pm, "gardien.request.decided", 1))[0]["data"]
        assert [(d["category"], d["action"]) for d in decided["decisions"]] == [
            ("profile", "erase"),
            ("invoices", "retain_restricted"),
        ]
        assert decided["post_mortem"]["erasure_ordered"] is True
        item = await read_until(work, lambda r: json.loads(r.value)["data"].get("request_id") == pm)
        data = json.loads(item.value)["data"]
    assert data["case_id"] == f"req:{pm}" and data["origin"] == "request"
    assert data["due_by"] == "2027-04-30"
    assert [(c["category"], c["action"], c.get("retain_until")) for c in data["categories"]] == [
        ("profile", "erase", None),
        ("invoices", "restrict", "2036-12-31"),
    ]
    registry = Registry.model_validate(
        {
            "systems": [
                {"id": "crm", "categories": {"profile": {}}, "identifiers": ["customer_id"]},
                {"id": "billing", "categories": {"invoices": {}}, "identifiers": ["customer_id"]},
            ]
        }
    )
    case = planning.plan_case(
        planning.WorkRequested.model_validate(data),
        registry,
        ErasureSettings(),
        datetime(2027, 3, 31, 12, tzinfo=UTC),
    )
    (erased,) = case.systems["crm"].lines
    (kept,) = case.systems["billing"].lines
    assert (erased.action, erased.kind) == ("erase", "erasure")
    assert (kept.action, kept.kind, kept.retain_until) == ("restrict", "retention", "2036-12-31")
