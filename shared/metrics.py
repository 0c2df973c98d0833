"""Metrics through the OpenTelemetry SDK: Prometheus text at ``/metrics``, OTLP when configured.

Names and attributes follow the OpenTelemetry messaging and HTTP semantic conventions where
they define one (``messaging.process.duration``, ``messaging.client.consumed.messages``,
``http.server.request.duration``); Gardien's own figures are under ``gardien.*``. Attribute
values are topics, event types, partitions, outcomes and service names: never personal data.

Observable figures that need a database read (timers pending, open cases, outbox backlog) are
refreshed by one background task per process (``refresh_every`` seconds) and reported from
memory: OpenTelemetry's callbacks are synchronous and a scrape must never wait on MongoDB.
Each source is read on its own, bounded by its own timeout, so a slow figure (one that grows
with the data) never holds up a quick one such as the consumer lag; and a long read is not
started again before ten times its length has passed (``READ_SHARE``), so the figures never
take more than a tenth of the store's time.
"""

from __future__ import annotations

import asyncio
import logging
import resource
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from opentelemetry.exporter.prometheus import PrometheusMetricReader
from opentelemetry.metrics import CallbackOptions, Meter, Observation
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import MetricReader
from opentelemetry.sdk.resources import Resource
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

if TYPE_CHECKING:
    from shared.settings import Settings

log = logging.getLogger(__name__)

Attributes = Mapping[str, str | int]
# A source of one observable figure: {attributes: value}, computed asynchronously.
Key = tuple[tuple[str, str | int], ...]  # a gauge's attributes, as sorted pairs
GaugeSource = Callable[[], Awaitable[Mapping[Key, float]]]

# Seconds; the default OTel buckets are in milliseconds-sized steps and miss fast handlers.
DURATION_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)
PROMETHEUS_CONTENT_TYPE = CONTENT_TYPE_LATEST
SOURCE_TIMEOUT = 5.0  # seconds one gauge's source may take per refresh, unless it says more
# A source is read again no sooner than this many times its last read's length after it
# started, so a read that grows with the data keeps to a tenth of the store's time.
READ_SHARE = 10


def _meter_provider(
    service: str, settings: Settings | None
) -> tuple[MeterProvider, CollectorRegistry]:
    from opentelemetry.sdk.metrics.view import ExplicitBucketHistogramAggregation, View

    registry = CollectorRegistry(auto_describe=True)
    readers: list[MetricReader] = [PrometheusMetricReader(registry=registry)]
    if settings is not None and settings.otel_exporter_otlp_endpoint:
        from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter
        from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader

        endpoint = settings.otel_exporter_otlp_endpoint.rstrip("/") + "/v1/metrics"
        readers.append(PeriodicExportingMetricReader(OTLPMetricExporter(endpoint=endpoint)))
    name = (settings.otel_service_name if settings else None) or f"gardien-{service}"
    views = [
        View(
            instrument_name="*duration",
            aggregation=ExplicitBucketHistogramAggregation(DURATION_BUCKETS),
        )
    ]
    provider = MeterProvider(
        resource=Resource.create({"service.name": name}), metric_readers=readers, views=views
    )
    return provider, registry


@dataclass
class _Gauge:
    source: GaugeSource
    every: float = 0.0  # seconds between two reads of the source (0: every refresh)
    timeout: float | None = None  # seconds one read may take (None: SOURCE_TIMEOUT)
    values: dict[Key, float] = field(default_factory=dict)
    read_at: float = float("-inf")  # monotonic time of the last read
    took: float = 0.0  # seconds the last read took

    def observe(self, _options: CallbackOptions) -> Iterable[Observation]:
        return [Observation(v, dict(k)) for k, v in self.values.items()]


