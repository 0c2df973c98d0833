"""The CloudEvents Kafka binding: the official SDK's structured and binary records parse alike."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest
from cloudevents.core.bindings import kafka
from cloudevents.core.formats.json import JSONFormat
from cloudevents.v1 import kafka as v1_kafka
from cloudevents.v1.http import from_json as v1_from_json

from shared.errors import EventRejected
from shared.events import CloudEvent, new_event, parse_event
from shared.events.binding import Header
from tests.support import EXAMPLES, example

VALID = sorted(p.name for p in EXAMPLES.glob("*.json") if p.name != "malformed.json")
STAMP_MS = 1_804_000_000_123  # a record timestamp in 2027


def headers_of(message: Any) -> list[Header]:
    return list(message.headers.items())


def parse(message: Any, record_time_ms: int | None = None) -> CloudEvent:
    """Parse an SDK KafkaMessage as the consumer parses a record."""
    return parse_event(message.value, headers_of(message), record_time_ms)


def binary(event: dict[str, Any], **header_changes: bytes | None) -> list[Header]:
    """The headers of ``event`` in binary mode (from the SDK), with some changed or removed."""
    sdk_event = JSONFormat().read(None, json.dumps(event).encode())
    headers = dict(kafka.to_binary(sdk_event, JSONFormat()).headers)
    for name, value in header_changes.items():
        if value is None:
            headers.pop(name, None)
        else:
            headers[name] = value
    return list(headers.items())


def data_of(event: dict[str, Any]) -> bytes:
    return json.dumps(event["data"]).encode()


@pytest.mark.parametrize("name", VALID)
def test_sdk_binary_and_structured_records_parse_to_the_same_event(name: str) -> None:
    raw = (EXAMPLES / name).read_bytes()
    expected = parse_event(raw)
    sdk_event = JSONFormat().read(None, raw)
    v1_event = v1_from_json(raw)
    messages = [
        kafka.to_binary(sdk_event, JSONFormat()),
        kafka.to_structured(sdk_event, JSONFormat()),
        v1_kafka.to_binary(v1_event),
        v1_kafka.to_structured(v1_event),  # content-type application/json, no ce_ headers
    ]
    for message in messages:
        assert parse(message, STAMP_MS) == expected


@pytest.mark.parametrize("name", VALID)
def test_binary_attributes_are_those_the_sdk_reads(name: str) -> None:
    sdk_event = JSONFormat().read(None, (EXAMPLES / name).read_bytes())
    message = kafka.to_binary(sdk_event, JSONFormat())
    ours = parse(message).model_dump(exclude_none=True)
    theirs = kafka.from_binary(message, JSONFormat())
    assert ours.pop("data") == theirs.get_data()
    assert ours == theirs.get_attributes()


def test_extensions_travel_as_attributes_and_the_key_is_not_added() -> None:
    event = example("request-received.json")
    headers = binary(event, ce_traceparent=b"00-abc-def-01", ce_tenant=b"eu")
    parsed = parse_event(data_of(event), headers, STAMP_MS)
    assert parsed.model_extra == {"traceparent": "00-abc-def-01", "tenant": "eu"}
    assert "partitionkey" not in parsed.model_dump()


def test_header_names_are_matched_case_insensitively() -> None:
    event = example("request-received.json")
    headers = [(name.upper(), value) for name, value in binary(event)]
    assert parse_event(data_of(event), headers).id == event["id"]


@pytest.mark.parametrize("mode", ["binary", "structured"])
def test_missing_time_falls_back_to_the_record_timestamp(mode: str) -> None:
    event = example("request-received.json")
    del event["time"]
    if mode == "binary":
        value, headers = data_of(event), binary(example("request-received.json"), ce_time=None)
    else:
        value, headers = (
            json.dumps(event).encode(),
            [("content-type", b"application/cloudevents+json")],
        )
    parsed = parse_event(value, headers, STAMP_MS)
    assert parsed.time == datetime(2027, 3, 2, 15, 6, 40, 123_000, tzinfo=UTC)
    with pytest.raises(EventRejected, match="time"):
        parse_event(value, headers)  # no record timestamp: time is required


def test_a_time_the_event_carries_wins_over_the_record_timestamp() -> None:
    event = example("request-received.json")
    parsed = parse_event(data_of(event), binary(event), STAMP_MS)
    assert parsed.time == datetime.fromisoformat(event["time"])


@pytest.mark.parametrize(
    ("changes", "expected"),
    [
        ({"ce_specversion": None}, "binary mode: missing header ce_specversion"),
        ({"ce_id": None, "ce_source": None}, "missing header ce_id, ce_source"),
        ({"ce_specversion": b"0.3"}, "header ce_specversion: Input should be '1.0'"),
        ({"ce_time": b"yesterday"}, "header ce_time: Value error, must be an ISO 8601"),
        ({"ce_source": b"\xff\xfe"}, "header ce_source is not UTF-8"),
        ({"ce_subject": None, "ce_id": b""}, "header ce_id: String should have at least 1"),
        ({"content-type": b"application/xml"}, "header content-type: Input should be"),
        ({"ce_data": b"{}"}, "header ce_data is not a CloudEvents attribute"),
        ({"ce_bad-name": b"x"}, "a ce_ header is not named ce_<attribute>"),
        ({"ce_alice@example.org": b"x"}, "a ce_ header is not named ce_<attribute>"),
        ({"ce_type": b"gdpr.request.teleported"}, "unknown event type"),
    ],
)
def test_bad_binary_headers_are_named_precisely(
    changes: dict[str, bytes | None], expected: str
) -> None:
    event = example("request-received.json")
    with pytest.raises(EventRejected) as caught:
        parse_event(data_of(event), binary(event, **changes), STAMP_MS)
    assert expected in caught.value.reason
    assert "alice" not in caught.value.reason.lower()


def test_a_header_without_value_or_twice_is_refused() -> None:
    event = example("request-received.json")
    headers = binary(event)
    with pytest.raises(EventRejected, match="header ce_subject has no value"):
        parse_event(data_of(event), [*headers, ("ce_subject", None)])
    with pytest.raises(EventRejected, match="header ce_id appears more than once"):
        parse_event(data_of(event), [*headers, ("ce_id", b"other")])
    with pytest.raises(EventRejected, match="header content-type appears more than once"):
        parse_event(data_of(event), [*headers, ("content-type", b"application/json")])


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (b'{"request_id": ', "binary mode: value not JSON"),
        (b"[1, 2]", "the record value: Input should be a valid dictionary"),
        (b"[" * 100_000 + b"]" * 100_000, "nested too deeply"),
        (b"", "invalid data for gdpr.request.received"),  # no data: the fields are missing
    ],
)
def test_a_bad_binary_value_is_refused(value: bytes, expected: str) -> None:
    headers = binary(example("request-received.json"))
    with pytest.raises(EventRejected, match=expected):
        parse_event(value, headers)


def test_binary_reasons_never_quote_personal_values() -> None:
    event = example("request-received.json", right="forget_me")
    headers = binary(event, ce_subject=b"alice.martin@example.org")
    with pytest.raises(EventRejected) as caught:
        parse_event(data_of(event), headers)
    assert "right" in caught.value.reason
    assert "alice" not in caught.value.reason and "forget_me" not in caught.value.reason


@pytest.mark.parametrize(
    ("content_type", "expected"),
    [
        (b"application/cloudevents-batch+json", "batch content mode is not part"),
        (b"application/cloudevents+avro", "only the JSON event format"),
    ],
)
def test_unsupported_content_types_are_refused(content_type: bytes, expected: str) -> None:
    raw = (EXAMPLES / "request-received.json").read_bytes()
    with pytest.raises(EventRejected, match=expected):
        parse_event(raw, [("content-type", content_type)])


def test_structured_mode_wins_over_ce_headers_when_the_content_type_says_so() -> None:
    """Gardien's own records: structured, with a ce_type header for routing."""
    refused = {"request_id": "R1", "cause": "gdpr.request.extended", "status": "received",
               "reason": "not allowed"}  # fmt: skip
    event = new_event("gardien.request.transition_refused", refused, source="t")
    headers = [
        ("content-type", b"Application/CloudEvents+JSON; charset=UTF-8"),
        ("ce_type", event.type.encode()),
    ]
    assert parse_event(event.to_json(), headers) == event


