"""Both CloudEvents content modes on a real broker, from the official SDK and confluent-kafka."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from aiokafka import AIOKafkaProducer
from cloudevents.core.bindings import kafka
from cloudevents.core.formats.json import JSONFormat
from cloudevents.v1 import kafka as v1_kafka
from cloudevents.v1.http import from_json as v1_from_json
from confluent_kafka import Producer

from services.intake.app import create_app as intake_app
from shared import topics
from shared.events import CloudEvent, parse_event
from shared.messaging import DLQ_OFFSET, DLQ_REASON, DLQ_TIMESTAMP, DLQ_TOPIC
from shared.service import Runtime, ServiceSpec, create_service_app
from shared.settings import Settings
from tests.support import (
    api_key,
    example,
    read_all,
    read_until,
    running,
    topic_reader,
    wait_for,
)

pytestmark = pytest.mark.integration
STAMP_MS = 1_804_000_000_123
TRACEPARENT = b"00-" + b"3" * 32 + b"-" + b"4" * 16 + b"-01"
Headers = list[tuple[str, bytes | None]]


def sdk_message(event: dict[str, Any], mode: str) -> Any:
    """The official SDK's Kafka message of ``event``: core API or the v1 API."""
    raw = json.dumps(event).encode()
    if mode.startswith("v1-"):
        v1_event = v1_from_json(raw)
        return (v1_kafka.to_binary if mode == "v1-binary" else v1_kafka.to_structured)(v1_event)
    sdk_event = JSONFormat().read(None, raw)
    convert = kafka.to_binary if mode == "binary" else kafka.to_structured
    return convert(sdk_event, JSONFormat())


async def send(
    bootstrap: str, topic: str, value: bytes | None, headers: Headers, key: bytes | None = None
) -> None:
    """One record with an explicit timestamp, by a plain aiokafka producer."""
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap)
    await producer.start()
    try:
        await producer.send_and_wait(
            topic, value=value, key=key, headers=headers, timestamp_ms=STAMP_MS
        )
    finally:
        await producer.stop()


def confluent_send(bootstrap: str, topic: str, value: bytes, headers: Headers, key: bytes) -> None:
    producer = Producer({"bootstrap.servers": bootstrap, "enable.idempotence": False})
    sent: list[tuple[str, str | bytes | None]] = list(headers)
    producer.produce(topic, value=value, key=key, headers=sent)
    assert producer.flush(15) == 0


def probe_app(settings: Settings, seen: dict[str, CloudEvent]):  # type: ignore[no-untyped-def]
    def wire(runtime: Runtime) -> None:
        async def handle(event: CloudEvent) -> None:
            seen[event.data["request_id"]] = event

        runtime.consumer.events(topics.REQUESTS, handle, dead_letters=False)

    return create_service_app(ServiceSpec("modes-probe", wire), settings)


async def test_intake_records_requests_sent_in_either_mode_by_sdk_and_confluent(
    settings: Settings,
) -> None:
    bootstrap = settings.kafka_bootstrap_servers
    modes = ["binary", "structured", "v1-binary", "v1-structured"]
    events = {m: example("request-received.json", request_id=f"REQ-MODE-{m}") for m in modes}
    untimed = example("request-received.json", request_id="REQ-MODE-untimed")
    by_confluent = example("request-received.json", request_id="REQ-MODE-confluent")
    seen: dict[str, CloudEvent] = {}
    headers = api_key(settings)
    async with running(intake_app(settings)) as intake, running(probe_app(settings, seen)):
        for mode, event in events.items():
            message = sdk_message(event, mode)
            await send(bootstrap, topics.REQUESTS, message.value, list(message.headers.items()))
        message = sdk_message(untimed, "binary")
        untimed_headers = [(k, v) for k, v in message.headers.items() if k != "ce_time"]
        await send(bootstrap, topics.REQUESTS, message.value, untimed_headers)
        message = sdk_message(by_confluent, "binary")
        await asyncio.to_thread(
            confluent_send,
            bootstrap,
            topics.REQUESTS,
            message.value,
            [*message.headers.items(), ("traceparent", TRACEPARENT)],
            b"REQ-MODE-confluent",
        )
        wanted = [*(e["data"]["request_id"] for e in events.values()), "REQ-MODE-untimed"]
        wanted.append("REQ-MODE-confluent")
        for request_id in wanted:

            async def stored(request_id: str = request_id) -> bool:
                r = await intake.get(f"/v1/requests/{request_id}", headers=headers)
                return r.status_code == 200 and r.json()["status"] == "received"

            await wait_for(stored, timeout=30)

        async def all_seen() -> bool:
            return set(wanted) <= set(seen)

        await wait_for(all_seen, timeout=15)
    for mode, event in events.items():
        assert seen[event["data"]["request_id"]].id == event["id"], mode
        assert seen[event["data"]["request_id"]].time == datetime.fromisoformat(event["time"])
    assert seen["REQ-MODE-untimed"].time == datetime.fromtimestamp(STAMP_MS / 1000, UTC)
    assert seen["REQ-MODE-confluent"].data == by_confluent["data"]


