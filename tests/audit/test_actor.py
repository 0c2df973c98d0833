"""The audit trail keeps who acted: the API key's name and scope an HTTP action carried."""

from __future__ import annotations

from services.audit import chain
from tests.audit.conftest import Trail
from tests.support import example


async def test_the_acting_key_is_recorded_and_hashed(trail: Trail) -> None:
    acted = {
        **example("request-extended.json", request_id="REQ-ACTOR"),
        "actor": "office-manager",
        "actorscope": "intake:write",
    }
    plain = example("request-identity-verified.json", request_id="REQ-ACTOR")
    await trail.feed(acted, plain)
    found = await trail.http.get(
        "/v1/audit/events", params={"request_id": "REQ-ACTOR"}, headers=trail.headers
    )
    items = {i["type"]: i for i in found.json()["items"]}
    assert items["gdpr.request.extended"]["actor"] == {
        "name": "office-manager",
        "scope": "intake:write",
    }
    assert "actor" not in items["gdpr.request.identity_verified"]  # published by hand
    [stored] = await trail.stored(event_id=acted["id"])
    assert stored is not None and chain.record_hash(stored) == stored["hash"]  # covered
    report = (await trail.http.get("/v1/audit/verify", headers=trail.headers)).json()
    assert report["ok"] is True
