"""Kafka wiring: broker factory, subscribers with an explicit ack policy, dead letters."""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError
from faststream import AckPolicy
from faststream.kafka import KafkaBroker
from faststream.kafka.annotations import KafkaMessage
from faststream.kafka.opentelemetry import KafkaTelemetryMiddleware
from opentelemetry.sdk.trace import TracerProvider
from pymongo.errors import ConnectionFailure, OperationFailure

from shared import topics
from shared.errors import EventRejected, PermanentError, TransientError
from shared.events import CloudEvent, parse_event, topic_for_type
from shared.events.binding import Header
from shared.metrics import Metrics
from shared.settings import Settings

log = logging.getLogger(__name__)

Handler = Callable[[CloudEvent], Awaitable[None]]


@dataclass(frozen=True)
class Delivery:
    """One Kafka record as received: where it came from, its headers and raw body.

    ``headers`` is a convenience view (decoded, last value wins); ``raw_headers`` are the
    record's headers byte for byte and in order, as the CloudEvents binding reads them.
    """

    topic: str
    partition: int
    offset: int
    key: bytes | None
    headers: dict[str, str]
    body: bytes
    timestamp_ms: int
    raw_headers: tuple[Header, ...] = ()

    def event(self) -> CloudEvent:
        """The record as a validated CloudEvent, in whichever content mode it was sent."""
        return parse_event(self.body, self.raw_headers, self.timestamp_ms)


RawHandler = Callable[[Delivery], Awaitable[None]]
# A batch: the valid events (or raw records) of ONE partition of one poll, in offset order.
BatchHandler = Callable[[Sequence[CloudEvent]], Awaitable[None]]
RawBatchHandler = Callable[[Sequence[Delivery]], Awaitable[None]]

# Errors that say "try again later": the message is not committed and comes back.
TRANSIENT = (TransientError, ConnectionFailure, KafkaError, OSError, asyncio.TimeoutError)
# Unexpected errors are retried this many times, then dead-lettered with their type.
MAX_UNEXPECTED_ATTEMPTS = 5

DLQ_REASON = "x-gardien-dlq-reason"
DLQ_TOPIC = "x-gardien-dlq-topic"
DLQ_PARTITION = "x-gardien-dlq-partition"
DLQ_OFFSET = "x-gardien-dlq-offset"
DLQ_SERVICE = "x-gardien-dlq-service"
DLQ_AT = "x-gardien-dlq-at"
DLQ_TIMESTAMP = "x-gardien-dlq-timestamp"  # the original record's timestamp, in ms


def create_broker(settings: Settings, service: str, provider: TracerProvider) -> KafkaBroker:
    """A broker whose messages carry trace context; per-message logs only at DEBUG."""
    return KafkaBroker(
        settings.kafka_bootstrap_servers,
        client_id=f"gardien-{service}",
        middlewares=[KafkaTelemetryMiddleware(tracer_provider=provider)],
        log_level=logging.DEBUG,
        logger=logging.getLogger("gardien.kafka"),  # our handlers, not FastStream's colours
        request_timeout_ms=10_000,
    )


async def publish_event(
    broker: KafkaBroker, event: CloudEvent, key: str, *, binary: bool = False
) -> None:
    """Publish ``event`` to the topic of its type, keyed by its aggregate id.

    Structured mode by default; ``binary`` sends the attributes as ``ce_*`` headers and the
    data as the value (both modes are read alike, see ``shared.events.binding``).
    """
    if binary:
        raw_headers, body = event.to_binary()
        headers = {name: value.decode() for name, value in raw_headers}
    else:
        body = event.to_json()
        headers = {"content-type": "application/cloudevents+json", "ce_type": event.type}
    await broker.publish(body, topic=topic_for_type(event.type), key=key.encode(), headers=headers)


