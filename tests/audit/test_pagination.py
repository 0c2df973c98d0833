"""Cursor pagination keeps the filter on every page (regression: `$or` beside filters)."""

from __future__ import annotations

from tests.audit.conftest import Trail
from tests.support import example


async def test_every_page_stays_filtered(trail: Trail) -> None:
    for n in range(5):
        await trail.feed(example("request-received.json", request_id="REQ-PAGE"))
        await trail.feed(example("request-received.json", request_id=f"REQ-OTHER-{n}"))
    seen: list[str] = []
    cursor: str | None = None
    while True:
        params = {"request_id": "REQ-PAGE", "limit": 2, **({"cursor": cursor} if cursor else {})}
        reply = await trail.http.get("/v1/audit/events", params=params, headers=trail.headers)
        assert reply.status_code == 200, reply.text
        page = reply.json()
        assert {item["refs"]["request_id"] for item in page["items"]} <= {"REQ-PAGE"}
        seen += [item["record_id"] for item in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert len(seen) == 5
    assert len(set(seen)) == 5
