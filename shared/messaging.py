"""Kafka wiring: broker factory, the batch consumer with its commit policy, dead letters."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from aiokafka import AIOKafkaProducer, TopicPartition
from aiokafka.errors import KafkaError
from faststream import AckPolicy
from faststream.kafka import KafkaBroker
from faststream.kafka.annotations import KafkaMessage
from faststream.kafka.opentelemetry import KafkaTelemetryMiddleware
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from pymongo.errors import ConnectionFailure, OperationFailure

from shared import topics
from shared.deliveries import Delivery, Where, by_partition, consuming, lenient_batch, raw_bodies
from shared.errors import EventRejected, PermanentError, TransientError
from shared.events import CloudEvent, topic_for_type
from shared.metrics import Metrics
from shared.settings import Settings

__all__ = ["Consumer", "Delivery", "create_broker", "publish_event"]

log = logging.getLogger(__name__)

Handler = Callable[[CloudEvent], Awaitable[None]]


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


@dataclass(frozen=True)
class _Route:
    """How the records of one topic are handed over."""

    call: Callable[[Sequence[Any]], Awaitable[None]]
    parse: bool  # validate each record as a CloudEvent first (else: the Delivery as is)
    dead_letters: bool  # this consumer owns the topic: it dead-letters invalid records
    per_record: bool  # the handler takes one item: call it for each, one after another


class Consumer:
    """One consumer-group member per service; each poll is handled as per-partition batches.

    Offsets are committed once every record of the poll is handled or dead-lettered; on a
    transient failure nothing of the poll is committed and the partition is rewound.
    """

    def __init__(
        self,
        broker: KafkaBroker,
        settings: Settings,
        service: str,
        metrics: Metrics | None = None,
        provider: TracerProvider | None = None,
    ) -> None:
        self.metrics = metrics or Metrics(service)
        self.broker = broker
        self.settings = settings
        self.service = service
        self.tracer = (provider or trace.get_tracer_provider()).get_tracer("gardien.consumer")
        self._attempts: dict[Where, int] = {}
        # Records dead-lettered in a poll not committed yet: not dead-lettered again.
        self._settled: set[Where] = set()
        self._routes: dict[str, _Route] = {}

    def events(self, topic: str, handler: Handler, *, dead_letters: bool = True) -> None:
        """Validate each record of ``topic`` as a CloudEvent, then call ``handler``.

        Only the topic's owner dead-letters invalid records (``dead_letters``); other
        consumers of the same topic skip them, so a poison event is dead-lettered once.
        """

        async def each(items: Sequence[CloudEvent]) -> None:
            for event in items:
                await handler(event)

        self._routes[topic] = _Route(each, True, dead_letters, True)

    def batches(self, topic: str, handler: BatchHandler, *, dead_letters: bool = True) -> None:
        """Like ``events``, but ``handler`` takes the valid events of one partition at once.

        The contract a batch handler relies on: events in offset order, one partition per
        call, invalid records already dead-lettered (by the owner) and left out; the offsets
        are committed only after the handler returns; when it raises an unexpected error the
        events are handed over again one at a time, so that a poison event is found and
        dead-lettered alone. A handler must therefore be idempotent per event.
        """
        self._routes[topic] = _Route(handler, True, dead_letters, False)

    def raw_batches(self, topic: str, handler: RawBatchHandler) -> None:
        """Like ``raw``, but ``handler`` takes the records of one partition at once."""
        self._routes[topic] = _Route(handler, False, False, False)

    def raw(self, topic: str, handler: RawHandler) -> None:
        """Call ``handler`` with each record of ``topic`` as received, unvalidated."""

        async def each(items: Sequence[Delivery]) -> None:
            for item in items:
                await handler(item)

        self._routes[topic] = _Route(each, False, False, True)

    @property
    def group(self) -> str:
        """The consumer group of this service (one per service)."""
        return f"gardien-{self.service}"

    def topics(self) -> list[str]:
        """The topics this consumer reads (for the AsyncAPI description)."""
        return sorted(self._routes)

    def subscribe(self) -> None:
        """One batch subscriber over every routed topic (one group, one member per service)."""
        if not self._routes:
            return

        async def on_poll(msg: KafkaMessage) -> None:
            await self.handle_poll(tuple(msg.raw_message), msg.consumer)

        self.broker.subscriber(
            *sorted(self._routes),
            batch=True,
            max_records=self.settings.gardien_poll_max_records,
            batch_timeout_ms=self.settings.gardien_fetch_max_wait_ms,
            parser=lenient_batch,
            decoder=raw_bodies,
            group_id=self.group,
            ack_policy=AckPolicy.MANUAL,  # committed and rewound by handle_poll itself
            auto_offset_reset="earliest",
            fetch_max_wait_ms=self.settings.gardien_fetch_max_wait_ms,
            session_timeout_ms=self.settings.gardien_kafka_session_timeout_ms,
            heartbeat_interval_ms=max(300, self.settings.gardien_kafka_session_timeout_ms // 3),
            title=f"{self.service}",
        )(on_poll)

    async def handle_poll(self, records: Sequence[Any], consumer: Any) -> None:
        """Handle one poll group by group, then commit it; rewind instead on a failure."""
        groups = by_partition(records)
        rewind: dict[TopicPartition, int] = {}
        try:
            for (topic, partition), group in groups:
                tp = TopicPartition(topic, partition)
                if rewind:  # a transient failure: the rest comes again with the rewound poll
                    rewind[tp] = group[0].offset
                    continue
                back = await self._group(self._routes[topic], group)
                if back is not None:
                    rewind[tp] = back
        except Exception:
            for (topic, partition), group in groups:  # nothing of this poll may be committed
                consumer.seek(TopicPartition(topic, partition), group[0].offset)
            raise
        if rewind:
            for tp, offset in rewind.items():
                consumer.seek(tp, offset)
            return
        try:
            await consumer.commit()
        except KafkaError as exc:  # the group moved on (rebalance): its new owner re-reads
            log.warning("commit failed after a poll: %s", type(exc).__name__)
            return
        if len(self._settled) > 10_000:
            self._settled.clear()
        self._settled.difference_update(d.where for _, group in groups for d in group)

    async def _group(self, route: _Route, group: list[Delivery]) -> int | None:
        """Handle one partition's records; the offset to rewind to after a transient failure."""
        items, poison = self._parsed(route, group)
        if poison:
            await asyncio.gather(*(self.dead_letter(d, reason) for d, reason in poison))
            self._settled.update(d.where for d, _ in poison)
        if not items:
            return None
        if route.per_record:
            return await self._one_by_one(route, items)
        started, first = time.perf_counter(), items[0][0]
        try:
            with consuming(self.tracer, [d for d, _ in items], "kafka"):
                await route.call([item for _, item in items])
        except TRANSIENT as exc:
            self._timed(first.topic, items, started, ok=False)
            await self._back_off(first.where, exc, unexpected=False)
            return first.offset
        except Exception as exc:
            self._timed(first.topic, items, started, ok=False)
            log.warning(
                "batch of %d from %s[%d]@%d failed (%s): replaying one by one",
                len(items),
                *first.where,
                type(exc).__name__,
            )
            return await self._one_by_one(route, items)
        self._timed(first.topic, items, started, ok=True)
        for d, _ in items:
            self._attempts.pop(d.where, None)
            self.metrics.inc("events_processed", d.topic)
        return None

    def _parsed(
        self, route: _Route, group: list[Delivery]
    ) -> tuple[list[tuple[Delivery, Any]], list[tuple[Delivery, str]]]:
        """(records to hand over with their item, invalid records to dead-letter)."""
        items: list[tuple[Delivery, Any]] = []
        poison: list[tuple[Delivery, str]] = []
        for d in group:
            if d.where in self._settled:
                continue  # dead-lettered before a rewind of its poll
            if not route.parse:
                items.append((d, d))
                continue
            try:
                event = d.event()
                expected = topic_for_type(event.type)
                if expected != d.topic:
                    raise EventRejected(f"event type {event.type} belongs on {expected}")
                items.append((d, event))
            except EventRejected as exc:
                if route.dead_letters:
                    poison.append((d, exc.reason))
            except Exception as exc:  # a record that breaks the parser must not block it
                log.exception("unexpected failure parsing %s[%d]@%d", *d.where)
                if route.dead_letters:
                    poison.append((d, f"could not be parsed: {type(exc).__name__}"))
        return items, poison

    async def _one_by_one(self, route: _Route, items: list[tuple[Delivery, Any]]) -> int | None:
        for d, item in items:
            if not await self._guard(route, d, item):
                return d.offset
        return None

    async def _guard(self, route: _Route, d: Delivery, item: Any) -> bool:
        """Handle one record until done or dead-lettered; False after a transient failure."""
        while True:
            started = time.perf_counter()
            try:
                with consuming(self.tracer, [d], "kafka"):
                    await route.call([item])
            except PermanentError as exc:
                await self.dead_letter(d, exc.reason)
            except TRANSIENT as exc:
                await self._back_off(d.where, exc, unexpected=False)
                return False
            except OperationFailure as exc:
                if await self._back_off(d.where, exc, unexpected=True):
                    continue
                await self.dead_letter(d, f"store refused the write: code {exc.code}")
            except Exception as exc:
                if await self._back_off(d.where, exc, unexpected=True):
                    continue
                reason = f"handler failed {MAX_UNEXPECTED_ATTEMPTS} times: {type(exc).__name__}"
                await self.dead_letter(d, reason)
            else:
                self._timed(d.topic, [(d, item)], started, ok=True)
                self._attempts.pop(d.where, None)
                self.metrics.inc("events_processed", d.topic)
            return True

    def _timed(
        self, topic: str, items: list[tuple[Delivery, Any]], started: float, *, ok: bool
    ) -> None:
        types = {getattr(item, "type", None) or d.headers.get("ce_type", "") for d, item in items}
        kind = types.pop() if len(types) == 1 else "mixed"
        self.metrics.handled(topic, self.group, kind, time.perf_counter() - started, ok)

    async def _back_off(self, where: Where, exc: Exception, *, unexpected: bool) -> bool:
        """Sleep before the next attempt; False once an unexpected error used its attempts."""
        attempt = self._attempts.get(where, 0) + 1
        if unexpected and attempt >= MAX_UNEXPECTED_ATTEMPTS:
            self._attempts.pop(where, None)
            log.error("giving up on %s[%d]@%d", *where, exc_info=exc)
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

    async def dead_letter(self, record: Delivery, reason: str) -> None:
        """Copy the record as received to ``<topic>.dlq``, the reason in added headers.

        The copy keeps the key, value, timestamp and every original header byte for byte
        and in order (so the event can be rebuilt and re-driven); the ``x-gardien-dlq-*``
        headers follow them.
        """
        added = {
            DLQ_REASON: reason[:1000],
            DLQ_TOPIC: record.topic,
            DLQ_PARTITION: str(record.partition),
            DLQ_OFFSET: str(record.offset),
            DLQ_SERVICE: self.service,
            DLQ_AT: datetime.now(UTC).isoformat(),
            DLQ_TIMESTAMP: str(record.timestamp_ms),
        }
        headers = [*record.raw_headers, *((k, v.encode()) for k, v in added.items())]
        # A record without value keeps none (binary mode, no data), unless it has no key either.
        value = None if record.null_value and record.key is not None else record.body
        await _producer(self.broker).send_and_wait(
            topics.dlq(record.topic),
            value=value,
            key=record.key,
            headers=headers,
            timestamp_ms=record.timestamp_ms if record.timestamp_ms > 0 else None,
        )
        self.metrics.inc("events_dead_lettered", record.topic)
        log.warning("dead-lettered %s[%d]@%d: %s", *record.where, reason)


def _producer(broker: KafkaBroker) -> AIOKafkaProducer:
    """The broker's aiokafka producer: FastStream's publish re-encodes headers as text."""
    producer = broker.config.producer._producer.producer  # type: ignore[attr-defined]
    assert isinstance(producer, AIOKafkaProducer)
    return producer
