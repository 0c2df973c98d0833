"""Consumer log lines name the record they are about: topic, partition, offset, event id and
the request id its data carries (``shared.logs.bind`` around each handler call)."""

from __future__ import annotations

import json
import logging
from types import SimpleNamespace
from typing import Any, cast

import pytest
from faststream.kafka import KafkaBroker

from shared import messaging, topics
from shared.events import CloudEvent
from shared.messaging import Consumer
from shared.settings import Settings
from tests.shared.test_logs import _restore_root  # noqa: F401 - the root logger comes back
from tests.support import event_bytes, example


class Polled:
    """Stands for aiokafka's consumer: what was committed or rewound."""

    def __init__(self) -> None:
        self.commits = 0

    def seek(self, *_: Any) -> None:
        raise AssertionError("nothing is rewound here")

    async def commit(self) -> None:
        self.commits += 1


class Producer:
    def __init__(self) -> None:
        self.sent: list[str] = []

    async def send_and_wait(self, topic: str, **_: Any) -> None:
        self.sent.append(topic)


def record(offset: int, value: bytes) -> SimpleNamespace:
    return SimpleNamespace(
        topic=topics.REQUESTS, partition=2, offset=offset, key=b"k", value=value,
        headers=[], timestamp=1_700_000_000_000,
    )  # fmt: skip


async def test_handler_and_dead_letter_lines_carry_the_record_ids(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from shared.logs import configure_logging

    configure_logging("INFO", "intake", "json")
    producer = Producer()
    monkeypatch.setattr(messaging, "producer_of", lambda _broker: producer)
    consumer = Consumer(cast(KafkaBroker, None), cast(Settings, None), "intake")

    async def handler(event: CloudEvent) -> None:
        logging.getLogger("services.intake").info("handled")

    consumer.events(topics.REQUESTS, handler)
    event = example("request-received.json", request_id="REQ-LOG-1")
    polled = Polled()
    await consumer.handle_poll([record(7, event_bytes(event)), record(8, b"{bad")], polled)
    assert polled.commits == 1 and producer.sent == [topics.dlq(topics.REQUESTS)]
    lines = [json.loads(line) for line in capsys.readouterr().err.splitlines()]
    [handled] = [e for e in lines if e["message"] == "handled"]
    assert handled["topic"] == topics.REQUESTS
    assert (handled["partition"], handled["offset"]) == ("2", "7")
    assert (handled["event_id"], handled["request_id"]) == (event["id"], "REQ-LOG-1")
    [dead] = [e for e in lines if e["message"].startswith("dead-lettered")]
    assert (dead["topic"], dead["partition"], dead["offset"]) == (topics.REQUESTS, "2", "8")
    assert "request_id" not in dead
