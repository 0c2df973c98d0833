"""The audit service on the real broker: re-deliveries, shredding, checkpoints, webhooks."""

from __future__ import annotations

import json
from typing import Any

import pytest

from services.audit.app import create_app
from services.audit.settings import AuditSettings
from shared import topics
from shared.settings import Settings
from tests.audit.test_webhooks import Receiver, standard_webhooks_valid
from tests.support import api_key, event_bytes, example, produce, running, wait_for

pytestmark = pytest.mark.integration


async def test_audit_service_end_to_end(
    own_broker: Settings, audit_settings: AuditSettings
) -> None:
    # A broker of its own: a new audit group reads every topic from the start, and late in a
    # run the session's broker holds every earlier test's records (a backlog of minutes).
    settings = own_broker
    headers = api_key(settings)
    receiver = Receiver("127.0.0.1")
    tuned = audit_settings.model_copy(update={"checkpoint_every": 2, "checkpoint_seconds": 0.2})
    try:
        async with running(create_app(settings, audit=tuned)) as audit:
            sub = await audit.post(
                "/v1/webhooks",
                json={"url": receiver.url, "event_types": ["gdpr.request.received"]},
                headers=headers,
            )
            assert sub.status_code == 201, sub.text
            secret = sub.json()["secret"]
            event = example("request-erasure-received.json", request_id="REQ-E2E-1")
            bootstrap = settings.kafka_bootstrap_servers
            await produce(bootstrap, topics.REQUESTS, [(b"REQ-E2E-1", event_bytes(event))] * 3)

            async def received_once() -> bool:
                params = {"request_id": "REQ-E2E-1"}
                r = await audit.get("/v1/audit/events", params=params, headers=headers)
                return bool(r.json()["items"])

            await wait_for(received_once)  # an erasure case closes after its request arrived
            closed = {
                "specversion": "1.0",
                "id": "REQ-E2E-1:closed",
                "source": "gardien/erasure",
                "type": "gardien.erasure.case.closed",
                "time": "2027-03-06T10:00:00+01:00",
                "data": {"case_id": "req:REQ-E2E-1", "request_id": "REQ-E2E-1", "systems": {}},
            }
            await produce(
                bootstrap, topics.ERASURE_CASES, [(b"req:REQ-E2E-1", event_bytes(closed))]
            )

            async def audited() -> list[dict[str, Any]] | None:
                params = {"subject": "alice.martin@example.org", "reveal": "true"}
                r = await audit.get("/v1/audit/events", params=params, headers=headers)
                items: list[dict[str, Any]] = r.json()["items"]
                return items if len(items) >= 2 else None

            items = await wait_for(audited)
            assert sorted(i["type"] for i in items) == [
                "gardien.erasure.case.closed",
                "gdpr.request.received",
            ]
            received = next(i for i in items if i["type"] == "gdpr.request.received")
            assert "identifiers" not in received["data"]["subject"]  # shredded
            assert "alice" not in json.dumps(items)

            async def checkpointed() -> list[dict[str, Any]] | None:
                r = await audit.get("/v1/audit/checkpoints", headers=headers)
                cps: list[dict[str, Any]] = r.json()["items"]
                return cps if len(cps) >= 2 else None

            await wait_for(checkpointed)
            verified = (await audit.get("/v1/audit/verify", headers=headers)).json()
            assert verified["ok"], verified
            assert verified["checkpoints_checked"] >= 2

            await wait_for(lambda: _some(receiver.got))
            [(got_headers, body)] = receiver.got
            assert standard_webhooks_valid(secret, got_headers, body)
            assert json.loads(body)["data"]["refs"]["request_id"] == "REQ-E2E-1"
    finally:
        receiver.close()


async def _some(items: list[Any]) -> bool:
    return bool(items)
