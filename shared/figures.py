"""Bounded reads behind the business gauges (``services/*/gauges.py``).

A gauge is refreshed in the background (``shared.metrics.Metrics.run``) and must stay cheap
on a large database: every read here goes through an indexed field and reads at most
``GAUGE_CAP`` documents, so a figure at the cap means "at least that many" (documented in
docs/operations.md); each is read once a minute (``GAUGE_EVERY``). Only identifiers and small
fields are projected, never personal data.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from pymongo.asynchronous.collection import AsyncCollection

from shared.metrics import GaugeSource, Key, Metrics

GAUGE_CAP = 10_000  # documents read per figure at most
GAUGE_EVERY = 60.0  # seconds between two reads of a business figure (they change slowly)
SCAN_TIMEOUT = 30.0  # seconds for a figure whose read grows with the open documents


def key(attributes: Mapping[str, str | int]) -> Key:
    """The gauge key of ``attributes`` (sorted pairs)."""
    return tuple(sorted(attributes.items()))


async def capped_count(
    collection: AsyncCollection[dict[str, Any]], query: dict[str, Any], cap: int = GAUGE_CAP
) -> int:
    """How many documents match ``query``, counting no further than ``cap``."""
    if cap <= 0:  # a limit of 0 means "no limit" to MongoDB
        return 0
    cursor = collection.find(query, {"_id": 1}).limit(cap)
    return len(await cursor.to_list(cap))


async def outbox_backlog(collection: AsyncCollection[dict[str, Any]], cap: int = GAUGE_CAP) -> int:
    """Events left in the outboxes of ``collection`` (of at most ``cap`` pending documents)."""
    if cap <= 0:
        return 0
    cursor = collection.find({"outbox_pending": True}, {"outbox": 1}).limit(cap)
    return sum(len(entries(doc.get("outbox"))) for doc in await cursor.to_list(cap))


def entries(stored: Any) -> list[Any]:
    """A stored array (the embedded server may return it as JSON text) as a list."""
    if isinstance(stored, str):
        stored = json.loads(stored)
    return list(stored or [])


def outbox_gauge(metrics: Metrics, source: GaugeSource) -> None:
    """The outbox backlog gauge, one name in every service with an outbox."""
    metrics.gauge(
        "gardien.outbox.backlog",
        "Events written to a document's outbox and not yet published to Kafka.",
        "{event}",
        source,
        GAUGE_EVERY,
        timeout=SCAN_TIMEOUT,  # reads every pending outbox: a backlog of thousands outlasts 5 s
    )
