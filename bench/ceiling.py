"""Ceiling: what the servers physically do, and the best requests/s that allows.

Measured in one run on a private embedded stack (the servers the pipeline runs on):

* MongoDB: raw ``insert_many`` documents/s (batches of 500, ~500-byte documents), and
  single round trips (``insert_one``, ``find_one``, ``update_one``) per second;
* Kafka: raw aiokafka produce messages/s (batched: linger 5 ms, no wait per message) and
  consume messages/s (``getmany``), ~500-byte messages.

The best possible requests/s follows from what one request really needs (``NEEDS``, counted
from the code and checked on a live run by ``python -m bench.counts``): documents written
(inserts and updates, each one document of a bulk write), messages produced and messages
consumed. The servers and clients share the machine's cores, so the costs add up:
``1 / (docs / docs_per_s + produced / produce_per_s + consumed / consume_per_s)``.

    python -m bench.ceiling [--docs 20000] [--messages 30000]
"""

from __future__ import annotations

import argparse
import asyncio
import time
import uuid
from dataclasses import dataclass
from typing import Any

from bench.common import embedded_stack, emit, machine


@dataclass(frozen=True)
class Need:
    """What one request costs the servers at the least, and where the figures come from."""

    others: int  # documents written besides audit's subject-index entries
    audited: tuple[dict[str, Any], ...]  # the data of the events the audit records
    produced: int
    consumed: int
    where: str

    @property
    def index_entries(self) -> int:
        """The subject-index entries the audit writes for the request (code: index_entries)."""
        return subject_index_entries(self.audited)

    @property
    def documents(self) -> int:
        return self.others + self.index_entries


def subject_index_entries(audited: tuple[dict[str, Any], ...]) -> int:
    """Entries ``services.audit`` writes for one request's records: each record names the
    subject's two refs (its identifiers, or its request's link); the writer skips entries it
    wrote before, so the request costs its distinct entries."""
    from services.audit.domain import references
    from services.audit.repository import index_entries

    subject = ["ref-email", "ref-customer"]
    records = [
        {"_id": f"r{i}", "refs": references(data), "subject_refs": subject}
        for i, data in enumerate(audited)
    ]
    return len(index_entries(records))


R, K = "REQ-1", "req:REQ-1"  # a request and its erasure case (erasure's case ids)
# The data, as far as its references go, of the events one request leaves in the trail.
ACCESS = (
    {"request_id": R},
    {"request_id": R},
    {"timer_id": f"request:{R}", "ref": {"request_id": R}},
)
ERASURE = (
    *ACCESS,  # received, accepted, deadline.scheduled
    {"request_id": R},  # decided
    {"case_id": K, "request_id": R},  # work requested
    {"case_id": K, "request_id": R},  # case opened
    {"command_id": f"{K}:crm", "case_id": K, "system": "crm"},  # 2 commands (2 systems)
    {"command_id": f"{K}:billing", "case_id": K, "system": "billing"},
)
# Measured with `python -m bench.counts --requests 20` (stored documents, topic records and
# committed offsets per request) plus the updates the code makes (outbox clears), see
# docs/performance.md "What one request needs"; the subject-index entries are counted from
# the code (``subject_index_entries``).
NEEDS: dict[str, Need] = {
    "access": Need(
        others=11,
        audited=ACCESS,
        produced=3,
        consumed=5,
        where=(
            "stored: intake request + 2 subject-history docs, deadlines timer, audit 3 records"
            " + 1 link + 1 subject key = 9, + the subject-index entries (one per subject ref"
            " and aggregate); updated: 2 outbox clears (shared/outbox.py relay, deadlines"
            " repository relay); produced: request.received, request.accepted,"
            " deadline.scheduled; consumed: intake 1, deadlines 1, audit 3"
        ),
    ),
    "erasure": Need(
        others=22,
        audited=ERASURE,
        produced=8,
        consumed=13,
        where=(
            "stored: intake 3, deadlines 1 timer, erasure 1 case, audit 8 records + 4 links"
            " + 1 key = 18, + the subject-index entries (one per subject ref and aggregate:"
            " request, case); updated: 4 (intake outbox clear, deadlines timer moved by"
            " request.decided and its outbox clear, erasure case outbox clear); produced:"
            " received, accepted, decided, work requested, case opened, 2 commands (2 systems),"
            " deadline.scheduled; consumed: intake 2, deadlines 2, erasure 1, audit 8"
        ),
    ),
}
DOC = {"kind": "bench", "pad": "x" * 440}  # ~500 bytes as BSON with its _id and fields


