"""Records of one poll as the consumer hands them over: deliveries, partition groups, spans."""

from __future__ import annotations

import dataclasses
from collections.abc import Awaitable, Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from opentelemetry import propagate, trace
from opentelemetry.trace import Link, SpanKind, Status, StatusCode

from shared.events import CloudEvent, parse_event
from shared.events.binding import Header

Where = tuple[str, int, int]  # (topic, partition, offset)


@dataclass(frozen=True)
class Delivery:
    """One Kafka record as received: where it came from, its headers and raw body.

    ``headers`` is a convenience view (decoded, last value wins); ``raw_headers`` are the
    record's headers byte for byte and in order, as the CloudEvents binding reads them.
    ``null_value`` says the record had no value at all (``body`` is then empty).
    """

    topic: str
    partition: int
    offset: int
    key: bytes | None
    headers: dict[str, str]
    body: bytes
    timestamp_ms: int
    raw_headers: tuple[Header, ...] = ()
    null_value: bool = False

    @property
    def where(self) -> Where:
        return (self.topic, self.partition, self.offset)

    def event(self) -> CloudEvent:
        """The record as a validated CloudEvent, in whichever content mode it was sent."""
        return parse_event(self.body, self.raw_headers, self.timestamp_ms)


REF_FIELDS = ("request_id", "case_id", "breach_id", "timer_id")  # ids an event's data names


def log_ids(record: Delivery, item: Any = None) -> dict[str, str | None]:
    """The ids a log line about ``record`` carries (``shared.logs.bind``): where it came
    from, its event id, and the request/case/breach/timer id its data names, if any."""
    ids: dict[str, str | None] = {
        "topic": record.topic,
        "partition": str(record.partition),
        "offset": str(record.offset),
        "event_id": record.headers.get("ce_id"),
    }
    if isinstance(item, CloudEvent):
        ids["event_id"] = item.id
        data = item.data if isinstance(item.data, dict) else {}
        ids.update({k: data[k] for k in REF_FIELDS if isinstance(data.get(k), str)})
    return ids


def delivery(record: Any) -> Delivery:
    """The ``Delivery`` of one aiokafka ``ConsumerRecord``."""
    raw = tuple((str(k), v) for k, v in getattr(record, "headers", ()) or ())
    value = getattr(record, "value", None)
    return Delivery(
        topic=str(record.topic),
        partition=int(record.partition),
        offset=int(record.offset),
        key=getattr(record, "key", None),
        headers={k: (v or b"").decode("utf-8", "replace") for k, v in raw},
        body=bytes(value or b""),
        timestamp_ms=int(getattr(record, "timestamp", 0) or 0),
        raw_headers=raw,
        null_value=value is None,
    )


def by_partition(records: Sequence[Any]) -> list[tuple[tuple[str, int], list[Delivery]]]:
    """The records of a poll grouped per (topic, partition), each group in offset order."""
    groups: dict[tuple[str, int], list[Delivery]] = {}
    for record in records:
        d = delivery(record)
        groups.setdefault((d.topic, d.partition), []).append(d)
    return [(tp, sorted(ds, key=lambda d: d.offset)) for tp, ds in groups.items()]


async def lenient_batch(records: Any, default: Callable[[Any], Awaitable[Any]]) -> Any:
    """FastStream's batch parser, given headers it can decode; the message keeps the records.

    The default parser decodes every header value as UTF-8 and fails on any other bytes
    or a null value, before the consumer could dead-letter the record: it would come back
    for ever. The binding checks the headers it reads itself (``shared.events.binding``).
    """
    readable = tuple(r if _decodable(r.headers) else _readable(r) for r in records)
    message = await default(readable)
    message.raw_message = tuple(records)
    return message


def _decodable(headers: Sequence[tuple[str, bytes | None]]) -> bool:
    try:
        for _, value in headers:
            if value is None:
                return False
            value.decode()
    except UnicodeDecodeError:
        return False
    return True


def _readable(record: Any) -> Any:
    """A copy of ``record`` whose header values all decode (the record itself is kept)."""
    headers = [(k, (v or b"").decode("utf-8", "replace").encode()) for k, v in record.headers]
    return dataclasses.replace(record, headers=headers)


async def raw_bodies(msg: Any) -> Any:
    """Decoder that leaves the bodies as bytes: the consumer parses each record itself.

    FastStream's default decoder would run ``json.loads`` first, and a deeply nested record
    makes that raise RecursionError before the consumer could dead-letter it.
    """
    return msg.body


@contextmanager
def consuming(tracer: trace.Tracer, group: Sequence[Delivery], system: str) -> Iterator[None]:
    """One consumer span per record, each continuing its producer's trace (``traceparent``).

    With one record its span is current while the handler runs (what the handler publishes
    continues that trace); with several, a batch span linked to every record's span is.
    """
    spans = [
        tracer.start_span(
            f"{d.topic} process",
            context=propagate.extract(d.headers),
            kind=SpanKind.CONSUMER,
            attributes={
                "messaging.system": system,
                "messaging.destination.name": d.topic,
                "messaging.destination.partition.id": str(d.partition),
                "messaging.kafka.offset": d.offset,
            },
        )
        for d in group
    ]
    current = spans[0]
    if len(spans) > 1:
        current = tracer.start_span(
            f"{group[0].topic} process batch",
            kind=SpanKind.CONSUMER,
            links=[Link(s.get_span_context()) for s in spans],
            attributes={"messaging.batch.message_count": len(spans)},
        )
        spans.append(current)
    try:
        with trace.use_span(current, end_on_exit=False, record_exception=False):
            yield
    except BaseException as exc:
        for span in spans:
            span.set_status(Status(StatusCode.ERROR, type(exc).__name__))
        raise
    finally:
        for span in spans:
            span.end()
