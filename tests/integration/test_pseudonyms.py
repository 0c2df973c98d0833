"""One pseudonym for a subject in every service, end to end through Kafka (issue 10, item 7).

A hold placed by the legal team on ``Alice@Example.com`` must cover the retention clock of a
contract that billing reports for ``alice@example.com``; intake and the audit trail must
know the same subject by the same keyed reference, whatever the case or spacing.
"""

from __future__ import annotations

import hashlib
import hmac
import os
from typing import Any

import pytest

from services.audit.app import create_app as audit_app
from services.deadlines.app import create_app as deadlines_app
from services.intake.app import create_app as intake_app
from shared import topics
from shared.pseudonyms import decode_key
from shared.settings import Settings
from tests.deadlines.helpers import inbound, publish, token
from tests.support import api_key, example, running, wait_for

pytestmark = pytest.mark.integration


async def _one(holds: Any, key: str) -> dict[str, Any] | None:
    found: dict[str, Any] | None = (await holds.get_many([key])).get(key)
    return found


def hold_event(t: str, email: str) -> dict[str, Any]:
    subject = {"kind": "customer", "identifiers": {"email": email}}
    return inbound("gdpr.legal_hold.placed", {
        "hold_id": f"H-{t}", "matter": f"dispute-{t}",
        "scope": {"subjects": [subject], "categories": ["customer"]},
        "at": "2030-01-15T09:00:00+01:00",
    })  # fmt: skip


def contract_event(contract_id: str, email: str) -> dict[str, Any]:
    return inbound("gdpr.contract.ended", {
        "contract_id": contract_id, "ended_at": "2026-06-30T18:00:00+02:00",
        "subject": {"kind": "customer", "identifiers": {"email": email}},
        "categories": ["customer"],
    })  # fmt: skip


def request_event(request_id: str, email: str) -> dict[str, Any]:
    subject = {"kind": "customer", "identifiers": {"email": email}}
    return example("request-received.json", request_id=request_id, subject=subject)


async def test_a_hold_on_one_spelling_covers_every_service_record_of_another(
    settings: Settings,
) -> None:
    t = token()
    contract, request_id = f"CTR-{t}", f"REQ-PSEUDO-{t}"
    placed_as, ended_as, requested_as = (
        f"Alice.{t}@Example.com",
        f"alice.{t}@example.com",
        f"  ALICE.{t}@EXAMPLE.COM ",
    )
    headers = api_key(settings)
    deadlines, intake = deadlines_app(settings, run_scheduler=False), intake_app(settings)
    async with (
        running(deadlines) as dl,
        running(intake),
        running(audit_app(settings)) as audit,
    ):
        await publish(settings, topics.LEGAL_HOLDS, f"dispute-{t}", hold_event(t, placed_as))
        hold = await wait_for(lambda: _one(deadlines.state.repositories.holds, f"H-{t}"))
        await publish(settings, topics.CONTRACTS, contract, contract_event(contract, ended_as))
        request = request_event(request_id, requested_as)
        await publish(settings, topics.REQUESTS, request_id, request)

        async def blocked() -> dict[str, Any] | None:
            r = await dl.get("/v1/deadlines", params={"limit": 500}, headers=headers)
            items = [
                i for i in r.json()["items"] if i["timer_id"] == f"retention:{contract}:customer"
            ]
            return items[0] if items and items[0]["state"] == "blocked" else None

        item = await wait_for(blocked)
        assert "R-RET-4" in item["rules"] and item["due_at"] is None

        tid = f"retention:{contract}:customer"
        timer = (await deadlines.state.repositories.timers.load_many([tid])).get(tid)
        assert timer is not None
        history = intake.state.intake.history.collection

        async def intake_refs() -> list[str]:
            return [d["subject_hash"] async for d in history.find({"request_id": request_id})]

        refs = await wait_for(intake_refs)
        assert refs == timer["subject_refs"] == hold["subject_refs"]

        # Keyed: the reference is HMAC-SHA256 under the deployment key, not a plain hash.
        normal = f"alice.{t}@example.com".encode()
        key = decode_key(os.environ["GARDIEN_PSEUDONYM_KEY"])
        assert refs == [hmac.new(key, normal, hashlib.sha256).hexdigest()]
        assert hashlib.sha256(normal).hexdigest() not in refs
        assert all(normal.decode() not in str(r) for r in refs)

        async def trail() -> set[str] | None:
            r = await audit.get(
                "/v1/audit/events", params={"subject": ended_as.upper()}, headers=headers
            )
            types = {i["type"] for i in r.json()["items"]}
            wanted = {"gdpr.legal_hold.placed", "gdpr.contract.ended", "gdpr.request.received"}
            return types if wanted <= types else None

        await wait_for(trail, timeout=30)
