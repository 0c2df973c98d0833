"""Consumer lag per partition: the end of each partition minus the group's committed offset.

Read through the Kafka protocol with an admin client and a group-less consumer, both kept open
for the service's life. Partitions are named explicitly (the embedded broker cannot list
offsets without a partition list), from the topic plan in ``shared.topics``.
"""

from __future__ import annotations

from collections.abc import Mapping

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient

from shared.metrics import Key


class ConsumerLag:
    """How far one consumer group is behind on each partition of its topics."""

    def __init__(self, bootstrap: str, group: str, partitions: Mapping[str, int]) -> None:
        self.group = group
        self._tps = [TopicPartition(t, p) for t, n in sorted(partitions.items()) for p in range(n)]
        self._admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=5_000)
        self._ends = AIOKafkaConsumer(
            bootstrap_servers=bootstrap, group_id=None, enable_auto_commit=False
        )
        self._started = False

    async def lag(self) -> dict[TopicPartition, int]:
        """Records not yet committed by the group, per partition."""
        if not self._started:
            self._started = True
            await self._admin.start()
            await self._ends.start()
        committed = await self._admin.list_consumer_group_offsets(self.group, partitions=self._tps)
        ends = await self._ends.end_offsets(self._tps)
        starts = await self._ends.beginning_offsets(self._tps)
        result = {}
        for tp in self._tps:
            done = committed.get(tp)
            position = done.offset if done is not None and done.offset >= 0 else starts[tp]
            result[tp] = max(0, ends[tp] - position)
        return result

    async def figures(self) -> Mapping[Key, float]:
        """The lag as gauge figures, by topic, partition and group."""
        return {
            (
                ("messaging.consumer.group.name", self.group),
                ("messaging.destination.name", tp.topic),
                ("messaging.destination.partition.id", str(tp.partition)),
            ): float(value)
            for tp, value in (await self.lag()).items()
        }

    async def close(self) -> None:
        """Close both clients (also when a start was interrupted)."""
        self._started = False
        await self._ends.stop()
        await self._admin.close()
