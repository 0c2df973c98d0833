"""Handling one poll: per-partition groups, poison, replay one by one, commit or rewind.

``Poller`` is the machinery behind ``shared.messaging.Consumer`` (which registers the
routes and owns the dead-letter producer): a poll's records are grouped per partition in
offset order, invalid ones dead-lettered (concurrently), each group handed to its route;
the poll is committed once every group is done, and rewound on a transient failure.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any

from aiokafka import TopicPartition
from aiokafka.errors import KafkaError
from opentelemetry import trace
from pymongo.errors import ConnectionFailure, OperationFailure

from shared.deliveries import Delivery, Where, by_partition, consuming, log_ids
from shared.errors import EventRejected, PermanentError, RefusedEvents, TransientError
from shared.events import topic_for_type
from shared.logs import bind
from shared.metrics import Metrics

log = logging.getLogger("shared.messaging")

# Errors that say "try again later": the message is not committed and comes back.
TRANSIENT = (TransientError, ConnectionFailure, KafkaError, OSError, asyncio.TimeoutError)
# Unexpected errors are retried this many times, then dead-lettered with their type.
MAX_UNEXPECTED_ATTEMPTS = 5
Rewind = int | None  # the offset a partition goes back to after a transient failure


@dataclass(frozen=True)
class Route:
    """How the records of one topic are handed over."""

    call: Callable[[Sequence[Any]], Awaitable[None]]
    parse: bool  # validate each record as a CloudEvent first (else: the Delivery as is)
    dead_letters: bool  # this consumer owns the topic: it dead-letters invalid records
    per_record: bool  # the handler takes one item: call it for each, one after another
    concurrent: bool = False  # its partitions are independent: groups of a poll run at once


class Poller:
    """Handles polls for the routes of one consumer group."""

    def __init__(self, service: str, metrics: Metrics, tracer: trace.Tracer) -> None:
        self.service, self.metrics, self.tracer = service, metrics, tracer
        self._attempts: dict[Where, int] = {}
        # Records dead-lettered in a poll not committed yet: not dead-lettered again.
        self._settled: set[Where] = set()
        self._routes: dict[str, Route] = {}

    @property
    def group(self) -> str:
        """The consumer group of this service (one per service)."""
        return f"gardien-{self.service}"

    async def dead_letter(self, record: Delivery, reason: str) -> None:
        raise NotImplementedError

    async def handle_poll(self, records: Sequence[Any], consumer: Any) -> None:
        """Handle one poll group by group, then commit it; rewind instead on a failure."""
        groups = by_partition(records)
        try:
            rewind = await self._groups(groups)
        except Exception:
            for (topic, partition), group in groups:  # nothing of this poll may be committed
                consumer.seek(TopicPartition(topic, partition), group[0].offset)
            raise
        if rewind:
            for tp, offset in rewind.items():
                consumer.seek(tp, offset)
            return
        try:
            await consumer.commit()
        except KafkaError as exc:  # the group moved on (rebalance): its new owner re-reads
            log.warning("commit failed after a poll: %s", type(exc).__name__)
            return
        if len(self._settled) > 10_000:
            self._settled.clear()
        self._settled.difference_update(d.where for _, group in groups for d in group)

    async def _groups(
        self, groups: list[tuple[tuple[str, int], list[Delivery]]]
    ) -> dict[TopicPartition, int]:
        """Concurrent routes' groups at once, then the others in turn; what to rewind."""
        together = [(tp, g) for tp, g in groups if self._routes[tp[0]].concurrent]
        rewind: dict[TopicPartition, int] = {}
        done = await asyncio.gather(
            *(self._group(self._routes[tp[0]], g) for tp, g in together), return_exceptions=True
        )
        for ((topic, partition), _), back in zip(together, done, strict=True):
            if isinstance(back, BaseException):
                raise back
            if back is not None:
                rewind[TopicPartition(topic, partition)] = back
        for (topic, partition), group in groups:
            if self._routes[topic].concurrent:
                continue
            tp = TopicPartition(topic, partition)
            if rewind:  # a transient failure: the rest comes again with the rewound poll
                rewind[tp] = group[0].offset
                continue
            back = await self._group(self._routes[topic], group)
            if back is not None:
                rewind[tp] = back
        return rewind

    async def _group(self, route: Route, group: list[Delivery]) -> int | None:
        """Handle one partition's records; the offset to rewind to after a transient failure."""
        items, poison = self._parsed(route, group)
        if poison:
            await asyncio.gather(*(self.dead_letter(d, reason) for d, reason in poison))
            self._settled.update(d.where for d, _ in poison)
        if not items:
            return None
        if route.per_record:
            return await self._one_by_one(route, items)
        started, first = time.perf_counter(), items[0][0]
        where = {k: v for k, v in log_ids(first).items() if k in ("topic", "partition")}
        try:
            with bind(**where), consuming(self.tracer, [d for d, _ in items], "kafka"):
                await route.call([item for _, item in items])
        except RefusedEvents as exc:  # the others are stored: dead-letter these, no replay
            await self._refuse(items, exc.refusals)
        except TRANSIENT as exc:
            self._timed(first.topic, items, started, ok=False)
            await self._back_off(first.where, exc, unexpected=False)
            return first.offset
        except Exception as exc:
            self._timed(first.topic, items, started, ok=False)
            log.warning(
                "batch of %d from %s[%d]@%d failed (%s): replaying one by one",
                len(items),
                *first.where,
                type(exc).__name__,
            )
            return await self._one_by_one(route, items)
        self._timed(first.topic, items, started, ok=True)
        for d, _ in items:
            self._attempts.pop(d.where, None)
            self.metrics.inc("events_processed", d.topic)
        return None

    async def _refuse(self, items: list[tuple[Delivery, Any]], refusals: dict[str, str]) -> None:
        """Dead-letter the events a batch handler refused, at once (awaited)."""
        refused = [
            (d, refusals[i]) for d, item in items if (i := getattr(item, "id", None)) in refusals
        ]
        await asyncio.gather(*(self.dead_letter(d, reason) for d, reason in refused))
        self._settled.update(d.where for d, _ in refused)

    def _parsed(
        self, route: Route, group: list[Delivery]
    ) -> tuple[list[tuple[Delivery, Any]], list[tuple[Delivery, str]]]:
        """(records to hand over with their item, invalid records to dead-letter)."""
        items: list[tuple[Delivery, Any]] = []
        poison: list[tuple[Delivery, str]] = []
        for d in group:
            if d.where in self._settled:
                continue  # dead-lettered before a rewind of its poll
            if not route.parse:
                items.append((d, d))
                continue
            try:
                event = d.event()
                expected = topic_for_type(event.type)
                if expected != d.topic:
                    raise EventRejected(f"event type {event.type} belongs on {expected}")
                items.append((d, event))
            except EventRejected as exc:
                if route.dead_letters:
                    poison.append((d, exc.reason))
            except Exception as exc:  # a record that breaks the parser must not block it
                log.exception("unexpected failure parsing %s[%d]@%d", *d.where)
                if route.dead_letters:
                    poison.append((d, f"could not be parsed: {type(exc).__name__}"))
        return items, poison

    async def _one_by_one(self, route: Route, items: list[tuple[Delivery, Any]]) -> int | None:
        for d, item in items:
            if not await self._guard(route, d, item):
                return d.offset
        return None

    async def _guard(self, route: Route, d: Delivery, item: Any) -> bool:
        """Handle one record until done or dead-lettered; False after a transient failure."""
        with bind(**log_ids(d, item)):  # every line about this record names it
            return await self._attempt(route, d, item)

    async def _attempt(self, route: Route, d: Delivery, item: Any) -> bool:
        while True:
            started = time.perf_counter()
            try:
                with consuming(self.tracer, [d], "kafka"):
                    await route.call([item])
            except PermanentError as exc:
                await self.dead_letter(d, exc.reason)
            except TRANSIENT as exc:
                await self._back_off(d.where, exc, unexpected=False)
                return False
            except OperationFailure as exc:
                if await self._back_off(d.where, exc, unexpected=True):
                    continue
                await self.dead_letter(d, f"store refused the write: code {exc.code}")
            except Exception as exc:
                if await self._back_off(d.where, exc, unexpected=True):
                    continue
                reason = f"handler failed {MAX_UNEXPECTED_ATTEMPTS} times: {type(exc).__name__}"
                await self.dead_letter(d, reason)
            else:
                self._timed(d.topic, [(d, item)], started, ok=True)
                self._attempts.pop(d.where, None)
                self.metrics.inc("events_processed", d.topic)
            return True

    def _timed(
        self, topic: str, items: list[tuple[Delivery, Any]], started: float, *, ok: bool
    ) -> None:
        types = {getattr(item, "type", None) or d.headers.get("ce_type", "") for d, item in items}
        kind = types.pop() if len(types) == 1 else "mixed"
        self.metrics.handled(topic, self.group, kind, time.perf_counter() - started, ok)

    async def _back_off(self, where: Where, exc: Exception, *, unexpected: bool) -> bool:
        """Sleep before the next attempt; False once an unexpected error used its attempts."""
        attempt = self._attempts.get(where, 0) + 1
        if unexpected and attempt >= MAX_UNEXPECTED_ATTEMPTS:
            self._attempts.pop(where, None)
            log.error("giving up on %s[%d]@%d", *where, exc_info=exc)
            return False
        self._attempts[where] = attempt
        delay = min(0.2 * 2 ** (attempt - 1), 30.0)
        log.warning(
            "retrying %s[%d]@%d in %.1fs after %s (attempt %d)",
            *where,
            delay,
            type(exc).__name__,
            attempt,
        )
        await asyncio.sleep(delay)
        return True
