"""Audit test harness: the audit app driven directly, on the in-memory repositories
(``trail``) or on the real MongoDB wire server (``mongo_trail``, where storage is the point)."""

from __future__ import annotations

import itertools
import json
import random
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from pymongo.asynchronous.database import AsyncDatabase

from services.audit.app import attach, create_app
from services.audit.memory import MemoryKeys, MemoryRecords, memory_repositories
from services.audit.mongo import INDEXES, mongo_repositories
from services.audit.repository import Repositories
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
    repos: Repositories
    db: AsyncDatabase[dict[str, Any]] | None = None  # the MongoDB trail only

    @property
    def auditor(self) -> Auditor:
        auditor: Auditor = self.app.state.auditor
        return auditor

    def restarted(self) -> Auditor:
        """An auditor of another process on the same storage (nothing cached)."""
        runtime = self.app.state.runtime
        repos = self.repos if self.db is None else mongo_repositories(self.db)
        return Auditor(repos, runtime.pseudonyms, runtime.span, self.clock)

    async def stored(self, **match: Any) -> list[dict[str, Any]]:
        """Every stored record whose top-level fields equal ``match``."""
        if self.db is not None:
            return [d async for d in self.db["records"].find(match)]
        records = self.repos.records
        assert isinstance(records, MemoryRecords)
        docs = records.docs.values()
        return [d for d in docs if all(d.get(k) == v for k, v in match.items())]

    async def stored_keys(self) -> list[dict[str, Any]]:
        """Every subject key document."""
        if self.db is not None:
            return [d async for d in self.db["subject_keys"].find()]
        keys = self.repos.keys
        assert isinstance(keys, MemoryKeys)
        return list(keys.keys.values())

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


def _clock() -> FakeClock:
    return FakeClock(datetime(2027, 3, 5, 12, 0, tzinfo=UTC))


@pytest.fixture
def plain_settings(tmp_path: Path) -> Settings:
    """Settings naming no server: the in-memory trail never connects."""
    return Settings(
        kafka_bootstrap_servers="127.0.0.1:9",
        mongodb_uri="mongodb://127.0.0.1:9",
        gardien_api_keys_file=tmp_path / "api-keys.json",
    )


def _client(app: FastAPI) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://audit")


@pytest.fixture
async def trail(plain_settings: Settings, audit_settings: AuditSettings) -> AsyncIterator[Trail]:
    """The audit app on the in-memory repositories, no broker: records are fed by the test."""
    clock, repos = _clock(), memory_repositories()
    app = create_app(plain_settings, audit=audit_settings, clock=clock, rng=random.Random(7))
    attach(app, repos)
    headers = api_key(plain_settings)
    async with _client(app) as http:
        yield Trail(app, http, clock, headers, repos)


@pytest.fixture
async def mongo_trail(settings: Settings, audit_settings: AuditSettings) -> AsyncIterator[Trail]:
    """The audit app on the real MongoDB wire server, no broker."""
    clock = _clock()
    app = create_app(settings, audit=audit_settings, clock=clock, rng=random.Random(7))
    runtime = app.state.runtime
    runtime.client = create_client(settings)
    await INDEXES.apply(runtime.db)
    repos = mongo_repositories(runtime.db)
    attach(app, repos)
    try:
        async with _client(app) as http:
            yield Trail(app, http, clock, api_key(settings), repos, runtime.db)
    finally:
        await runtime.client.close()
