"""A manual erasure step confirmed over HTTP closes the case like the system's own answer."""

from __future__ import annotations

import pytest

from services.erasure.app import create_app
from services.erasure.registry import Registry
from shared.settings import Settings
from tests.erasure.test_flow import SETTINGS, Cases, publish_work, subject
from tests.support import api_key, running

pytestmark = pytest.mark.integration
REGISTRY = Registry.model_validate(
    {
        "systems": [
            {
                "id": "archive",
                "categories": {"profile": {}},
                "identifiers": ["email"],
                "transport": {"kind": "kafka"},  # nobody consumes it: done by hand
            }
        ]
    }
)


async def test_manual_confirmation_closes_the_case(settings: Settings) -> None:
    h = api_key(settings)
    app = create_app(settings, erasure_settings=SETTINGS, registry=REGISTRY, tick_seconds=0.1)
    async with running(app) as http:
        cases = Cases(http, settings)
        email, cid = subject()
        case_id = await publish_work(settings, email, cid, ("profile", "erase"))
        await cases.until(case_id, lambda c: c["systems"]["archive"]["state"] == "sent")
        url = f"/v1/erasure/cases/{case_id}/systems/archive/manual-confirmation"
        step = {"performed_at": "2027-03-10T15:20:00+01:00", "what": "shredded the file"}
        assert (await http.post(url, json={"what": "x"}, headers=h)).status_code == 422
        other = url.replace("/archive/", "/crm/")
        assert (await http.post(other, json=step, headers=h)).status_code == 404
        reader = api_key(settings, "audit:read")
        assert (await http.post(url, json=step, headers=reader)).status_code == 403
        sent = await http.post(url, json=step, headers={**h, "Idempotency-Key": "m1"})
        assert sent.status_code == 202 and sent.json()["type"] == "gdpr.erasure.result"
        closed = await cases.until(case_id, lambda c: c["state"] == "closed")
        part = closed["systems"]["archive"]
        assert part["outcome"] == "erased"
        assert "confirmed by test: shredded the file" in part["detail"]
        replay = await http.post(url, json=step, headers={**h, "Idempotency-Key": "m1"})
        assert replay.json()["replayed"] is True
        again = await http.post(url, json=step, headers=h)
        assert again.status_code == 409 and "closed" in again.text
        listed = (await http.get("/v1/erasure/systems", headers=reader)).json()
        assert [s["id"] for s in listed] == ["archive"]
