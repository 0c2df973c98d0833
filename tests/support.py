"""Test helpers shared by every test package: stack info, waiting, running apps in-process."""

from __future__ import annotations

import asyncio
import json
import subprocess
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace
from typing import Any, TypeVar

import httpx
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from fastapi import FastAPI

from shared.auth import KeyStore
from shared.settings import Settings

T = TypeVar("T")
REPO = Path(__file__).resolve().parents[1]
EXAMPLES = REPO / "examples" / "events"


@dataclass
class StackInfo:
    bootstrap: str
    mongodb_uri: str
    broker: subprocess.Popen[bytes] | None
    mongo: subprocess.Popen[bytes] | None
    home: Path | None = None


async def wait_for(
    probe: Callable[[], Awaitable[T | None]], timeout: float = 15.0, interval: float = 0.05
) -> T:
    """Poll ``probe`` until it returns something truthy; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = await probe()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout}s")
        await asyncio.sleep(interval)


@asynccontextmanager
async def running(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    """Run a service app's lifespan (broker, database) and give an HTTP client to it."""
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://service") as client:
            yield client


def api_key(settings: Settings, *scopes: str) -> dict[str, str]:
    """Headers carrying a new key with ``scopes`` (admin when none given)."""
    key = KeyStore(settings.gardien_api_keys_file).create("test", list(scopes) or ["admin"])
    return {"X-API-Key": key}


def example(name: str, **data_overrides: Any) -> dict[str, Any]:
    """An example event from examples/events with a fresh id and ``data`` overrides."""
    event: dict[str, Any] = json.loads((EXAMPLES / name).read_text())
    event["id"] = f"test-{uuid.uuid4().hex}"
    event["data"].update(data_overrides)
    return event


async def produce(
    bootstrap: str,
    topic: str,
    items: list[tuple[bytes | None, bytes]],
    headers: list[tuple[str, bytes]] | None = None,
) -> None:
    """Send raw records with a plain aiokafka producer (no Gardien code involved)."""
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap)
    await producer.start()
    try:
        for key, value in items:
            await producer.send_and_wait(topic, value=value, key=key, headers=headers)
    finally:
        await producer.stop()


def event_bytes(event: dict[str, Any]) -> bytes:
    return json.dumps(event).encode()


@asynccontextmanager
async def topic_reader(bootstrap: str, *topics: str) -> AsyncIterator[AIOKafkaConsumer]:
    """A consumer reading ``topics`` from the beginning, outside any Gardien group."""
    consumer = AIOKafkaConsumer(
        *topics,
        bootstrap_servers=bootstrap,
        group_id=f"test-{uuid.uuid4().hex}",
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        fetch_max_wait_ms=50,
    )
    await consumer.start()
    try:
        yield consumer
    finally:
        await consumer.stop()


async def read_until(
    consumer: AIOKafkaConsumer, match: Callable[[Any], bool], timeout: float = 15.0
) -> Any:
    """The first record ``match`` accepts; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        batch = await consumer.getmany(timeout_ms=200)
        for records in batch.values():
            for record in records:
                if match(record):
                    return record
    raise AssertionError(f"no matching record within {timeout}s")


def structured_event(value: bytes | None) -> dict[str, Any] | None:
    """A record's value as a structured CloudEvent; None for anything else a shared topic
    carries from other tests: binary-mode records, empty values, poison."""
    try:
        event = json.loads(value) if value is not None else None
    except (ValueError, RecursionError):  # RecursionError: the deeply nested poison record
        return None
    return event if isinstance(event, dict) and "type" in event else None


async def read_all(
    consumer: AIOKafkaConsumer, wanted: dict[str, Callable[[Any], bool]], timeout: float = 15.0
) -> dict[str, Any]:
    """One record per name in ``wanted`` (whatever their order); fail after ``timeout``."""
    found: dict[str, Any] = {}
    deadline = time.monotonic() + timeout
    while len(found) < len(wanted) and time.monotonic() < deadline:
        batch = await consumer.getmany(timeout_ms=200)
        for records in batch.values():
            for record in records:
                for name, match in wanted.items():
                    if name not in found and match(record):
                        found[name] = record
    missing = set(wanted) - set(found)
    if missing:
        raise AssertionError(f"no record for {sorted(missing)} within {timeout}s")
    return found


class SendRecorder:
    """Stands for a started Kafka broker in unit tests: ``shared.publishing`` reaches this
    object as the broker's aiokafka producer, and each ``send`` is delivered at once."""

    @property
    def config(self) -> Any:
        return SimpleNamespace(producer=SimpleNamespace(_producer=SimpleNamespace(producer=self)))

    async def send(
        self, topic: str, value: bytes, key: bytes, headers: list[tuple[str, bytes]]
    ) -> asyncio.Future[None]:
        self.record(topic, key, value)
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        done.set_result(None)
        return done

    def record(self, topic: str, key: bytes, value: bytes) -> None:
        raise NotImplementedError
