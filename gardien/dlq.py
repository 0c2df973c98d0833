"""`gardien dlq`: list dead letters with their reasons, and re-drive chosen ones to their topic.

A dead letter is the refused record as received (key, value, every header) followed by the
``x-gardien-dlq-*`` headers. Listing never prints the value (it may hold personal data).
Re-driving sends the record back to its source topic with its own key and headers (the
reason headers dropped, ``x-gardien-redriven-from`` added), then records the re-drive as a
``gardien.operation.dlq_redriven`` event that the audit trail keeps: who, which dead letter,
where to. Handlers are idempotent, so re-driving a record twice has one effect.
"""

from __future__ import annotations

import asyncio
import getpass
import json
from dataclasses import dataclass
from typing import Annotated

import typer
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from gardien.console import HOME, fail
from gardien.endpoints import DEFAULT_HOME, kafka_target
from shared import messaging, topics
from shared.events import CloudEvent, new_event
from shared.messaging import publish_batch

dlq_app = typer.Typer(help="Dead letters: list them, re-drive chosen ones (audited).")
REDRIVEN_FROM = "x-gardien-redriven-from"
REDRIVEN = "gardien.operation.dlq_redriven"
Header = tuple[str, bytes | None]


@dataclass(frozen=True)
class DeadLetter:
    """One record of a dead-letter topic."""

    topic: str
    offset: int
    key: bytes | None
    value: bytes | None
    headers: list[Header]

    def header(self, name: str) -> str:
        value = next((v for k, v in reversed(self.headers) if k == name), None)
        return value.decode(errors="replace") if value is not None else ""

    @property
    def source(self) -> str:
        return self.header(messaging.DLQ_TOPIC) or self.topic.removesuffix(topics.DLQ_SUFFIX)

    def original_headers(self) -> list[Header]:
        """The headers the record had before it was refused."""
        return [(k, v) for k, v in self.headers if not k.startswith("x-gardien-dlq-")]

    def summary(self) -> dict[str, object]:
        """What `list` shows: where it came from and why, never its value."""
        return {
            "dlq": self.topic,
            "offset": self.offset,
            "source": f"{self.source}[{self.header(messaging.DLQ_PARTITION)}]"
            f"@{self.header(messaging.DLQ_OFFSET)}",
            "service": self.header(messaging.DLQ_SERVICE),
            "at": self.header(messaging.DLQ_AT),
            "bytes": len(self.value or b""),
            "reason": self.header(messaging.DLQ_REASON),
        }


def dlq_topics(only: str | None) -> list[str]:
    """The dead-letter topics to read: one (by its name or its source's), or all."""
    every = sorted(t for t in topics.all_topics() if t.endswith(topics.DLQ_SUFFIX))
    if only is None:
        return every
    name = only if only.endswith(topics.DLQ_SUFFIX) else topics.dlq(only)
    if name not in every:
        fail(f"unknown dead-letter topic {only!r}; one of: {', '.join(every)}")
    return [name]


async def read_dead_letters(bootstrap: str, names: list[str], limit: int) -> list[DeadLetter]:
    """Every record of ``names`` from the start (at most ``limit`` per topic)."""
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap, group_id=None, enable_auto_commit=False
    )
    await consumer.start()
    try:
        tps = [TopicPartition(t, p) for t in names for p in range(topics.all_topics()[t])]
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        ends = await consumer.end_offsets(tps)
        found: list[DeadLetter] = []
        while [tp for tp in tps if await consumer.position(tp) < ends[tp]]:
            batch = await consumer.getmany(timeout_ms=500)
            for records in batch.values():
                for r in records:
                    found.append(DeadLetter(r.topic, r.offset, r.key, r.value, list(r.headers)))
        return sorted(found, key=lambda d: (d.topic, d.offset))[: limit * len(names)]
    finally:
        await consumer.stop()


@dlq_app.command("list")
def dlq_list(
    topic: Annotated[
        str | None, typer.Option(help="One topic (or its .dlq); all by default.")
    ] = None,
    limit: Annotated[int, typer.Option(min=1, help="At most this many per topic.")] = 1000,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object per line.")] = False,
    home: HOME = DEFAULT_HOME,
) -> None:
    """List dead letters: where each came from, who refused it, when and why (no values)."""
    settings, _ = kafka_target(home)
    letters = asyncio.run(
        read_dead_letters(settings.kafka_bootstrap_servers, dlq_topics(topic), limit)
    )
    for letter in letters:
        row = letter.summary()
        if as_json:
            typer.echo(json.dumps(row))
        else:
            typer.echo(
                f"{row['dlq']}@{row['offset']}  from {row['source']}  by {row['service']}"
                f"  at {row['at']}  {row['bytes']} B  {row['reason']}"
            )
    if not as_json:
        typer.echo(f"{len(letters)} dead letter(s)")


@dlq_app.command("redrive")
def dlq_redrive(
    topic: Annotated[str, typer.Option(help="The dead-letter topic (or its source topic).")],
    offset: Annotated[list[int], typer.Option(help="Offsets to re-drive (repeat the option).")],
    operator: Annotated[str | None, typer.Option(help="Who re-drives (default: login).")] = None,
    home: HOME = DEFAULT_HOME,
) -> None:
    """Send chosen dead letters back to their source topic; each re-drive is audited."""
    settings, origin = kafka_target(home)
    (name,) = dlq_topics(topic)
    letters = asyncio.run(read_dead_letters(settings.kafka_bootstrap_servers, [name], 1_000_000))
    by_offset = {d.offset: d for d in letters}
    missing = sorted(set(offset) - set(by_offset))
    if missing:
        fail(f"no dead letter at offset(s) {', '.join(map(str, missing))} of {name}")
    chosen = [by_offset[o] for o in sorted(set(offset))]
    who = operator or getpass.getuser()
    asyncio.run(redrive(settings.kafka_bootstrap_servers, chosen, who))
    for letter in chosen:
        typer.echo(f"re-driven {letter.topic}@{letter.offset} to {letter.source} ({origin})")


def _redriven(letter: DeadLetter, operator: str) -> CloudEvent:
    """The event recording one re-drive (each re-drive is one record)."""
    data = {
        "dlq_topic": letter.topic,
        "dlq_offset": letter.offset,
        "source_topic": letter.source,
        "reason": letter.header(messaging.DLQ_REASON),
        "operator": operator,
    }
    return new_event(REDRIVEN, data, source="gardien/cli")


async def redrive(bootstrap: str, letters: list[DeadLetter], operator: str) -> None:
    """Re-send each dead letter to its source topic, then record the re-drives."""
    from gardien.endpoints import load_settings
    from gardien.publish import connected_broker

    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all")
    await producer.start()
    try:
        sends = []
        for d in letters:
            headers = [*d.original_headers(), (REDRIVEN_FROM, f"{d.topic}@{d.offset}".encode())]
            sends.append(await producer.send(d.source, d.value, key=d.key, headers=headers))
        await asyncio.gather(*sends)
    finally:
        await producer.stop()
    events = [(_redriven(d, operator), f"{d.topic}@{d.offset}") for d in letters]
    broker = await connected_broker(load_settings(kafka_bootstrap_servers=bootstrap))
    try:
        await publish_batch(broker, events)
    finally:
        await broker.stop()
