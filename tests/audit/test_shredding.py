"""Crypto-shredding is final for a closed case; a new key only for a new relationship."""

from __future__ import annotations

import asyncio
import json
import uuid
from typing import Any

import pytest

from services.audit.app import create_app
from services.audit.settings import AuditSettings
from shared import topics
from shared.settings import Settings
from tests.audit.conftest import Trail, delivery
from tests.support import api_key, event_bytes, example, produce, running, wait_for

PHONE = "+33 6 98 76 54 32"


def _internal(kind: str, event_id: str, **data: Any) -> dict[str, Any]:
    return {
        "specversion": "1.0",
        "id": event_id,
        "source": "gardien/test",
        "type": kind,
        "time": "2027-03-06T10:00:00+01:00",
        "data": data,
    }


def _case_flow(rid: str, email: str) -> list[tuple[str, dict[str, Any]]]:
    """(topic, event) of a request's erasure up to its command to the CRM."""
    ids = {"email": email}
    case = f"req:{rid}"
    received = example("request-erasure-received.json", request_id=rid)
    received["data"]["subject"]["identifiers"] = ids
    received["data"]["details"] = {"note": f"call back on {PHONE}"}
    work = _internal(
        "gardien.erasure.work.requested",
        f"{rid}:work",
        case_id=case,
        origin="request",
        request_id=rid,
        subject={"kind": "customer", "identifiers": ids},
    )
    command = _internal(
        "gardien.erasure.command.issued",
        f"{case}:crm:1",
        command_id=f"{case}:crm",
        case_id=case,
        system="crm",
        identifiers=ids,
        action="erase",
    )
    return [
        (topics.REQUESTS, received),
        (topics.ERASURE_WORK, work),
        (topics.ERASURE_COMMANDS, command),
    ]


def _closed(rid: str) -> dict[str, Any]:
    return _internal(
        "gardien.erasure.case.closed",
        f"req:{rid}:closed",
        case_id=f"req:{rid}",
        origin="request",
        request_id=rid,
        state="closed",
        systems={"crm": {"state": "acknowledged", "outcome": "erased", "attempts": 1}},
    )


def _result(rid: str, system: str, detail: str) -> dict[str, Any]:
    return _internal(
        "gdpr.erasure.result",
        f"{rid}:{system}:result:{uuid.uuid4().hex[:6]}",
        command_id=f"req:{rid}:{system}",
        system=system,
        outcome="erased",
        detail=detail,
    )


def _states(item: dict[str, Any]) -> set[str]:
    return {f["state"] for f in item["sealed_fields"]}


@pytest.mark.integration
async def test_results_arriving_just_after_the_closure_stay_unreadable(
    own_broker: Settings, audit_settings: AuditSettings
) -> None:
    # A broker of its own: a new audit group reads every topic from the start, and late in a
    # run the session's broker holds every earlier test's records (a backlog of minutes).
    settings = own_broker
    rid = f"REQ-SHRED-{uuid.uuid4().hex[:8]}"
    email = f"{rid.lower()}@example.org"
    headers = api_key(settings)
    bootstrap = settings.kafka_bootstrap_servers
    async with running(create_app(settings, audit=audit_settings)) as audit:

        async def events(**params: Any) -> list[dict[str, Any]]:
            reply = await audit.get("/v1/audit/events", params=params, headers=headers)
            items: list[dict[str, Any]] = reply.json()["items"]
            return items

        for topic, event in _case_flow(rid, email):
            await produce(bootstrap, topic, [(rid.encode(), event_bytes(event))])

        async def flow_audited() -> bool:
            return len(await events(case_id=f"req:{rid}")) == 2 and bool(
                await events(request_id=rid)
            )

        await wait_for(flow_audited, timeout=30)
        racing = _result(rid, "crm", f"erased; the customer's phone was {PHONE}")
        await produce(bootstrap, topics.ERASURE_CASES, [(rid.encode(), event_bytes(_closed(rid)))])
        await asyncio.sleep(0.01)  # the connected system's reply, ~10 ms after the closure
        await produce(bootstrap, topics.ERASURE_RESULTS, [(rid.encode(), event_bytes(racing))])

        async def shredded() -> bool:
            received = await events(request_id=rid, type="gdpr.request.received", reveal="true")
            return bool(received) and _states(received[0]) == {"shredded"}

        await wait_for(shredded, timeout=30)
        late = _result(rid, "billing", f"erased; phone {PHONE} kept nowhere")
        await produce(bootstrap, topics.ERASURE_RESULTS, [(rid.encode(), event_bytes(late))])

        async def results() -> list[dict[str, Any]] | None:
            found = await events(case_id=f"req:{rid}", type="gdpr.erasure.result", reveal="true")
            return found if len(found) == 2 else None

        for item in await wait_for(results, timeout=30):
            assert _states(item) == {"shredded"}, item["event_id"]
            assert PHONE not in json.dumps(item)
        everything = await events(case_id=f"req:{rid}", reveal="true")
        everything += await events(request_id=rid, reveal="true")
        assert everything and all(_states(i) <= {"shredded"} for i in everything)
        assert PHONE not in json.dumps(everything) and email not in json.dumps(everything)