class Consumer:
    """Registers subscribers that commit only after the handler's durable write."""

    def __init__(
        self, broker: KafkaBroker, settings: Settings, service: str, metrics: Metrics | None = None
    ) -> None:
        self.metrics = metrics or Metrics(service)
        self.broker = broker
        self.settings = settings
        self.service = service
        self._attempts: dict[tuple[str, int, int], int] = {}
        self._routes: dict[str, Callable[[KafkaMessage], Awaitable[None]]] = {}

    def events(self, topic: str, handler: Handler, *, dead_letters: bool = True) -> None:
        """Validate each record of ``topic`` as a CloudEvent, then call ``handler``.

        Only the topic's owner dead-letters invalid records (``dead_letters``); other
        consumers of the same topic skip them, so a poison event is dead-lettered once.
        """

        async def on_record(msg: KafkaMessage) -> None:
            await self._process(msg, topic, handler, dead_letters)

        self._routes[topic] = on_record

    def batches(self, topic: str, handler: BatchHandler, *, dead_letters: bool = True) -> None:
        """Like ``events``, but ``handler`` takes the valid events of one partition at once.

        The contract a batch handler relies on: events in offset order, one partition per
        call, invalid records already dead-lettered (by the owner) and left out; the offsets
        are committed only after the handler returns; when it raises an unexpected error the
        events are handed over again one at a time, so that a poison event is found and
        dead-lettered alone. A handler must therefore be idempotent per event.
        """

        async def each(event: CloudEvent) -> None:
            await handler([event])

        self.events(topic, each, dead_letters=dead_letters)

    def raw_batches(self, topic: str, handler: RawBatchHandler) -> None:
        """Like ``raw``, but ``handler`` takes the records of one partition at once."""

        async def each(delivery: Delivery) -> None:
            await handler([delivery])

        self.raw(topic, each)

    def raw(self, topic: str, handler: RawHandler) -> None:
        """Call ``handler`` with each record of ``topic`` as received, unvalidated."""

        async def on_record(msg: KafkaMessage) -> None:
            delivery = _delivery(msg, topic)
            await self._guard(msg, topic, lambda: handler(delivery))

        self._routes[topic] = on_record

    @property
    def group(self) -> str:
        """The consumer group of this service (one per service)."""
        return f"gardien-{self.service}"

    def topics(self) -> list[str]:
        """The topics this consumer reads (for the AsyncAPI description)."""
        return sorted(self._routes)

    def subscribe(self) -> None:
        """One consumer-group member for every routed topic (one group per service)."""
        if not self._routes:
            return
        routes = dict(self._routes)

        async def on_record(msg: KafkaMessage) -> None:
            topic = str(getattr(msg.raw_message, "topic", ""))
            route = routes.get(topic)
            if route is None:  # pragma: no cover - the consumer only subscribes to routes
                raise PermanentError(f"no route for topic {topic}")
            await route(msg)

        self.broker.subscriber(
            *sorted(routes),
            parser=_lenient_headers,
            decoder=_raw_body,
            group_id=self.group,
            ack_policy=AckPolicy.NACK_ON_ERROR,
            auto_offset_reset="earliest",
            fetch_max_wait_ms=self.settings.gardien_fetch_max_wait_ms,
            session_timeout_ms=self.settings.gardien_kafka_session_timeout_ms,
            heartbeat_interval_ms=max(300, self.settings.gardien_kafka_session_timeout_ms // 3),
            title=f"{self.service}",
        )(on_record)

    async def _process(
        self, msg: KafkaMessage, topic: str, handler: Handler, dead_letters: bool
    ) -> None:
        try:
            event = _delivery(msg, topic).event()
            expected = topic_for_type(event.type)
            if expected != topic:
                raise EventRejected(f"event type {event.type} belongs on {expected}, not {topic}")
        except EventRejected as exc:
            if dead_letters:
                await self.dead_letter(msg, topic, exc.reason)
            return
        except Exception as exc:  # a record that breaks the parser must not block its partition
            log.exception(
                "unexpected failure parsing %s[%d]@%d", topic, _partition(msg), _offset(msg)
            )
            if dead_letters:
                await self.dead_letter(msg, topic, f"could not be parsed: {type(exc).__name__}")
            return
        await self._guard(msg, topic, lambda: handler(event))

    async def _guard(
        self, msg: KafkaMessage, topic: str, call: Callable[[], Awaitable[None]]
    ) -> None:
        where = (topic, _partition(msg), _offset(msg))
        try:
            await call()
        except PermanentError as exc:
            await self.dead_letter(msg, topic, exc.reason)
        except TRANSIENT as exc:
            await self._back_off(where, exc, unexpected=False)
            raise
        except OperationFailure as exc:
            if not await self._back_off(where, exc, unexpected=True):
                await self.dead_letter(msg, topic, f"store refused the write: code {exc.code}")
                return
            raise
        except Exception as exc:
            if not await self._back_off(where, exc, unexpected=True):
                reason = f"handler failed {MAX_UNEXPECTED_ATTEMPTS} times: {type(exc).__name__}"
                await self.dead_letter(msg, topic, reason)
                return
            raise
        else:
            self._attempts.pop(where, None)
            self.metrics.inc("events_processed", topic)

    async def _back_off(
        self, where: tuple[str, int, int], exc: Exception, *, unexpected: bool
    ) -> bool:
        """Sleep before redelivery; False once an unexpected error has used its attempts."""
        attempt = self._attempts.get(where, 0) + 1
        if unexpected and attempt >= MAX_UNEXPECTED_ATTEMPTS:
            self._attempts.pop(where, None)
            log.exception("giving up on %s[%d]@%d", *where, exc_info=exc)
            return False
        self._attempts[where] = attempt
        delay = min(0.2 * 2 ** (attempt - 1), 30.0)
        log.warning(
            "retrying %s[%d]@%d in %.1fs after %s (attempt %d)",
            *where,
            delay,
            type(exc).__name__,
            attempt,
        )
        await asyncio.sleep(delay)
        return True

    async def dead_letter(self, msg: KafkaMessage, topic: str, reason: str) -> None:
        """Copy the record as received to ``<topic>.dlq``, the reason in added headers.

        The copy keeps the key, value, timestamp and every original header byte for byte
        and in order (so the event can be rebuilt and re-driven); the ``x-gardien-dlq-*``
        headers follow them.
        """
        record = _delivery(msg, topic)
        added = {
            DLQ_REASON: reason[:1000],
            DLQ_TOPIC: topic,
            DLQ_PARTITION: str(record.partition),
            DLQ_OFFSET: str(record.offset),
            DLQ_SERVICE: self.service,
            DLQ_AT: datetime.now(UTC).isoformat(),
            DLQ_TIMESTAMP: str(record.timestamp_ms),
        }
        headers = [*record.raw_headers, *((k, v.encode()) for k, v in added.items())]
        value = getattr(msg.raw_message, "value", None)  # None stays None (binary: no data)
        await _producer(self.broker).send_and_wait(
            topics.dlq(topic),
            value=value if value is not None or record.key is not None else b"",
            key=record.key,
            headers=headers,
            timestamp_ms=record.timestamp_ms if record.timestamp_ms > 0 else None,
        )
        self.metrics.inc("events_dead_lettered", topic)
        log.warning("dead-lettered %s[%d]@%d: %s", topic, _partition(msg), _offset(msg), reason)


async def _raw_body(msg: Any) -> bytes:
    """Decoder that leaves the body as bytes: handlers parse it themselves.

    FastStream's default decoder would run ``json.loads`` first, and a deeply nested record
    makes that raise RecursionError before any handler could dead-letter it.
    """
    return bytes(msg.body)


async def _lenient_headers(record: Any, default: Callable[[Any], Awaitable[Any]]) -> Any:
    """FastStream's parser, given headers it can decode; the message keeps the record as is.

    The default parser decodes every header value as UTF-8 and fails on any other bytes
    or a null value, before a handler could dead-letter the record: it would come back
    for ever. The binding checks the headers it reads itself (``shared.events.binding``).
    """
    readable = [(k, (v or b"").decode("utf-8", "replace").encode()) for k, v in record.headers]
    message = await default(dataclasses.replace(record, headers=readable))
    message.raw_message = record
    return message


def _delivery(msg: KafkaMessage, topic: str) -> Delivery:
    raw = msg.raw_message
    return Delivery(
        topic=topic,
        partition=_partition(msg),
        offset=_offset(msg),
        key=getattr(raw, "key", None),
        body=msg.body,
        headers={k: str(v) for k, v in msg.headers.items()},
        timestamp_ms=int(getattr(raw, "timestamp", 0) or 0),
        raw_headers=tuple((str(k), v) for k, v in getattr(raw, "headers", ()) or ()),
    )


def _producer(broker: KafkaBroker) -> AIOKafkaProducer:
    """The broker's aiokafka producer: FastStream's publish re-encodes headers as text."""
    producer = broker.config.producer._producer.producer  # type: ignore[attr-defined]
    assert isinstance(producer, AIOKafkaProducer)
    return producer


def _partition(msg: KafkaMessage) -> int:
    return int(getattr(msg.raw_message, "partition", -1))


def _offset(msg: KafkaMessage) -> int:
    return int(getattr(msg.raw_message, "offset", -1))
