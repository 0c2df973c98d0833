"""The CloudEvents envelope and inbound data models: accept the contract, refuse the rest."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from shared.errors import EventRejected
from shared.events import EVENT_TYPES, aggregate_key, parse_event, topic_for_type
from tests.support import EXAMPLES, example

VALID = sorted(p.name for p in EXAMPLES.glob("*.json") if p.name != "malformed.json")


@pytest.mark.parametrize("name", VALID)
def test_every_example_is_valid_and_routed(name: str) -> None:
    event = parse_event((EXAMPLES / name).read_text())
    assert topic_for_type(event.type) == EVENT_TYPES[event.type][1]
    assert "@" not in aggregate_key(event)


def test_every_inbound_type_has_an_example() -> None:
    seen = {json.loads((EXAMPLES / n).read_text())["type"] for n in VALID}
    assert seen == set(EVENT_TYPES)


@pytest.mark.parametrize(
    ("mutate", "expected"),
    [
        (lambda e: e.update(type="gdpr.request.teleported"), "unknown event type"),
        (lambda e: e.update(specversion="0.3"), "specversion"),
        (lambda e: e.update(time="2027-03-05T16:45:00"), "time"),
        (lambda e: e["data"].update(received_at="2027-03-05T16:45:00"), "timezone"),
        (lambda e: e["data"].update(received_at="2026-02-29T10:00:00+01:00"), "received_at"),
        (lambda e: e["data"].update(right="forget_me"), "right"),
        (lambda e: e["data"].update(request_id="x" * 500), "request_id"),
        (lambda e: e["data"]["subject"].update(identifiers={}), "at least one identifier"),
        (lambda e: e["data"].pop("channel"), "channel"),
    ],
)
def test_invalid_events_are_rejected_with_a_value_free_reason(mutate, expected: str) -> None:  # type: ignore[no-untyped-def]
    event = example("request-received.json")
    mutate(event)
    with pytest.raises(EventRejected) as caught:
        parse_event(json.dumps(event))
    assert expected in caught.value.reason
    assert "alice" not in caught.value.reason.lower()


@pytest.mark.parametrize("raw", [b"{", b"[]", b"\xff\xfe", b"x" * 1_000_001, b"null"])
def test_garbage_is_rejected(raw: bytes) -> None:
    with pytest.raises(EventRejected):
        parse_event(raw)


def test_refusal_without_reasons_is_rejected() -> None:
    event = example("request-responded.json", outcome="refused")
    with pytest.raises(EventRejected, match="needs reasons"):
        parse_event(json.dumps(event))


def test_processor_report_needs_processor_awareness_time() -> None:
    event = example("breach-detected.json", reported_by="processor")
    with pytest.raises(EventRejected, match="processor_aware_at"):
        parse_event(json.dumps(event))


def test_unknown_data_fields_are_tolerated(tmp_path: Path) -> None:
    event = example("request-received.json", crm_segment="gold")
    assert parse_event(json.dumps(event)).data["crm_segment"] == "gold"


def test_deeply_nested_json_is_rejected_not_raised() -> None:
    with pytest.raises(EventRejected, match="not JSON"):
        parse_event(b"[" * 100_000 + b"]" * 100_000)


@pytest.mark.parametrize("when", [0, 123, 1.7e9, "1700000000", "  1700000000 ", True])
def test_numbers_are_not_instants(when: object) -> None:
    event = example("request-received.json", received_at=when)
    with pytest.raises(EventRejected, match="received_at"):
        parse_event(json.dumps(event))
    envelope = example("request-received.json")
    envelope["time"] = when
    with pytest.raises(EventRejected, match="time"):
        parse_event(json.dumps(envelope))
