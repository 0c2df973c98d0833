"""Audit's subscribers: every Gardien topic, dead-letter topics included."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence

from services.audit.usecases import Auditor
from shared import topics
from shared.messaging import Delivery
from shared.service import Runtime


def register(runtime: Runtime, auditor: Callable[[], Awaitable[Auditor]]) -> None:
    """Subscribe the auditor to every topic, as raw records one partition's batch at a time.

    Each partition is its own chain, so the partitions of one poll are audited at once.
    """

    async def on_records(batch: Sequence[Delivery]) -> None:
        await (await auditor()).record_batch(batch)

    for topic in sorted(topics.all_topics()):
        runtime.consumer.raw_batches(topic, on_records, concurrent=True)
