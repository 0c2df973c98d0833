"""No personal data in clear; crypto-shredding on case closure; queries, export, report."""

from __future__ import annotations

import csv
import io
import json
from datetime import timedelta
from typing import Any

from shared import topics
from tests.audit.conftest import Trail, delivery
from tests.support import example

EMAIL = "alice.martin@example.org"


def _internal(event_type: str, event_id: str, **data: Any) -> dict[str, Any]:
    return {
        "specversion": "1.0",
        "id": event_id,
        "source": "gardien/test",
        "type": event_type,
        "time": "2027-03-06T10:00:00+01:00",
        "data": data,
    }


async def _request_flow(trail: Trail, rid: str) -> None:
    received = example("request-erasure-received.json", request_id=rid)
    received["data"]["details"] = {"note": "call Alice on +33 6 12 34 56 78"}
    extended = example("request-extended.json", request_id=rid, reasons=["Alice is abroad"])
    await trail.feed(received, extended)
    work = _internal(
        "gardien.erasure.work.requested",
        f"{rid}:work",
        case_id=f"req:{rid}",
        origin="request",
        request_id=rid,
        subject={"kind": "customer", "identifiers": {"email": EMAIL}},
        categories=[],
        due_by="2027-04-05",
    )
    await trail.feed(work, topic=topics.ERASURE_WORK)


async def _events(trail: Trail, **params: Any) -> list[dict[str, Any]]:
    reply = await trail.http.get("/v1/audit/events", params=params, headers=trail.headers)
    assert reply.status_code == 200, reply.text
    items: list[dict[str, Any]] = reply.json()["items"]
    return items


async def test_no_identifier_or_free_text_is_stored_in_clear(trail: Trail) -> None:
    await _request_flow(trail, "REQ-P-1")
    raw = json.dumps(await trail.stored(), default=str)
    for secret in (EMAIL, "C-1042", "+33 6 12", "abroad"):
        assert secret not in raw
    shown = await _events(trail, subject=EMAIL.upper())
    assert {i["type"] for i in shown} == {
        "gdpr.request.received",
        "gdpr.request.extended",  # linked to the subject through its request
        "gardien.erasure.work.requested",
    }
    assert all("@" not in json.dumps(i) for i in shown)


async def test_closing_the_case_shreds_personal_fields_but_not_the_trail(trail: Trail) -> None:
    await _request_flow(trail, "REQ-P-2")
    opened = await _events(trail, request_id="REQ-P-2", reveal="true")
    received = next(i for i in opened if i["type"] == "gdpr.request.received")
    assert received["data"]["subject"]["identifiers"]["email"] == EMAIL
    assert received["data"]["details"] == {"note": "call Alice on +33 6 12 34 56 78"}
    extended = next(i for i in opened if i["type"] == "gdpr.request.extended")
    assert extended["data"]["reasons"] == ["Alice is abroad"]

    closed = _internal(
        "gardien.erasure.case.closed",
        "REQ-P-2:closed",
        case_id="req:REQ-P-2",
        origin="request",
        request_id="REQ-P-2",
        systems={"crm": {"state": "done", "outcome": "erased", "attempts": 1}},
    )
    await trail.feed(closed, topic=topics.ERASURE_CASES)

    after = await _events(trail, request_id="REQ-P-2", reveal="true")
    for item in after:
        assert EMAIL not in json.dumps(item)
        assert {f["state"] for f in item["sealed_fields"]} <= {"shredded"}
    assert len(await _events(trail, subject=EMAIL)) == 4  # still findable, closure included
    report = (await trail.http.get("/v1/audit/verify", headers=trail.headers)).json()
    assert report["ok"], report


async def test_reveal_needs_admin(trail: Trail, settings: Any) -> None:
    from tests.support import api_key

    reader = api_key(settings, "audit:read")
    reply = await trail.http.get("/v1/audit/events", params={"reveal": "true"}, headers=reader)
    assert reply.status_code == 403
    plain = await trail.http.get("/v1/audit/events", headers=reader)
    assert plain.status_code == 200


async def test_redelivery_creates_no_second_record(trail: Trail) -> None:
    event = example("request-received.json", request_id="REQ-P-DUP")
    once = delivery(event)
    for _ in range(3):
        await trail.auditor.record(once)
    await trail.auditor.record(delivery(event))  # same event, another offset
    assert len(await _events(trail, request_id="REQ-P-DUP")) == 1


