"""`gardien publish`: send CloudEvents from a file or stdin to the topic of their type."""

from __future__ import annotations

import asyncio
import json
import sys
import time
from pathlib import Path
from typing import Annotated, Any

import typer

from gardien.console import HOME, fail
from gardien.endpoints import DEFAULT_HOME, kafka_target
from shared.errors import EventRejected
from shared.settings import Settings


def publish(
    source: Annotated[
        str, typer.Argument(help="A JSON file of one or more CloudEvents, or - for stdin")
    ],
    topic: Annotated[
        str | None,
        typer.Option(help="Send as-is to this topic, unvalidated (to test dead-lettering)."),
    ] = None,
    binary: Annotated[
        bool, typer.Option(help="CloudEvents binary content mode: ce_* headers, data as value.")
    ] = False,
    home: HOME = DEFAULT_HOME,
) -> None:
    """Publish CloudEvents (a JSON object, array or JSON Lines) to the topic of their type."""
    from shared.events import aggregate_key, parse_event

    items = _read_events(source)
    settings, origin = kafka_target(home)
    typer.echo(f"broker {settings.kafka_bootstrap_servers} ({origin})")
    if topic is not None:
        asyncio.run(_publish_raw(settings, topic, [json.dumps(item).encode() for item in items]))
        typer.echo(f"sent {len(items)} record(s) unvalidated to {topic}")
        return
    events = []
    # An event without ``time`` takes the record's timestamp, as a consumer would.
    now_ms = int(time.time() * 1000)
    for index, item in enumerate(items, start=1):
        try:
            events.append(parse_event(item, record_time_ms=now_ms))
        except EventRejected as exc:
            fail(f"event {index}: {exc.reason}")
    asyncio.run(_publish_all(settings, events, binary))
    for event in events:
        typer.echo(f"published {event.type} {event.id} (key {aggregate_key(event)})")


def _read_events(source: str) -> list[dict[str, Any]]:
    try:
        text = sys.stdin.buffer.read().decode() if source == "-" else _read_file(source)
    except UnicodeDecodeError as exc:
        fail(f"{'stdin' if source == '-' else source}: not UTF-8 text (byte {exc.start})")
    stripped = text.strip()
    if not stripped:
        fail("no event to publish: the input is empty")
    try:
        loaded = json.loads(stripped)
        items = loaded if isinstance(loaded, list) else [loaded]
    except json.JSONDecodeError:
        try:
            items = [json.loads(line) for line in stripped.splitlines() if line.strip()]
        except json.JSONDecodeError as exc:
            fail(f"{source}: not JSON nor JSON Lines (line {exc.lineno}: {exc.msg})")
    return items


def _read_file(path: str) -> str:
    try:
        return Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        fail(f"cannot read {path}: {exc.strerror}")
    return ""


async def _publish_raw(settings: Settings, topic: str, bodies: list[bytes]) -> None:
    broker = await connected_broker(settings)
    try:
        for body in bodies:
            await broker.publish(body, topic=topic)
    finally:
        await broker.stop()


async def connected_broker(settings: Settings) -> Any:
    """A started FastStream broker on ``settings``' Kafka, or one clear line and exit 2."""
    import logging

    from shared.messaging import create_broker
    from shared.telemetry import setup_tracing

    logging.getLogger("aiokafka").setLevel(logging.CRITICAL)  # the one line below says it
    broker = create_broker(settings, "cli", setup_tracing("cli", settings))
    try:
        await asyncio.wait_for(broker.connect(), timeout=15)
    except Exception as exc:
        await broker.stop()
        fail(f"cannot reach Kafka at {settings.kafka_bootstrap_servers}: {type(exc).__name__}")
    return broker


async def _publish_all(settings: Settings, events: list[Any], binary: bool = False) -> None:
    from shared.events import aggregate_key
    from shared.messaging import publish_batch

    broker = await connected_broker(settings)
    try:
        await publish_batch(broker, [(e, aggregate_key(e)) for e in events], binary=binary)
    finally:
        await broker.stop()
