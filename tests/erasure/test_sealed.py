"""Erasure keeps a case's identifiers sealed while it runs and forgets them when it closes."""

from __future__ import annotations

import json
import uuid
from typing import Any

import pytest

from services.erasure.app import create_app
from shared import topics
from shared.mongo import create_client, service_database
from shared.settings import Settings
from shared.subject_vault import SubjectVault
from tests.erasure.conftest import RefSystems
from tests.erasure.test_flow import SETTINGS, Cases, cloud_event, registry, seed_all, subject
from tests.support import event_bytes, produce, running, topic_reader, wait_for

pytestmark = pytest.mark.integration


def work(case_id: str, email: str, cid: str, *categories: str) -> dict[str, Any]:
    return cloud_event("gardien.erasure.work.requested", {
        "case_id": case_id, "origin": "request", "request_id": case_id[4:],
        "subject": {"kind": "customer", "identifiers": {"email": email, "customer_id": cid}},
        "categories": [{"category": c, "action": "erase", "ground": "Art 17(1)(b)"}
                       for c in categories],
    })  # fmt: skip


async def send(settings: Settings, key: str, *events: dict[str, Any]) -> None:
    items = [(key.encode(), event_bytes(e)) for e in events]
    await produce(settings.kafka_bootstrap_servers, topics.ERASURE_WORK, items)


async def test_open_case_stores_identifiers_sealed_and_commands_still_carry_them(
    settings: Settings, refsys: RefSystems
) -> None:
    email, cid = subject()
    await seed_all(settings, refsys, email, cid, "crm")
    case_id = f"req:REQ-{uuid.uuid4().hex[:8]}"
    app = create_app(settings, erasure_settings=SETTINGS, registry=registry(refsys))
    async with running(app) as http:
        # crm erases; ghost never answers, so the case stays open with its identifiers.
        await send(settings, case_id, work(case_id, email, cid, "profile", "tracking"))
        await Cases(http, settings).until(
            case_id, lambda c: c["systems"]["crm"]["state"] == "acknowledged"
        )
        client = create_client(settings)
        try:
            cases = service_database(client, settings, "erasure")["cases"]
            stored = await cases.find_one({"_id": case_id})
            crm = client[refsys.db_name("crm")]["customers"]
            left = await crm.find_one({"email": email})
        finally:
            await client.close()
    assert stored is not None and stored["state"] == "open"
    text = json.dumps(stored, default=str).casefold()
    assert email.casefold() not in text and cid.casefold() not in text
    assert stored["systems"]["ghost"]["identifiers"]["sealed"] == 1
    assert left is None  # the relay opened the identifiers for the system's command


async def test_work_redelivered_after_the_case_closed_changes_nothing(
    settings: Settings, refsys: RefSystems
) -> None:
    email, cid = subject()
    await seed_all(settings, refsys, email, cid, "crm")
    case_id = f"req:REQ-{uuid.uuid4().hex[:8]}"
    first = work(case_id, email, cid, "profile")
    app = create_app(settings, erasure_settings=SETTINGS, registry=registry(refsys))
    async with (
        running(app) as http,
        topic_reader(settings.kafka_bootstrap_servers, topics.dlq(topics.ERASURE_WORK)) as dlq,
    ):
        cases = Cases(http, settings)
        await send(settings, case_id, first)
        closed = await cases.until(case_id, lambda c: c["state"] == "closed")
        # The key goes right after the closing events are relayed (just after the save).
        vault = SubjectVault(app.state.runtime.db)
        await wait_for(lambda: vault.destroyed(f"case:{case_id}"))
        again = {**first, "id": f"test-{uuid.uuid4().hex}"}
        marker_id = f"req:REQ-{uuid.uuid4().hex[:8]}"
        await send(settings, case_id, again, work(marker_id, email, cid, "profile"))
        await cases.until(marker_id, lambda c: c["state"] == "closed")  # same partition, later
        assert await cases.get(case_id) == closed
        batch = await dlq.getmany(timeout_ms=1000)
        assert not [r for rs in batch.values() for r in rs if r.value == event_bytes(again)]