async def test_export_opens_as_csv_and_jsonl(trail: Trail) -> None:
    await _request_flow(trail, "REQ-P-3")
    params = {"request_id": "REQ-P-3", "format": "csv"}
    reply = await trail.http.get("/v1/audit/export", params=params, headers=trail.headers)
    assert reply.status_code == 200
    assert reply.headers["content-type"].startswith("text/csv")
    text = reply.content.decode("utf-8-sig")
    rows = list(csv.DictReader(io.StringIO(text)))
    assert {r["type"] for r in rows} == {
        "gdpr.request.received",
        "gdpr.request.extended",
        "gardien.erasure.work.requested",
    }
    assert all(r["request_id"] == "REQ-P-3" for r in rows)
    params["format"] = "jsonl"
    lines = (await trail.http.get("/v1/audit/export", params=params, headers=trail.headers)).text
    assert [json.loads(line)["refs"]["request_id"] for line in lines.splitlines()] == [
        "REQ-P-3"
    ] * 3


async def test_compliance_report(trail: Trail) -> None:
    rid = "REQ-P-4"
    clock = {"due_date": "2027-04-05", "effective_due_date": "2027-06-05", "state": "running"}
    received = example("request-erasure-received.json", request_id=rid)
    extended = example("request-extended.json", request_id=rid)
    responded = example("request-responded.json", request_id=rid)
    await trail.feed(received, extended, responded)
    accepted = _internal(
        "gardien.request.accepted",
        f"{rid}:acc",
        request_id=rid,
        right="erasure",
        status="received",
        clock={**clock, "extended_due_date": "2027-06-05"},
    )
    await trail.feed(accepted, topic=topics.REQUEST_EVENTS)
    result = _internal(
        "gdpr.erasure.result",
        f"{rid}:res",
        command_id=f"req:{rid}:crm",
        system="crm",
        outcome="erased",
    )
    await trail.feed(result, topic=topics.ERASURE_RESULTS)
    reply = await trail.http.get(f"/v1/audit/requests/{rid}/report", headers=trail.headers)
    assert reply.status_code == 200, reply.text
    report = reply.json()
    assert report["right"] == "erasure"
    assert report["extended"] is True
    assert report["due_date"] == "2027-06-05"
    assert report["responded_at"] is not None
    assert report["systems"]["crm"]["outcome"] == "erased"
    assert isinstance(report["late"], bool)
    missing = await trail.http.get("/v1/audit/requests/NOPE/report", headers=trail.headers)
    assert missing.status_code == 404


async def test_report_shows_a_case_closed_when_its_last_progress_shares_the_instant(
    trail: Trail,
) -> None:
    rid = "REQ-P-5"
    await trail.feed(example("request-erasure-received.json", request_id=rid))
    trail.clock.advance(timedelta(minutes=5))
    case = {"case_id": f"req:{rid}", "origin": "request", "request_id": rid}
    done = {"crm": {"state": "done", "outcome": "erased", "attempts": 1}}
    progressed = _internal(
        "gardien.erasure.case.progressed", f"req:{rid}:progressed:3", **case, systems=done
    )
    closed = _internal("gardien.erasure.case.closed", f"req:{rid}:closed", **case, systems=done)
    assert progressed["time"] == closed["time"]  # the same instant, the same chain
    await trail.feed(progressed, closed, topic=topics.ERASURE_CASES)
    reply = await trail.http.get(f"/v1/audit/requests/{rid}/report", headers=trail.headers)
    assert reply.status_code == 200, reply.text
    report = reply.json()
    assert report["cases"][f"req:{rid}"]["state"] == "closed"
    assert [t["type"] for t in report["timeline"]][-2:] == [
        "gardien.erasure.case.progressed",
        "gardien.erasure.case.closed",
    ]


async def test_every_reveal_and_export_is_itself_audited_without_personal_data(
    trail: Trail,
) -> None:
    await _request_flow(trail, "REQ-P-READ")
    opened = await _events(trail, request_id="REQ-P-READ", reveal="true")
    export = await trail.http.get(
        "/v1/audit/export", params={"subject": EMAIL, "format": "csv"}, headers=trail.headers
    )
    assert export.status_code == 200
    reads = await _events(trail, type="gardien.audit.revealed")
    mine = [r for r in reads if r["data"]["filters"].get("request_id") == "REQ-P-READ"]
    assert len(mine) == 1
    assert mine[0]["data"]["records"] == [i["record_id"] for i in opened]
    assert mine[0]["data"]["key"]["name"] == "test" and "admin" in mine[0]["data"]["key"]["scopes"]
    exports = await _events(trail, type="gardien.audit.exported")
    assert exports and exports[-1]["data"]["format"] == "csv"
    assert exports[-1]["data"]["filters"]["subject"] != EMAIL  # the keyed reference instead
    assert EMAIL not in json.dumps(reads + exports)
