"""Fakes for erasure's use cases: a broker that records, a connector that answers."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, cast

from faststream.kafka import KafkaBroker
from opentelemetry.trace import INVALID_SPAN, Span

from services.erasure.connector import Reply
from shared.events import CloudEvent
from tests.support import SendRecorder


@dataclass(eq=False)  # hashable, as a broker is
class FakeBroker(SendRecorder):
    """Records every publish as (topic, key, event)."""

    sent: list[tuple[str, str, dict[str, Any]]] = field(default_factory=list)

    def record(self, topic: str, key: bytes, value: bytes) -> None:
        self.sent.append((topic, key.decode(), json.loads(value)))

    def of_type(self, event_type: str) -> list[dict[str, Any]]:
        return [e for _, _, e in self.sent if e["type"] == event_type]

    def ids(self) -> list[str]:
        return [e["id"] for _, _, e in self.sent]

    def as_broker(self) -> KafkaBroker:
        return cast(KafkaBroker, self)


@dataclass
class FakeConnector:
    """Answers every HTTP command with ``reply`` and records the commands."""

    reply: Reply = field(default_factory=lambda: Reply(accepted=True))
    calls: list[tuple[str, CloudEvent]] = field(default_factory=list)

    async def deliver(self, url: str, command: CloudEvent) -> Reply:
        self.calls.append((url, command))
        return self.reply


@contextmanager
def no_span(_: str) -> Iterator[Span]:
    yield INVALID_SPAN
