"""Intake keeps the subject sealed under the request's key and destroys it when erasure ends."""

from __future__ import annotations

import json
from typing import Any

import pytest

from services.intake.app import create_app
from shared import topics
from shared.settings import Settings
from shared.subject_vault import SubjectVault
from tests.intake.test_integration import rid, send, step
from tests.support import event_bytes, example, produce, read_until, running, topic_reader, wait_for

pytestmark = pytest.mark.integration


def closed_case(request_id: str) -> dict[str, Any]:
    return {
        "specversion": "1.0", "id": f"case-{request_id}", "source": "gardien/erasure",
        "type": "gardien.erasure.case.closed", "time": "2027-03-20T10:00:00+01:00",
        "data": {"case_id": f"req:{request_id}", "origin": "request", "request_id": request_id,
                 "state": "closed",
                 "systems": {}, "closed_at": "2027-03-20T10:00:00+01:00"},
    }  # fmt: skip


async def test_held_work_is_sealed_sent_on_identity_and_the_subject_shredded_on_close(
    settings: Settings,
) -> None:
    request_id = rid("REQ-SEAL")
    email, customer = f"Sealed.{request_id}@Example.org", f"C-{request_id}"
    received = example(
        "request-erasure-received.json",
        request_id=request_id,
        subject={"kind": "customer", "identifiers": {"email": email, "customer_id": customer}},
        details={"contract_status": "terminated", "contract_end_date": "2026-06-30",
                 "await_identity": True, "purpose": f"note about {email}"},
    )  # fmt: skip
    earlier = example(
        "request-received.json",
        request_id=rid("REQ-EARLIER"),
        subject={"kind": "customer", "identifiers": {"email": email.upper()}},
    )
    app = create_app(settings)
    async with (
        running(app),
        topic_reader(settings.kafka_bootstrap_servers, topics.ERASURE_WORK) as work,
    ):
        intake, vault = app.state.intake, SubjectVault(app.state.runtime.db)
        await send(settings, earlier, received)
        doc = await wait_for(lambda: intake.requests.get(request_id))
        await wait_for(lambda: intake.requests.get(earlier["data"]["request_id"]))
        assert doc["held_work"]  # waits for identity, sealed meanwhile
        text = json.dumps(doc, default=str).casefold()
        assert email.casefold() not in text and customer.casefold() not in text

        await send(settings, step("request-identity-verified.json", request_id,
                                  "2027-03-06T10:00:00+01:00"))  # fmt: skip
        item = await read_until(
            work, lambda r: json.loads(r.value)["data"].get("request_id") == request_id
        )
        assert json.loads(item.value)["data"]["subject"]["identifiers"]["email"] == email

        key = f"req:{request_id}".encode()
        await produce(
            settings.kafka_bootstrap_servers,
            topics.ERASURE_CASES,
            [(key, event_bytes(closed_case(request_id)))],
        )
        await wait_for(lambda: intake.keys.destroyed(f"request:{request_id}"))
        # The subject's earlier access request (same e-mail, other case) is shredded too.
        assert await intake.keys.destroyed(f"request:{earlier['data']['request_id']}")
        final = await intake.requests.get(request_id)
        assert await vault.open(final["subject"]["identifiers"], "subject.identifiers") is None
        assert await vault.open(final["details"], "details") is None
        assert email.casefold() not in json.dumps(final, default=str).casefold()
