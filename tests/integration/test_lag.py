"""Consumer lag is read from the real broker: records produced and not committed."""

from __future__ import annotations

import uuid

import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition

from shared.kafka_admin import ensure_topics
from shared.lag import ConsumerLag
from shared.settings import Settings
from tests.support import produce

pytestmark = pytest.mark.integration


async def test_lag_counts_what_the_group_has_not_committed(settings: Settings) -> None:
    bootstrap = settings.kafka_bootstrap_servers
    topic, group = f"lag-{uuid.uuid4().hex[:8]}", f"g-{uuid.uuid4().hex[:8]}"
    await ensure_topics(bootstrap, {topic: 2})
    await produce(bootstrap, topic, [(b"k", b"v%d" % i) for i in range(5)])
    probe = ConsumerLag(bootstrap, group, {topic: 2})
    try:
        before = await probe.lag()
        assert sum(before.values()) == 5
        consumer = AIOKafkaConsumer(
            topic,
            bootstrap_servers=bootstrap,
            group_id=group,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
        )
        await consumer.start()
        try:
            got = 0
            while got < 5:
                batch = await consumer.getmany(timeout_ms=1000)
                got += sum(len(v) for v in batch.values())
            await consumer.commit()
        finally:
            await consumer.stop()
        after = await probe.lag()
        assert after == {TopicPartition(topic, 0): 0, TopicPartition(topic, 1): 0}
        figures = await probe.figures()
        assert {dict(k)["messaging.destination.partition.id"] for k in figures} == {"0", "1"}
    finally:
        await probe.close()