async def _reveal(trail: Trail, **params: Any) -> list[dict[str, Any]]:
    reply = await trail.http.get(
        "/v1/audit/events", params={**params, "reveal": "true"}, headers=trail.headers
    )
    assert reply.status_code == 200, reply.text
    items: list[dict[str, Any]] = reply.json()["items"]
    return items


async def _feed_flow(trail: Trail, rid: str, email: str) -> None:
    for topic, event in _case_flow(rid, email):
        await trail.auditor.record(delivery(event, topic))


async def test_a_new_request_after_the_erasure_gets_a_new_key_and_the_old_case_does_not(
    trail: Trail,
) -> None:
    email = "carole.petit@example.org"
    await _feed_flow(trail, "REQ-S-1", email)
    closed = _closed("REQ-S-1")
    await trail.feed(closed, topic=topics.ERASURE_CASES)
    # A new request after the erasure: a new relationship, a new key generation.
    await _feed_flow(trail, "REQ-S-2", email)
    new = await _reveal(trail, request_id="REQ-S-2", type="gdpr.request.received")
    assert _states(new[0]) == {"revealed"}
    assert new[0]["data"]["subject"]["identifiers"] == {"email": email}
    # The old case's late records stay unreadable although the subject has a live key again.
    await trail.feed(_result("REQ-S-1", "crm", f"phone {PHONE}"), topic=topics.ERASURE_RESULTS)
    responded = example("request-responded.json", request_id="REQ-S-1", reasons=[f"told {PHONE}"])
    await trail.feed(responded)
    old = await _reveal(trail, request_id="REQ-S-1") + await _reveal(trail, case_id="req:REQ-S-1")
    assert old and all(_states(i) <= {"shredded"} for i in old)
    assert PHONE not in json.dumps(old) and email not in json.dumps(old)
    # A re-delivered closure of the old case leaves the new relationship's key alone.
    await trail.feed(closed, topic=topics.ERASURE_CASES)
    again = await _reveal(trail, request_id="REQ-S-2", type="gdpr.request.received")
    assert _states(again[0]) == {"revealed"}


async def test_a_record_that_opens_no_relationship_gets_no_new_key(trail: Trail) -> None:
    email = "denis.roux@example.org"
    await _feed_flow(trail, "REQ-S-3", email)
    await trail.feed(_closed("REQ-S-3"), topic=topics.ERASURE_CASES)
    contact = example("contact-recorded.json")
    contact["data"]["subject"]["identifiers"] = {"email": email}
    await trail.feed(contact, topic=topics.CONTRACTS)
    [item] = await _reveal(trail, subject=email, type=contact["type"])
    assert _states(item) == {"shredded"}
    assert email not in json.dumps(item)
    plain = await trail.http.get(
        "/v1/audit/events", params={"type": contact["type"]}, headers=trail.headers
    )
    [listed] = plain.json()["items"]
    assert _states(listed) == {"shredded"}  # without reveal too: there is nothing to open
    keys = await trail.stored_keys()
    assert all(int(k.get("gen", 1)) == 1 for k in keys)  # no generation was created
