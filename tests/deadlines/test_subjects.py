"""A retention clock keeps its subject sealed, names it in the purge work, shreds it after."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest

from services.deadlines.app import create_app
from shared import topics
from shared.clock import FakeClock
from shared.settings import Settings
from tests.deadlines.helpers import inbound, next_event, publish, stored, token
from tests.support import running, topic_reader, wait_for

pytestmark = pytest.mark.integration


async def test_retention_subject_is_sealed_sent_with_the_purge_and_shredded_on_close(
    settings: Settings,
) -> None:
    clock = FakeClock(datetime(2031, 7, 1, 12, tzinfo=UTC))
    app = create_app(settings, clock=clock, run_scheduler=False)
    t = token()
    contract, email = f"CTR-{t}", f"Kept.{t}@Example.org"
    ids = {"email": email, "customer_id": f"C-{t}"}
    tid = f"retention:{contract}:customer"
    async with (
        running(app),
        topic_reader(settings.kafka_bootstrap_servers, topics.ERASURE_WORK) as reader,
    ):
        ended = inbound("gdpr.contract.ended", {
            "contract_id": contract, "ended_at": "2026-06-30T18:00:00+02:00",
            "subject": {"kind": "customer", "identifiers": ids},
            "categories": ["customer"],
        })  # fmt: skip
        await publish(settings, topics.CONTRACTS, contract, ended)
        doc = await wait_for(lambda: stored(app, tid))
        kept = json.dumps(doc, default=str).casefold()
        assert email.casefold() not in kept and f"c-{t}" not in kept

        await app.state.scheduler.tick()
        work = await next_event(reader, f"{tid}:purge:2031-06-30T22:00:00Z")
        assert work["data"]["subject"]["identifiers"]["email"] == email
        after = await stored(app, tid)
        assert email.casefold() not in json.dumps(after, default=str).casefold()

        closed = inbound("gardien.erasure.case.closed", {
            "case_id": f"ret:{tid}", "origin": "retention", "state": "closed", "systems": {},
        }, time="2031-07-02T10:00:00+02:00")  # fmt: skip
        await publish(settings, topics.ERASURE_CASES, f"ret:{tid}", closed)
        vault = app.state.repositories.vault
        await wait_for(lambda: vault.destroyed(tid))
        assert await vault.open(doc["inputs"]["subject"], "subject") is None