async def test_poison_binary_event_is_dead_lettered_with_every_header_and_can_be_re_driven(
    settings: Settings,
) -> None:
    bootstrap = settings.kafka_bootstrap_servers
    event = example("request-received.json", request_id="REQ-MODE-POISON")
    message = sdk_message(event, "binary")
    original: Headers = [
        *((k, v) for k, v in message.headers.items() if k != "ce_specversion"),
        ("x-origin", b"\xff\xfe not UTF-8"),  # headers Gardien does not read, kept as bytes
        ("x-origin", b"twice"),
        ("x-null", None),  # Kafka allows a header without value
        ("traceparent", TRACEPARENT),
    ]
    headers = api_key(settings)
    async with running(intake_app(settings)) as intake:
        async with topic_reader(bootstrap, topics.dlq(topics.REQUESTS)) as dlq:
            await send(bootstrap, topics.REQUESTS, message.value, original, b"REQ-MODE-POISON")
            await send(bootstrap, topics.REQUESTS, None, original, b"REQ-MODE-EMPTY")
            found = await read_all(
                dlq,
                {
                    "poison": lambda r: r.key == b"REQ-MODE-POISON",
                    "empty": lambda r: r.key == b"REQ-MODE-EMPTY",
                },
                timeout=30,
            )
        dead, empty = found["poison"], found["empty"]
        assert empty.value is None and list(empty.headers)[: len(original)] == original
        copied = list(dead.headers)
        assert copied[: len(original)] == original
        added = dict(copied[len(original) :])
        assert added[DLQ_REASON] == b"binary mode: missing header ce_specversion"
        assert added[DLQ_TOPIC] == topics.REQUESTS.encode() and DLQ_OFFSET in added
        assert added[DLQ_TIMESTAMP] == str(STAMP_MS).encode()
        assert dead.value == message.value and dead.timestamp == STAMP_MS
        # Re-drive: the original headers, the missing attribute added, reason headers dropped.
        rebuilt = [*copied[: len(original)], ("ce_specversion", b"1.0")]
        await send(bootstrap, topics.REQUESTS, dead.value, rebuilt, dead.key)

        async def stored() -> bool:
            r = await intake.get("/v1/requests/REQ-MODE-POISON", headers=headers)
            return r.status_code == 200

        await wait_for(stored, timeout=30)


async def test_gardien_publish_binary_sends_ce_headers_and_the_data_as_value(
    settings: Settings, tmp_path: Path
) -> None:
    event = example("request-received.json", request_id="REQ-MODE-CLI")
    path = tmp_path / "event.json"
    path.write_text(json.dumps(event))
    gardien = Path(sys.executable).with_name("gardien")
    env = {**os.environ, "KAFKA_BOOTSTRAP_SERVERS": settings.kafka_bootstrap_servers}
    async with topic_reader(settings.kafka_bootstrap_servers, topics.REQUESTS) as reader:
        done = await asyncio.to_thread(
            subprocess.run,
            [str(gardien), "publish", "--binary", "--home", str(tmp_path), str(path)],
            env=env,
            capture_output=True,
            timeout=60,
        )
        assert done.returncode == 0, done.stderr.decode()
        record = await read_until(reader, lambda r: r.key == b"REQ-MODE-CLI", timeout=30)
    headers = dict(record.headers)
    assert headers["ce_id"] == event["id"].encode()
    assert headers["content-type"] == b"application/json"
    assert json.loads(record.value) == event["data"]
    assert parse_event(record.value, list(record.headers)) == parse_event(json.dumps(event))
