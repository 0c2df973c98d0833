"""Breach, hold and processor actions over HTTP on the embedded stack (deadlines owns them)."""

from __future__ import annotations

import uuid
from typing import Any

import httpx
import pytest

from services.deadlines.app import create_app
from shared.settings import Settings
from tests.support import api_key, running, wait_for

pytestmark = pytest.mark.integration


async def clock(client: httpx.AsyncClient, h: dict[str, str], bid: str, state: str) -> Any:
    async def probe() -> Any:
        r = await client.get(f"/v1/breaches/{bid}", headers=h)
        return (
            r.json() if r.status_code == 200 and r.json()["authority"]["state"] == state else None
        )

    return await wait_for(probe)


async def test_late_authority_notification_needs_reasons(settings: Settings) -> None:
    h = api_key(settings)
    bid = f"BR-{uuid.uuid4().hex[:8]}"
    detected = {
        "breach_id": bid,
        "aware_at": "2027-03-01T09:00:00+01:00",
        "reported_by": "controller",
        "risk": "high",
        "categories": ["customer"],
        "approx_subjects": 10,
        "approx_records": 20,
    }
    async with running(create_app(settings, run_scheduler=False)) as api:
        nobody = api_key(settings, "intake:write")
        assert (await api.post("/v1/breaches", json=detected, headers=nobody)).status_code == 403
        r = await api.post("/v1/breaches", json=detected, headers=h)
        assert r.status_code == 202 and r.json()["type"] == "gdpr.breach.detected"
        await clock(api, h, bid, "open")
        assert (await api.post("/v1/breaches", json=detected, headers=h)).status_code == 409
        listed = (await api.get("/v1/breaches", headers=h)).json()
        assert bid in [b["breach_id"] for b in listed]

        url = f"/v1/breaches/{bid}/authority-notification"
        late = {"at": "2027-03-05T10:00:00+01:00"}
        asked = await api.post(url, json=late, headers=h)
        assert asked.status_code == 422 and "reasons_for_delay is required" in asked.text
        assert "2027-03-04T08:00:00+00:00" in asked.text  # aware + 72 h
        given = {**late, "reasons_for_delay": "the processor told us on day 4"}
        assert (await api.post(url, json=given, headers=h)).status_code == 202
        done = await clock(api, h, bid, "missed")
        assert done["authority"]["details"]["reasons_for_delay_given"] is True
        again = await api.post(url, json=given, headers={**h, "Idempotency-Key": "n2"})
        assert again.status_code == 409 and "already recorded" in again.text
        public = await api.post(f"/v1/breaches/{bid}/public-communication", json={}, headers=h)
        assert public.status_code == 409
        other = await api.put(f"/v1/breaches/{bid}", json={**detected, "breach_id": "x"}, headers=h)
        # A PUT body inconsistent with its target: 409 (RFC 9110 9.3.4), a problem document.
        assert other.status_code == 409 and "differs from the path" in other.json()["detail"]
        unknown = await api.put("/v1/breaches/nope", json={**detected, "breach_id": "x"}, headers=h)
        assert unknown.status_code == 404


async def test_hold_placed_and_released(settings: Settings) -> None:
    h = api_key(settings)
    hid = f"H-{uuid.uuid4().hex[:8]}"
    hold = {"hold_id": hid, "matter": f"m-{hid}", "scope": {"categories": ["billing"]}}
    async with running(create_app(settings, run_scheduler=False)) as api:
        assert (await api.post(f"/v1/holds/{hid}/release", json={}, headers=h)).status_code == 404
        assert (await api.post("/v1/holds", json=hold, headers=h)).status_code == 202

        async def held(active: bool) -> Any:
            found = (await api.get("/v1/holds", headers=h)).json()
            return next((x for x in found if x["hold_id"] == hid and x["active"] is active), None)

        shown = await wait_for(lambda: held(True))
        assert shown["categories"] == ["billing"] and shown["subjects"] == 0
        assert (await api.post("/v1/holds", json=hold, headers=h)).status_code == 409
        rel = await api.post(f"/v1/holds/{hid}/release", json={}, headers=h)
        assert rel.status_code == 202, rel.text
        released = await wait_for(lambda: held(False), timeout=15)
        assert released["released_on"]
        again = await api.post(f"/v1/holds/{hid}/release", json={}, headers=h)
        assert again.status_code == 409 and "released on" in again.text
        cert = await api.post("/v1/processors/nobody/deletion-certificate", json={}, headers=h)
        assert cert.status_code == 404
