"""Kafka wiring: broker factory, the batch consumer with its commit policy, dead letters.

Publishing itself is in ``shared.publishing`` (re-exported here).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime

from faststream import AckPolicy
from faststream.kafka import KafkaBroker
from faststream.kafka.annotations import KafkaMessage
from faststream.kafka.opentelemetry import KafkaTelemetryMiddleware
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider

from shared import topics
from shared.deliveries import Delivery, lenient_batch, log_ids, raw_bodies
from shared.events import CloudEvent
from shared.logs import bind
from shared.metrics import Metrics
from shared.polling import MAX_UNEXPECTED_ATTEMPTS, TRANSIENT, Poller, Route
from shared.publishing import producer_of, publish_batch, publish_event, trace_publishes
from shared.settings import Settings

__all__ = [
    "MAX_UNEXPECTED_ATTEMPTS",
    "TRANSIENT",
    "Consumer",
    "Delivery",
    "create_broker",
    "publish_batch",
    "publish_event",
]

log = logging.getLogger(__name__)

Handler = Callable[[CloudEvent], Awaitable[None]]
RawHandler = Callable[[Delivery], Awaitable[None]]
# A batch: the valid events (or raw records) of ONE partition of one poll, in offset order.
BatchHandler = Callable[[Sequence[CloudEvent]], Awaitable[None]]
RawBatchHandler = Callable[[Sequence[Delivery]], Awaitable[None]]

DLQ_REASON = "x-gardien-dlq-reason"
DLQ_TOPIC = "x-gardien-dlq-topic"
DLQ_PARTITION = "x-gardien-dlq-partition"
DLQ_OFFSET = "x-gardien-dlq-offset"
DLQ_SERVICE = "x-gardien-dlq-service"
DLQ_AT = "x-gardien-dlq-at"
DLQ_TIMESTAMP = "x-gardien-dlq-timestamp"  # the original record's timestamp, in ms


def create_broker(settings: Settings, service: str, provider: TracerProvider) -> KafkaBroker:
    """A broker whose publishes are traced with ``provider``; per-message logs only at DEBUG."""
    broker = KafkaBroker(
        settings.kafka_bootstrap_servers,
        client_id=f"gardien-{service}",
        middlewares=[KafkaTelemetryMiddleware(tracer_provider=provider)],
        log_level=logging.DEBUG,
        logger=logging.getLogger("gardien.kafka"),  # our handlers, not FastStream's colours
        request_timeout_ms=10_000,
    )
    trace_publishes(broker, provider)
    return broker


class Consumer(Poller):
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
        tracer = (provider or trace.get_tracer_provider()).get_tracer("gardien.consumer")
        super().__init__(service, metrics or Metrics(service), tracer)
        self.broker = broker
        self.settings = settings

    def events(self, topic: str, handler: Handler, *, dead_letters: bool = True) -> None:
        """Validate each record of ``topic`` as a CloudEvent, then call ``handler``.

        Only the topic's owner dead-letters invalid records (``dead_letters``); other
        consumers of the same topic skip them, so a poison event is dead-lettered once.
        """

        async def each(items: Sequence[CloudEvent]) -> None:
            for event in items:
                await handler(event)

        self._routes[topic] = Route(each, True, dead_letters, True)

    def batches(
        self,
        topic: str,
        handler: BatchHandler,
        *,
        dead_letters: bool = True,
        concurrent: bool = False,
    ) -> None:
        """Like ``events``, but ``handler`` takes the valid events of one partition at once.

        The contract a batch handler relies on: events in offset order, one partition per
        call, invalid records already dead-lettered (by the owner) and left out; the offsets
        are committed only after the handler returns; when it raises an unexpected error the
        events are handed over again one at a time, so that a poison event is found and
        dead-lettered alone. A handler must therefore be idempotent per event.

        ``concurrent``: the handler's partitions are independent of each other, so the
        groups of one poll are handed over at once (each partition still in order).
        """
        self._routes[topic] = Route(handler, True, dead_letters, False, concurrent)

    def raw_batches(
        self, topic: str, handler: RawBatchHandler, *, concurrent: bool = False
    ) -> None:
        """Like ``raw``, but ``handler`` takes the records of one partition at once."""
        self._routes[topic] = Route(handler, False, False, False, concurrent)

    def raw(self, topic: str, handler: RawHandler) -> None:
        """Call ``handler`` with each record of ``topic`` as received, unvalidated."""

        async def each(items: Sequence[Delivery]) -> None:
            for item in items:
                await handler(item)

        self._routes[topic] = Route(each, False, False, True)

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
        await producer_of(self.broker).send_and_wait(
            topics.dlq(record.topic),
            value=value,
            key=record.key,
            headers=headers,
            timestamp_ms=record.timestamp_ms if record.timestamp_ms > 0 else None,
        )
        self.metrics.inc("events_dead_lettered", record.topic)
        with bind(**log_ids(record)):
            log.warning("dead-lettered %s[%d]@%d: %s", *record.where, reason)
