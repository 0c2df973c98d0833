"""The vertical slice in one process: intake and audit apps on the embedded stack."""

from __future__ import annotations

import uuid

import pytest

from services.audit.app import create_app as audit_app
from services.intake.app import create_app as intake_app
from shared import topics
from shared.messaging import DLQ_REASON
from shared.settings import Settings
from tests.support import (
    api_key,
    event_bytes,
    example,
    produce,
    read_until,
    running,
    topic_reader,
    wait_for,
)

pytestmark = pytest.mark.integration


async def test_request_is_stored_and_audited_and_poison_is_dead_lettered(
    settings: Settings,
) -> None:
    # A subject of its own: the shared broker replays other tests' requests to this intake,
    # and a subject seen often enough would be flagged for access-frequency review.
    subject = {
        "kind": "customer",
        "identifiers": {"email": f"slice-{uuid.uuid4().hex}@example.org"},
    }
    good = example("request-received.json", request_id="REQ-SLICE-1", subject=subject)
    bad = example("malformed.json")
    headers = api_key(settings)
    async with running(intake_app(settings)) as intake, running(audit_app(settings)) as audit:
        async with topic_reader(
            settings.kafka_bootstrap_servers, topics.dlq(topics.REQUESTS)
        ) as dlq:
            await produce(
                settings.kafka_bootstrap_servers,
                topics.REQUESTS,
                [(b"REQ-BAD", event_bytes(bad)), (b"REQ-SLICE-1", event_bytes(good))],
            )

            async def stored() -> dict[str, object] | None:
                r = await intake.get("/v1/requests/REQ-SLICE-1", headers=headers)
                return r.json() if r.status_code == 200 else None

            assert (await wait_for(stored))["status"] == "received"

            async def audited() -> list[dict[str, object]] | None:
                r = await audit.get(
                    "/v1/audit/events", params={"request_id": "REQ-SLICE-1"}, headers=headers
                )
                items = r.json()["items"]
                return items if len(items) >= 3 else None

            types = {item["type"] for item in await wait_for(audited)}
            assert types == {
                "gdpr.request.received",
                "gardien.request.accepted",
                "gardien.access.work.requested",  # an access request asks for its collection
            }

            dead = await read_until(dlq, lambda rec: rec.value == event_bytes(bad))
            reason = dict(dead.headers)[DLQ_REASON].decode()
            assert "right" in reason and "alice" not in reason.lower()


async def test_redelivered_event_creates_no_second_request_or_record(settings: Settings) -> None:
    event = example("request-received.json", request_id="REQ-DUP-1")
    headers = api_key(settings)
    async with running(intake_app(settings)) as intake, running(audit_app(settings)) as audit:
        await produce(
            settings.kafka_bootstrap_servers,
            topics.REQUESTS,
            [(b"REQ-DUP-1", event_bytes(event))] * 3,
        )

        async def audited() -> list[dict[str, object]] | None:
            r = await audit.get(
                "/v1/audit/events", params={"request_id": "REQ-DUP-1"}, headers=headers
            )
            items = r.json()["items"]
            return items if len(items) >= 2 else None

        await wait_for(audited)
        # A later marker event proves the duplicates were consumed before we count.
        marker = example("request-received.json", request_id="REQ-DUP-MARK")
        await produce(
            settings.kafka_bootstrap_servers,
            topics.REQUESTS,
            [(b"REQ-DUP-MARK", event_bytes(marker))],
        )

        async def marked() -> bool:
            r = await intake.get("/v1/requests/REQ-DUP-MARK", headers=headers)
            return r.status_code == 200

        await wait_for(marked)
        items = (
            await audit.get("/v1/audit/events", params={"request_id": "REQ-DUP-1"}, headers=headers)
        ).json()["items"]
        assert sorted(i["type"] for i in items) == [
            "gardien.access.work.requested",  # the access request's collection, once
            "gardien.request.accepted",
            "gdpr.request.received",
        ]
        doc = (await intake.get("/v1/requests/REQ-DUP-1", headers=headers)).json()
        assert len(doc["history"]) == 1