async def mongo_rates(uri: str, docs: int, singles: int) -> dict[str, float]:
    """Raw insert_many documents/s and single round trips/s on a fresh database."""
    from pymongo import AsyncMongoClient

    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(uri, tz_aware=True)
    coll = client[f"bench_ceiling_{uuid.uuid4().hex[:6]}"]["docs"]
    started = time.perf_counter()
    for first in range(0, docs, 500):
        await coll.insert_many([{"_id": f"d{i}", **DOC} for i in range(first, first + 500)])
    insert_many = docs / (time.perf_counter() - started)
    out = {"insert_many_docs_per_s": insert_many}
    ops = {
        "insert_one_per_s": lambda i: coll.insert_one({"_id": f"s{i}", **DOC}),
        "find_one_per_s": lambda i: coll.find_one({"_id": f"d{i}"}),
        "update_one_per_s": lambda i: coll.update_one({"_id": f"d{i}"}, {"$set": {"n": i}}),
    }
    for name, op in ops.items():
        started = time.perf_counter()
        for i in range(singles):
            await op(i)
        out[name] = singles / (time.perf_counter() - started)
    await client.drop_database(coll.database.name)
    await client.close()
    return out


async def kafka_rates(bootstrap: str, messages: int) -> dict[str, float]:
    """Raw batched produce messages/s and getmany consume messages/s, ~500-byte messages."""
    from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

    from shared.kafka_admin import ensure_topics

    topic = f"bench.ceiling.{uuid.uuid4().hex[:6]}"
    await ensure_topics(bootstrap, {topic: 6})
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, linger_ms=5)
    await producer.start()
    value = b"x" * 500
    started = time.perf_counter()
    futures = [
        await producer.send(topic, value, key=f"k{i % 97}".encode()) for i in range(messages)
    ]
    await asyncio.gather(*futures)
    produce = messages / (time.perf_counter() - started)
    await producer.stop()
    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=bootstrap,
        group_id=f"bench-{uuid.uuid4().hex[:6]}",
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        fetch_max_wait_ms=20,
        session_timeout_ms=3000,
        heartbeat_interval_ms=1000,
    )
    await consumer.start()
    got, started = 0, 0.0
    while got < messages:
        batch = await consumer.getmany(timeout_ms=200, max_records=500)
        if batch and not started:
            started = time.perf_counter()  # the group join is not part of the rate
        got += sum(len(records) for records in batch.values())
    consume = messages / (time.perf_counter() - started)
    await consumer.stop()
    return {"produce_msgs_per_s": produce, "consume_msgs_per_s": consume}


def raw_rates(st: Any, docs: int, messages: int, singles: int) -> dict[str, float]:
    """Every raw rate of the stack ``st`` (``embedded_stack``), now: MongoDB, then Kafka."""
    found = asyncio.run(mongo_rates(st.mongodb_uri, docs, singles))
    found.update(asyncio.run(kafka_rates(st.bootstrap, messages)))
    return found


def best(need: Need, rates: dict[str, float]) -> dict[str, float]:
    """Requests/s if each resource were alone, and when they share the machine (the ceiling)."""
    alone = {
        "documents": rates["insert_many_docs_per_s"] / need.documents,
        "produce": rates["produce_msgs_per_s"] / need.produced,
        "consume": rates["consume_msgs_per_s"] / need.consumed,
    }
    shared = 1 / sum(1 / r for r in alone.values())
    return {**{f"alone_{k}": round(v, 1) for k, v in alone.items()}, "requests_per_s": shared}


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--docs", type=int, default=20_000)
    parser.add_argument("--singles", type=int, default=1_000)
    parser.add_argument("--messages", type=int, default=30_000)
    args = parser.parse_args(argv)
    print(f"ceiling benchmark — {machine()}", flush=True)
    with embedded_stack() as st:
        rates = raw_rates(st, args.docs, args.messages, args.singles)
    print(
        "raw: insert_many {insert_many_docs_per_s:,.0f} docs/s; insert_one {insert_one_per_s:,.0f}"
        "/s, find_one {find_one_per_s:,.0f}/s, update_one {update_one_per_s:,.0f}/s; produce "
        "{produce_msgs_per_s:,.0f} msgs/s, consume {consume_msgs_per_s:,.0f} msgs/s".format(**rates)
    )
    result: dict[str, Any] = {"benchmark": "ceiling", **{k: round(v) for k, v in rates.items()}}
    for name, need in NEEDS.items():
        bound = best(need, rates)
        result[name] = {**bound, "requests_per_s": round(bound["requests_per_s"], 1)}
        print(
            f"{name} request needs {need.documents} documents ({need.index_entries} subject-index"
            f" entries), {need.produced} produced, "
            f"{need.consumed} consumed messages ({need.where})\n"
            f"  -> ceiling {bound['requests_per_s']:,.1f} requests/s (documents alone "
            f"{bound['alone_documents']:,.0f}/s, produce alone {bound['alone_produce']:,.0f}/s, "
            f"consume alone {bound['alone_consume']:,.0f}/s)"
        )
    emit(result)
    return result


if __name__ == "__main__":
    main()
