"""Topic administration through the Kafka protocol (works on Tansu and Apache Kafka)."""

from __future__ import annotations

import logging

from aiokafka.admin import AIOKafkaAdminClient, NewTopic

log = logging.getLogger(__name__)


async def ensure_topics(bootstrap: str, wanted: dict[str, int]) -> list[str]:
    """Create the topics of ``wanted`` that do not exist yet; return the names created."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=10_000)
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        missing = [
            NewTopic(name=name, num_partitions=count, replication_factor=1)
            for name, count in sorted(wanted.items())
            if name not in existing
        ]
        if missing:
            await admin.create_topics(missing)
        return [topic.name for topic in missing]
    finally:
        await admin.close()


async def partition_counts(bootstrap: str, names: list[str]) -> dict[str, int]:
    """Partition count of each named topic (0 when it does not exist)."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=10_000)
    await admin.start()
    try:
        described = await admin.describe_topics(names)
        return {d["topic"]: len(d.get("partitions", [])) for d in described}
    finally:
        await admin.close()
