"""Legal holds as erasure's last gate, on the embedded stack with the reference systems."""

from __future__ import annotations

import json
import uuid
from typing import Any

import pytest

from services.erasure.app import create_app
from shared import topics
from shared.mongo import create_client
from shared.settings import Settings
from tests.erasure.conftest import RefSystems
from tests.erasure.test_flow import (
    SETTINGS,
    Cases,
    cloud_event,
    publish_work,
    registry,
    seed_all,
    subject,
)
from tests.support import event_bytes, produce, read_until, running, topic_reader, wait_for

pytestmark = pytest.mark.integration


async def publish_hold(settings: Settings, kind: str, data: dict[str, Any]) -> None:
    event = cloud_event(f"gdpr.legal_hold.{kind}", data)
    await produce(
        settings.kafka_bootstrap_servers,
        topics.LEGAL_HOLDS,
        [(data["matter"].encode(), event_bytes(event))],
    )


async def invoices(settings: Settings, ref: RefSystems, cid: str) -> tuple[int, list[str]]:
    """Open invoices left in billing and the retain-until dates of restricted ones."""
    client = create_client(settings)
    try:
        billing = client[ref.db_name("billing")]
        left = await billing["invoices"].count_documents({"customer_id": cid})
        kept = [d async for d in billing["invoices_restricted"].find({"customer_id": cid})]
        return left, sorted(str(d["retain_until"]) for d in kept)
    finally:
        await client.close()


async def test_a_scoped_hold_keeps_invoices_back_and_its_release_carries_them_out(
    settings: Settings, refsys: RefSystems
) -> None:
    email, cid = subject()
    await seed_all(settings, refsys, email, cid, "crm", "billing")
    app = create_app(
        settings, erasure_settings=SETTINGS, registry=registry(refsys), tick_seconds=0.1
    )
    matter, hold_id = f"dispute-{uuid.uuid4().hex[:6]}", f"H-{uuid.uuid4().hex[:6]}"
    # The hold names the subject with different case: the shared pseudonyms still match.
    hold = {"hold_id": hold_id, "matter": matter, "at": "2027-03-01T09:00:00+01:00",
            "scope": {"subjects": [{"kind": "customer", "identifiers": {"email": email.upper()}}],
                      "categories": ["accounting"]}}  # fmt: skip
    async with (
        running(app) as http,
        topic_reader(settings.kafka_bootstrap_servers, topics.ERASURE_CASES) as case_events,
    ):
        cases, db = Cases(http, settings), app.state.runtime.db
        await publish_hold(settings, "placed", hold)
        await wait_for(lambda: db["holds"].find_one({"_id": hold_id}))
        case_id = await publish_work(
            settings, email, cid, ("customer", "erase"), ("accounting", "erase")
        )

        def shown(case: dict[str, Any]) -> bool:
            systems = case["systems"]
            return all(systems[n]["state"] == "acknowledged" for n in ("crm", "billing"))

        case = await cases.until(case_id, shown)
        part = case["systems"]["billing/h1"]
        assert part["state"] == "held" and part["attempts"] == 0
        assert part["held_by"] == [{"hold_id": hold_id, "matter": matter}]
        assert [c["category"] for c in part["categories"]] == ["invoices"]
        assert [c["category"] for c in case["systems"]["billing"]["categories"]] == ["payment"]
        assert case["systems"]["billing"]["outcome"] == "anonymised"
        assert case["holds_pending"] == [hold_id] and case["state"] == "open"
        assert await invoices(settings, refsys, cid) == (2, [])  # untouched under the hold

        await publish_hold(settings, "released", {**hold, "at": "2027-09-30T10:00:00+02:00"})
        record = await read_until(
            case_events,
            lambda r: (
                json.loads(r.value)["type"] == "gardien.erasure.case.released"
                and json.loads(r.value)["data"]["case_id"] == case_id
            ),
        )
        released = json.loads(record.value)["data"]
        assert released["matter"] == matter and released["reissued"] == ["billing/h1"]
        closed = await cases.until(case_id, lambda c: c["state"] == "closed", timeout=30)
        part = closed["systems"]["billing/h1"]
        assert part["outcome"] == "retained" and part["command_id"] == f"{case_id}/h1:billing"
        assert closed["holds_pending"] == []
    assert await invoices(settings, refsys, cid) == (0, ["2035-12-31", "2036-12-31"])


async def test_retained_invoices_keep_their_own_end_date(
    settings: Settings, refsys: RefSystems
) -> None:
    # Intake decides `accounting` as retain_restricted until the latest year's end (2036);
    # each invoice must still be kept until its own financial year end + 10 years.
    email, cid = subject()
    await seed_all(settings, refsys, email, cid, "billing")
    app = create_app(
        settings, erasure_settings=SETTINGS, registry=registry(refsys), tick_seconds=0.1
    )
    async with running(app) as http:
        cases = Cases(http, settings)
        case_id = f"req:REQ-{uuid.uuid4().hex[:8]}"
        work = cloud_event("gardien.erasure.work.requested", {
            "case_id": case_id, "origin": "request", "request_id": case_id[4:],
            "subject": {"kind": "customer", "identifiers": {"email": email, "customer_id": cid}},
            "categories": [{"category": "accounting", "action": "retain_restricted",
                            "ground": "Art 17(3)(b) legal obligation",
                            "retain_until": "2036-12-31"}],
        })  # fmt: skip
        await produce(
            settings.kafka_bootstrap_servers,
            topics.ERASURE_WORK,
            [(case_id.encode(), event_bytes(work))],
        )
        case = await cases.until(case_id, lambda c: c["state"] == "closed")
        assert case["systems"]["billing"]["retained_until"] == "2036-12-31"
    assert await invoices(settings, refsys, cid) == (0, ["2035-12-31", "2036-12-31"])
