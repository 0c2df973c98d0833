"""Helpers of the deadlines integration tests."""

from __future__ import annotations

import json
import uuid
from typing import Any

from aiokafka import AIOKafkaConsumer

from shared.events import new_event
from shared.settings import Settings
from tests.support import event_bytes, produce, read_until


def token() -> str:
    return uuid.uuid4().hex[:8]


def inbound(event_type: str, data: dict[str, Any], time: str | None = None) -> dict[str, Any]:
    """An inbound event as another system would publish it."""
    at = time or data.get("at") or data.get("aware_at") or "2026-12-24T18:30:00+01:00"
    event = new_event(event_type, data, source="test.example", event_id=f"test-{token()}")
    raw = event.model_dump(mode="json", exclude_none=True)
    raw["time"] = at
    return raw


async def publish(settings: Settings, topic: str, key: str, event: dict[str, Any]) -> None:
    await produce(settings.kafka_bootstrap_servers, topic, [(key.encode(), event_bytes(event))])


class Ticks:
    """The running app's scheduler, which the app builds when it starts."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def tick(self) -> int:
        fired: int = await self.app.state.scheduler.tick()
        return fired


async def stored(app: Any, timer_id: str) -> dict[str, Any] | None:
    """The timer as the running app's repository holds it (None while it does not exist)."""
    found: dict[str, Any] = await app.state.repositories.timers.load_many([timer_id])
    return found.get(timer_id)


async def next_event(reader: AIOKafkaConsumer, event_id: str, timeout: float = 15.0) -> Any:
    """The record whose CloudEvent id is ``event_id``, parsed."""
    record = await read_until(reader, lambda r: json.loads(r.value)["id"] == event_id, timeout)
    return json.loads(record.value)
