"""Audit's subscribers: every Gardien topic, dead-letter topics included."""

from __future__ import annotations

from services.audit.usecases import Auditor
from shared import topics
from shared.service import Runtime


def register(runtime: Runtime, auditor: Auditor) -> None:
    """Subscribe the auditor to every topic, as raw records one partition's batch at a time.

    Each partition is its own chain, so the partitions of one poll are audited at once.
    """
    for topic in sorted(topics.all_topics()):
        runtime.consumer.raw_batches(topic, auditor.record_batch, concurrent=True)
