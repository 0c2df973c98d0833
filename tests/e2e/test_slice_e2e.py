"""The vertical slice across separate processes, started by `gardien up`."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest
from faststream.kafka import KafkaBroker
from faststream.kafka.opentelemetry import KafkaTelemetryMiddleware
from kafka import KafkaConsumer, KafkaProducer, TopicPartition
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from shared import topics
from shared.messaging import DLQ_REASON
from tests.e2e.conftest import System
from tests.support import example

pytestmark = pytest.mark.e2e


def audited(
    system: System, request_id: str, want: int = 1, timeout: float = 20
) -> list[dict[str, Any]]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        r = httpx.get(
            f"{system.api}/v1/audit/events",
            params={"request_id": request_id},
            headers=system.headers(),
            timeout=5,
        )
        if r.status_code == 200 and len(r.json()["items"]) >= want:
            return list(r.json()["items"])
        time.sleep(0.05)
    raise AssertionError(f"{request_id} not audited within {timeout}s")


def test_event_published_with_gardien_publish_is_audited(system: System, tmp_path: Path) -> None:
    event = example("request-received.json", request_id=f"REQ-E2E-{uuid.uuid4().hex[:6]}")
    path = tmp_path / "event.json"
    path.write_text(json.dumps(event))
    started = time.monotonic()
    result = system.gardien("publish", str(path))
    assert result.returncode == 0, result.stderr.decode()
    items = audited(system, event["data"]["request_id"])
    print(f"publish -> audited in {time.monotonic() - started:.2f}s (includes CLI start-up)")
    assert items[0]["event_id"] == event["id"]
    assert "alice" not in json.dumps(items).lower()  # identifiers are never stored in clear
    # Intake and audit consume the event independently: audited does not mean recorded yet.
    deadline, url = time.monotonic() + 20, f"{system.api}/v1/requests/{event['data']['request_id']}"
    while (req := httpx.get(url, headers=system.headers(), timeout=5)).status_code == 404:
        assert time.monotonic() < deadline, "the request was audited but never recorded"
        time.sleep(0.05)
    assert req.status_code == 200 and req.json()["right"] == "access"


def test_event_from_a_plain_kafka_client_is_audited(system: System) -> None:
    event = example("request-received.json", request_id=f"REQ-KP-{uuid.uuid4().hex[:6]}")
    producer = KafkaProducer(bootstrap_servers=system.env["KAFKA_BOOTSTRAP_SERVERS"])
    producer.send(
        topics.REQUESTS, key=event["data"]["request_id"].encode(), value=json.dumps(event).encode()
    )
    producer.flush()
    producer.close()
    assert audited(system, event["data"]["request_id"])[0]["event_id"] == event["id"]


def test_malformed_event_is_dead_lettered_and_the_flow_continues(
    system: System, tmp_path: Path
) -> None:
    bad = example("malformed.json")
    good = example("request-received.json", request_id=f"REQ-AFTER-{uuid.uuid4().hex[:6]}")
    (tmp_path / "bad.json").write_text(json.dumps(bad))
    (tmp_path / "good.json").write_text(json.dumps(good))
    raw = system.gardien("publish", "--topic", topics.REQUESTS, str(tmp_path / "bad.json"))
    assert raw.returncode == 0, raw.stderr.decode()
    assert system.gardien("publish", str(tmp_path / "good.json")).returncode == 0
    audited(system, good["data"]["request_id"])

    consumer = KafkaConsumer(
        bootstrap_servers=system.env["KAFKA_BOOTSTRAP_SERVERS"],
        auto_offset_reset="earliest",
        consumer_timeout_ms=5000,
    )
    consumer.assign([TopicPartition(topics.dlq(topics.REQUESTS), 0)])
    reasons = [
        dict(rec.headers)[DLQ_REASON].decode()
        for rec in consumer
        if bad["id"].encode() in rec.value  # dead letters need not be JSON at all
    ][:1]
    consumer.close()
    assert reasons and "right" in reasons[0]
    rejections = httpx.get(
        f"{system.api}/v1/audit/events",
        params={"type": "gardien.event.rejected", "limit": 500},
        headers=system.headers(),
        timeout=5,
    ).json()["items"]
    assert any(r["data"]["reason"] == reasons[0] for r in rejections)


def test_cli_refuses_bad_input_with_one_line(system: System, tmp_path: Path) -> None:
    (tmp_path / "bad.json").write_text(json.dumps(example("malformed.json")))
    result = system.gardien("publish", str(tmp_path / "bad.json"))
    assert result.returncode == 2
    lines = result.stderr.decode().strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("gardien: event 1: invalid data")
    missing = system.gardien("publish", str(tmp_path / "nope.json"))
    assert missing.returncode == 2 and b"cannot read" in missing.stderr


def test_one_trace_links_publish_intake_and_audit(system: System) -> None:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    event = example("request-received.json", request_id=f"REQ-TRACE-{uuid.uuid4().hex[:6]}")

    async def publish() -> None:
        broker = KafkaBroker(
            system.env["KAFKA_BOOTSTRAP_SERVERS"],
            middlewares=[KafkaTelemetryMiddleware(tracer_provider=provider)],
        )
        await broker.connect()
        await broker.publish(
            json.dumps(event).encode(),
            topic=topics.REQUESTS,
            key=event["data"]["request_id"].encode(),
        )
        await broker.stop()

    asyncio.run(publish())
    trace_id = f"{exporter.get_finished_spans()[0].context.trace_id:032x}"
    audited(system, event["data"]["request_id"], want=2)

    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        in_trace = [s for s in system.traces.spans if s["trace_id"] == trace_id]
        services = {s["service"] for s in in_trace}
        audit_of_intake_output = [
            s
            for s in in_trace
            if s["service"] == "gardien-audit" and "gardien.requests.v1" in s["name"]
        ]
        if {"gardien-intake", "gardien-audit"} <= services and audit_of_intake_output:
            break
        time.sleep(0.2)
    else:
        raise AssertionError(
            f"trace incomplete: {sorted({(s['service'], s['name']) for s in in_trace})}"
        )
    spans = json.dumps([s["attributes"].__repr__() for s in system.traces.spans])
    assert "alice.martin" not in spans  # no personal data in span attributes
