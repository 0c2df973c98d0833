"""Audit test harness: the audit app on the real MongoDB wire server, driven directly."""

from __future__ import annotations

import itertools
import json
import random
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from services.audit.app import create_app
from services.audit.repository import INDEXES, AuditStore
from services.audit.settings import AuditSettings
from services.audit.usecases import Auditor
from shared import topics
from shared.clock import FakeClock
from shared.messaging import Delivery
from shared.mongo import create_client
from shared.settings import Settings
from tests.support import api_key

_offsets = itertools.count()


def delivery(event: dict[str, Any], topic: str = topics.REQUESTS, partition: int = 9) -> Delivery:
    """A Kafka record as the consumer hands it over (partition 9: no real partition)."""
    body = json.dumps(event).encode()
    return Delivery(topic, partition, next(_offsets), None, {}, body, 0)


@dataclass
class Trail:
    app: FastAPI
    http: httpx.AsyncClient
    clock: FakeClock
    headers: dict[str, str]

    @property
    def auditor(self) -> Auditor:
        auditor: Auditor = self.app.state.auditor
        return auditor

    @property
    def store(self) -> AuditStore:
        return self.auditor.store

    async def feed(self, *events: dict[str, Any], topic: str = topics.REQUESTS) -> None:
        for event in events:
            await self.auditor.record(delivery(event, topic))


@pytest.fixture
def audit_settings() -> AuditSettings:
    return AuditSettings(
        checkpoint_every=1000,
        checkpoint_seconds=3600,
        verify_batch=4,  # several range queries per chain even in small tests
        webhook_allow=["127.0.0.1"],
        webhook_poll_seconds=0.05,
        webhook_backoff_base_seconds=30,
        webhook_max_attempts=5,
        webhook_disable_after_failures=3,
        webhook_disable_after_hours=0,
        webhook_subscriptions_ttl_seconds=0,
        webhook_timeout_seconds=5,
    )


@pytest.fixture
async def trail(settings: Settings, audit_settings: AuditSettings) -> AsyncIterator[Trail]:
    """The audit app with its database but no broker: records are fed by the test."""
    clock = FakeClock(datetime(2027, 3, 5, 12, 0, tzinfo=UTC))
    app = create_app(settings, audit=audit_settings, clock=clock, rng=random.Random(7))
    runtime = app.state.runtime
    runtime.client = create_client(settings)
    await INDEXES.apply(runtime.db)
    transport = httpx.ASGITransport(app=app)
    try:
        async with httpx.AsyncClient(transport=transport, base_url="http://audit") as http:
            yield Trail(app, http, clock, api_key(settings))
    finally:
        await runtime.client.close()