@pytest.mark.parametrize("content_type", ["application/json; charset=utf-8", "APPLICATION/JSON"])
def test_json_data_content_type_may_carry_a_utf8_charset(content_type: str) -> None:
    event = example("request-received.json")
    headers = binary(event, **{"content-type": content_type.encode()})
    assert parse_event(data_of(event), headers).datacontenttype == "application/json"
    structured = {**event, "datacontenttype": content_type}
    assert parse_event(json.dumps(structured)).datacontenttype == "application/json"
    with pytest.raises(EventRejected, match="datacontenttype"):
        parse_event(json.dumps({**event, "datacontenttype": "application/json; charset=latin-1"}))


@pytest.mark.parametrize("name", VALID)
def test_gardien_binary_records_round_trip_and_read_as_the_sdk_reads_them(name: str) -> None:
    event = parse_event((EXAMPLES / name).read_bytes())
    headers, value = event.to_binary()
    assert parse_event(value, headers) == event
    assert all(n.startswith("ce_") or n == "content-type" for n, _ in headers)
    theirs = kafka.from_binary(kafka.KafkaMessage(dict(headers), None, value), JSONFormat())
    assert theirs.get_data() == event.data
    ours = event.model_dump(exclude_none=True)
    del ours["data"]
    assert theirs.get_attributes() == ours


def test_binary_extensions_are_sent_as_strings() -> None:
    event = parse_event(json.dumps({**example("request-received.json"), "priority": 3}))
    headers, _ = event.to_binary()
    assert ("ce_priority", b"3") in headers


def test_internal_events_are_typed_once_and_refused_when_their_data_breaks_the_contract() -> None:
    from shared.events.internal import RequestTransitionRefused

    data = {"request_id": "R1", "cause": "c", "status": "received", "reason": "r"}
    parsed = parse_event(
        new_event("gardien.request.transition_refused", data, source="t").to_json()
    )
    typed = parsed.payload()
    assert isinstance(typed, RequestTransitionRefused) and typed.status == "received"
    assert parsed.payload() is typed  # validated once, by parse_event
    assert parsed.data_as(RequestTransitionRefused) is typed
    for bad_type, bad in (
        ("gardien.request.transition_refused", {"request_id": "R1"}),
        ("gardien.request.no_such_type", data),
    ):
        with pytest.raises(EventRejected):
            parse_event(new_event(bad_type, bad, source="t").to_json())