class Metrics:
    """The instruments of one process, and its Prometheus exposition."""

    def __init__(
        self, service: str, settings: Settings | None = None, refresh_every: float = 15.0
    ) -> None:
        self.service = service
        self.refresh_every = refresh_every
        self.start_delay = 1.0  # seconds before the first refresh of ``run``
        self.provider, self.registry = _meter_provider(service, settings)
        meter = self.provider.get_meter("gardien")
        self._consumed = meter.create_counter(
            "messaging.client.consumed.messages",
            unit="{message}",
            description="Records handled to the end (processed or dead-lettered).",
        )
        self._dead = meter.create_counter(
            "gardien.dead_letters",
            unit="{message}",
            description="Records sent to a dead-letter topic, by source topic.",
        )
        self._duration = meter.create_histogram(
            "messaging.process.duration",
            unit="s",
            description="Time a handler took for one record (or one batch), by topic and type.",
        )
        self._gauges: dict[str, _Gauge] = {}
        self._meter = meter
        _process_instruments(meter)

    def inc(self, name: str, topic: str = "") -> None:
        """Counters of the consumer by their former names (kept while callers move over)."""
        group = f"gardien-{self.service}"
        if name == "events_dead_lettered":
            self.dead_lettered(topic, group, "rejected")
        else:
            self.consumed(topic, group)

    def consumed(self, topic: str, group: str, outcome: str = "processed") -> None:
        """One record handled; ``outcome`` is processed or dead_lettered."""
        attrs = _messaging(topic, group)
        if outcome != "processed":
            attrs["error.type"] = outcome
        self._consumed.add(1, attrs)

    def dead_lettered(self, topic: str, group: str, reason_kind: str) -> None:
        """One record sent to ``<topic>.dlq``; ``reason_kind`` is a short class, not a value."""
        self._dead.add(1, {**_messaging(topic, group), "error.type": reason_kind})
        self.consumed(topic, group, "dead_lettered")

    def handled(self, topic: str, group: str, event_type: str, seconds: float, ok: bool) -> None:
        """How long one handler call took."""
        attrs = {**_messaging(topic, group), "cloudevents.event_type": event_type or "unknown"}
        if not ok:
            attrs["error.type"] = "failed"
        self._duration.record(seconds, attrs)

    def gauge(
        self,
        name: str,
        description: str,
        unit: str,
        source: GaugeSource,
        every: float = 0.0,
        timeout: float | None = None,
    ) -> None:
        """An observable gauge refreshed in the background from ``source`` (at most once per
        ``every`` seconds: figures that cost a database scan and change slowly), each read
        cut short after ``timeout`` seconds (``SOURCE_TIMEOUT`` unless given)."""
        gauge = _Gauge(source, every, timeout=timeout)
        self._gauges[name] = gauge
        self._meter.create_observable_gauge(
            name, callbacks=[gauge.observe], unit=unit, description=description
        )

    def set_gauge(self, name: str, values: Mapping[Key, float]) -> None:
        """Replace a gauge's figures directly (for figures the process already holds)."""
        self._gauges[name].values = dict(values)

    async def refresh(self, *, due_only: bool = False) -> None:
        """Recompute every database-backed gauge once, the sources read side by side; a
        failing source keeps its last figures.

        Each source is bounded (its timeout): a frozen store leaves its gauges stale, never
        the others (the consumer lag is refreshed by the same task).
        """
        await asyncio.gather(*(self._read(n, g) for n, g in self._due(due_only)))

    async def run(self) -> None:
        """Every ``refresh_every`` seconds until cancelled, start a read of each due gauge
        whose last read has finished; a slow read never delays the other gauges' reads."""
        await asyncio.sleep(self.start_delay)  # let the service finish starting
        reading: dict[str, asyncio.Task[None]] = {}
        try:
            while True:
                for name, gauge in self._due(due_only=True):
                    if name not in reading or reading[name].done():
                        reading[name] = asyncio.create_task(self._read(name, gauge))
                await asyncio.sleep(self.refresh_every)
        finally:
            for task in reading.values():
                task.cancel()

    def _due(self, due_only: bool) -> list[tuple[str, _Gauge]]:
        now = time.monotonic()
        return [
            (name, gauge)
            for name, gauge in self._gauges.items()
            if not due_only or now - gauge.read_at >= max(gauge.every, READ_SHARE * gauge.took)
        ]

    async def _read(self, name: str, gauge: _Gauge) -> None:
        gauge.read_at = time.monotonic()
        bound = gauge.timeout if gauge.timeout is not None else SOURCE_TIMEOUT
        try:
            gauge.values = dict(await asyncio.wait_for(gauge.source(), bound))
        except Exception as exc:  # a metric must never take the service down
            log.warning("metric %s not refreshed: %s", name, type(exc).__name__)
        finally:
            gauge.took = time.monotonic() - gauge.read_at

    def exposition(self) -> bytes:
        """Every instrument in the Prometheus text format (with HELP and TYPE lines)."""
        return generate_latest(self.registry)

    def shutdown(self) -> None:
        self.provider.shutdown()


def _messaging(topic: str, group: str) -> dict[str, str | int]:
    return {
        "messaging.system": "kafka",
        "messaging.operation.type": "process",
        "messaging.destination.name": topic,
        "messaging.consumer.group.name": group,
    }


def _process_instruments(meter: Meter) -> None:
    """process.cpu.time and process.memory.usage (OpenTelemetry process conventions)."""

    def cpu(_options: CallbackOptions) -> Iterable[Observation]:
        usage = resource.getrusage(resource.RUSAGE_SELF)
        return [
            Observation(usage.ru_utime, {"cpu.mode": "user"}),
            Observation(usage.ru_stime, {"cpu.mode": "system"}),
        ]

    def memory(_options: CallbackOptions) -> Iterable[Observation]:
        return [Observation(_resident_bytes())]

    meter.create_observable_counter(
        "process.cpu.time", callbacks=[cpu], unit="s", description="CPU seconds of this process."
    )
    meter.create_observable_up_down_counter(
        "process.memory.usage",
        callbacks=[memory],
        unit="By",
        description="Resident memory of this process.",
    )


def _resident_bytes() -> int:
    try:
        pages = int(Path("/proc/self/statm").read_text().split()[1])
    except (OSError, ValueError, IndexError):  # not Linux: the peak is the best we have
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    return pages * resource.getpagesize()
