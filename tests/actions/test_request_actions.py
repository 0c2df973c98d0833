"""Request follow-ups over HTTP: the event a Kafka publisher would send, idempotent, 409/422."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from services.intake.app import create_app
from shared import topics
from shared.events import parse_event
from shared.settings import Settings
from tests.support import (
    api_key,
    example,
    read_until,
    running,
    structured_event,
    topic_reader,
    wait_for,
)

pytestmark = pytest.mark.integration


async def until(client: httpx.AsyncClient, h: dict[str, str], rid: str, status: str) -> Any:
    async def probe() -> Any:
        r = await client.get(f"/v1/requests/{rid}", headers=h)
        return r.json() if r.status_code == 200 and r.json()["status"] == status else None

    return await wait_for(probe)


async def test_extension_refusal_and_replays(settings: Settings) -> None:
    admin = api_key(settings)
    reader_only = api_key(settings, "intake:read")
    rid = f"REQ-ACT-{uuid.uuid4().hex[:8]}"
    now = datetime.now(UTC)
    body = example("request-received.json", request_id=rid, received_at=now.isoformat())["data"]
    async with (
        running(create_app(settings)) as intake,
        topic_reader(settings.kafka_bootstrap_servers, topics.REQUESTS) as reader,
    ):
        assert (await intake.post("/v1/requests", json=body, headers=admin)).status_code == 202
        before = await until(intake, admin, rid, "received")
        url = f"/v1/requests/{rid}/extension"
        at = (now + timedelta(minutes=1)).isoformat()
        sent = {"at": at, "reasons": ["four archived systems to search"]}

        assert (await intake.post(url, json={"at": at}, headers=admin)).status_code == 422
        no_reason = await intake.post(url, json={"at": at, "reasons": []}, headers=admin)
        assert no_reason.status_code == 422 and "reasons" in no_reason.text
        forbidden = await intake.post(url, json=sent, headers=reader_only)
        assert forbidden.status_code == 403 and "intake:write" in forbidden.text
        assert (await intake.post(url, json=sent)).status_code == 401
        unknown = await intake.post("/v1/requests/nope/extension", json=sent, headers=admin)
        assert unknown.status_code == 404

        idem = {**admin, "Idempotency-Key": "ext-1"}
        first = await intake.post(url, json=sent, headers=idem)
        assert first.status_code == 202, first.text
        accepted = first.json()
        assert accepted["type"] == "gdpr.request.extended" and accepted["actor"] == "test"

        # The event on the topic is the inbound contract's, with the actor stamped on it.
        record = await read_until(reader, lambda r: _event_id(r.value) == accepted["event_id"])
        event = parse_event(record.value, record.headers)
        assert record.key == rid.encode()
        assert event.data == {"request_id": rid, "at": at, "reasons": sent["reasons"]}
        assert event.model_extra == {"actor": "test", "actorscope": "intake:write"}

        after = await until(intake, admin, rid, "extended")
        assert after["effective_due_date"] > before["effective_due_date"]

        # A retry is the same event and the same answer; another body under the key is a 422.
        again = await intake.post(url, json=sent, headers=idem)
        assert again.status_code == 202
        assert again.json() == {**accepted, "replayed": True}
        other = await intake.post(url, json={**sent, "reasons": ["other"]}, headers=idem)
        assert other.status_code == 422 and "Idempotency-Key" in other.text
        # Without the stored answer, the state now refuses a second extension.
        twice = await intake.post(url, json=sent, headers={**admin, "Idempotency-Key": "ext-2"})
        assert twice.status_code == 409 and "already extended" in twice.text

        refusal = f"/v1/requests/{rid}/refusal"
        assert (await intake.post(refusal, json={"reasons": []}, headers=admin)).status_code == 422
        refused = await intake.post(
            refusal, json={"reasons": ["manifestly excessive"]}, headers=admin
        )
        assert refused.status_code == 202
        done = await until(intake, admin, rid, "closed")  # refused, with no work left
        assert done["answer"]["outcome"] == "refused"
        assert "art12_4_complaint_rights_missing" in done["flags"]
        late = await intake.post(f"/v1/requests/{rid}/response", json={}, headers=admin)
        assert late.status_code == 409 and "closed" in late.text


async def test_pause_and_identity(settings: Settings) -> None:
    admin = api_key(settings)
    rid = f"REQ-ACT-{uuid.uuid4().hex[:8]}"
    now = datetime.now(UTC).isoformat()
    body = example("request-received.json", request_id=rid, received_at=now)["data"]
    async with running(create_app(settings)) as intake:
        await intake.post("/v1/requests", json=body, headers=admin)
        await until(intake, admin, rid, "received")
        base = f"/v1/requests/{rid}"
        nothing = await intake.post(f"{base}/information-received", json={}, headers=admin)
        assert nothing.status_code == 409 and "no information was awaited" in nothing.text
        asked = {"reason": "identity_verification"}
        r = await intake.post(f"{base}/information-request", json=asked, headers=admin)
        assert r.status_code == 202
        paused = await until(intake, admin, rid, "awaiting_identity")
        assert paused["pauses"]
        r = await intake.post(f"{base}/identity-verification", json={}, headers=admin)
        assert r.status_code == 202
        await until(intake, admin, rid, "in_progress")
        extra = await intake.post(f"{base}/identity-verification", json={"x": 1}, headers=admin)
        assert extra.status_code == 422 and "x" in extra.text


def _event_id(value: bytes | None) -> str | None:
    """The id of a structured event; None for anything else on the shared topic."""
    event = structured_event(value)
    return event.get("id") if event else None
