"""What one request really costs the servers: documents stored, messages produced and consumed.

Measured on a running `gardien up`: the documents of every service database, the records of
every Gardien topic and the offsets every consumer group committed, before and after a batch
of requests; the difference divided by the number of requests. Document *updates* leave no
count behind; they are added from the code (``UPDATES_PER_REQUEST``) by ``bench.ceiling``.

    python -m bench.counts --requests 20
"""

from __future__ import annotations

import argparse
import asyncio
from dataclasses import dataclass
from typing import Any

SERVICES = ("intake", "deadlines", "erasure", "audit")


@dataclass
class Snapshot:
    documents: dict[str, int]  # "<service>.<collection>" -> documents
    messages: dict[str, int]  # topic -> records
    consumed: dict[str, int]  # group -> committed records over every topic


async def snapshot(bootstrap: str, mongodb_uri: str, prefix: str) -> Snapshot:
    """Documents, topic records and committed offsets right now."""
    from aiokafka import AIOKafkaConsumer, TopicPartition
    from aiokafka.admin import AIOKafkaAdminClient
    from pymongo import AsyncMongoClient

    from shared.topics import all_topics

    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(mongodb_uri)
    documents: dict[str, int] = {}
    for service in SERVICES:
        db = client[f"{prefix}{service}"]
        for name in await db.list_collection_names():
            documents[f"{service}.{name}"] = await db[name].estimated_document_count()
    await client.close()
    tps = [TopicPartition(t, p) for t, n in sorted(all_topics().items()) for p in range(n)]
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap)
    await consumer.start()
    ends = await consumer.end_offsets(tps)
    await consumer.stop()
    messages: dict[str, int] = {}
    for tp, end in ends.items():
        messages[tp.topic] = messages.get(tp.topic, 0) + end
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    consumed: dict[str, int] = {}
    for service in SERVICES:
        offsets = await admin.list_consumer_group_offsets(f"gardien-{service}", partitions=tps)
        consumed[service] = sum(max(meta.offset, 0) for meta in offsets.values())
    await admin.close()
    return Snapshot(documents, messages, consumed)


def per_request(before: Snapshot, after: Snapshot, n: int) -> dict[str, Any]:
    """The difference of two snapshots per request, by collection, topic and group."""

    def diff(a: dict[str, int], b: dict[str, int]) -> dict[str, float]:
        out = {k: round((b.get(k, 0) - a.get(k, 0)) / n, 2) for k in set(a) | set(b)}
        return {k: v for k, v in sorted(out.items()) if v}

    docs = diff(before.documents, after.documents)
    produced = diff(before.messages, after.messages)
    consumed = diff(before.consumed, after.consumed)
    return {
        "documents": docs,
        "documents_total": round(sum(docs.values()), 2),
        "produced": produced,
        "produced_total": round(sum(produced.values()), 2),
        "consumed": consumed,
        "consumed_total": round(sum(consumed.values()), 2),
    }


def main(argv: list[str] | None = None) -> dict[str, Any]:
    from bench.common import embedded_stack, gardien_up
    from bench.pipeline import run_phase

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=20)
    args = parser.parse_args(argv)
    out: dict[str, Any] = {}
    with embedded_stack() as st, gardien_up(st) as up:
        spids = [st.broker_pid, st.mongo_pid]
        run_phase(up, spids, "warm-up", 5, None, 0.5, timeout=60)
        for name, share in (("access", 0.0), ("erasure", 1.0)):
            before = asyncio.run(snapshot(up.bootstrap, up.mongodb_uri, up.prefix))
            run_phase(up, spids, name, args.requests, None, share, timeout=60)
            after = asyncio.run(snapshot(up.bootstrap, up.mongodb_uri, up.prefix))
            out[name] = per_request(before, after, args.requests)
            print(f"{name}: {out[name]}")
    return out


if __name__ == "__main__":
    main()
