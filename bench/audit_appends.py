"""Audit appends through the real consumer: records/s, and event -> own record latency.

The audit service runs in its own process (the app as deployed, its Kafka consumer and
MongoDB writes) on a private embedded stack. Each request leaves the trail what the pipeline
leaves it: ``gdpr.request.received`` (a new subject: identifiers sealed under a new key,
subject refs indexed) on gdpr.requests.v1, ``gardien.request.accepted`` and
``gardien.deadline.scheduled`` (linked to it by request id) on their topics.

Phase 1: all records produced at once; appended records/s from the first send to the last
record in the trail (the chain heads' sum). Phase 2: records produced at half that rate;
p50/p99 from each event's send to its own record's ``recorded_at``.

The physical ceiling, measured on the same servers before the service starts: raw
``insert_many`` documents/s and consumed messages/s (``bench.ceiling``), and from them the
most records/s for the documents one record really stores (the record, and the subject-index
entries, links and keys the run's trail holds per record; the chain heads' one update per
chain and batch is left out) and the event it consumes.

    python -m bench.audit_appends --records 20000 --latency-seconds 15
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing as mp
import time
import uuid
from typing import Any

from bench import ceiling
from bench.common import access_request, cpu_seconds, embedded_stack, emit, machine, percentile

TOPICS = ("gdpr.requests.v1", "gardien.requests.v1", "gardien.deadlines.v1")


def events_of(run: str, i: int) -> list[tuple[str, str, dict[str, Any]]]:
    """(topic, key, event) of one request's three audited events."""
    rid = f"A{run}-{i}"
    received = access_request(rid, f"{run}{i}")
    out, ref = [], {"request_id": rid}
    for topic, kind, data in (
        (TOPICS[0], "gdpr.request.received", received),
        (TOPICS[1], "gardien.request.accepted", {"request_id": rid, "right": "access"}),
        (TOPICS[2], "gardien.deadline.scheduled", {"timer_id": f"request:{rid}", "ref": ref}),
    ):
        event = {
            "specversion": "1.0",
            "id": f"{kind}:{rid}",
            "source": "bench.audit",
            "type": kind,
            "time": "2027-03-05T16:45:00+01:00",
            "datacontenttype": "application/json",
            "data": data,
        }
        out.append((topic, rid, event))
    return out


def serve(settings_env: dict[str, str], stop: Any) -> None:
    """The audit app's lifespan in this (child) process until ``stop`` is set."""
    import os

    os.environ.update(settings_env)
    from services.audit.app import create_app
    from shared.settings import Settings

    app = create_app(Settings())

    async def run() -> None:
        async with app.router.lifespan_context(app):
            await asyncio.to_thread(stop.wait)

    asyncio.run(run())


async def produce(
    bootstrap: str,
    items: list[tuple[str, str, dict[str, Any]]],
    rate: float | None,
    sent: dict[str, float],
) -> None:
    from aiokafka import AIOKafkaProducer

    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, linger_ms=2)
    await producer.start()
    started, futures = time.monotonic(), []
    for n, (topic, key, event) in enumerate(items):
        if rate:
            wait = started + n / rate - time.monotonic()
            if wait > 0:
                await asyncio.sleep(wait)
        sent[f"{topic}|{event['id']}"] = time.time()
        body = json.dumps(event).encode()
        futures.append(await producer.send(topic, body, key=key.encode()))
    await asyncio.gather(*futures)
    await producer.stop()


class Trail:
    """Reads the audit database of the child process."""

    def __init__(self, uri: str, db: str) -> None:
        from pymongo import MongoClient

        self.db = MongoClient(uri, tz_aware=True)[db]

    def documents_per_record(self) -> dict[str, float]:
        """Documents of each audit collection per appended record (what the writer stored)."""
        records = max(self.appended(), 1)
        names = ("subject_index", "links", "subject_keys")
        return {n: round(self.db[n].count_documents({}) / records, 3) for n in names}

    def appended(self) -> int:
        return sum(int(d["seq"]) for d in self.db.chain_heads.find({}, {"seq": 1}))

    def wait(self, target: int, timeout: float) -> float:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.appended() >= target:
                return time.time()
            time.sleep(0.05)
        raise RuntimeError(f"only {self.appended()}/{target} records after {timeout:.0f}s")

    def recorded(self, ids: list[str]) -> dict[str, float]:
        out: dict[str, float] = {}
        for first in range(0, len(ids), 500):
            query = {"_id": {"$in": ids[first : first + 500]}}
            for d in self.db.records.find(query, {"recorded_at": 1}):
                out[str(d["_id"])] = d["recorded_at"].timestamp()
        return out


def measure(records: int, latency_seconds: float, rate_arg: float | None = None) -> dict[str, Any]:
    """Run both phases against a fresh stack; the figures (latency at ``rate_arg`` if given,
    else at half the sustained rate)."""
    with embedded_stack() as st:
        from shared.kafka_admin import ensure_topics
        from shared.topics import all_topics

        asyncio.run(ensure_topics(st.bootstrap, all_topics()))
        raw = ceiling.raw_rates(st, 10_000, 20_000, singles=50)
        prefix = f"b{uuid.uuid4().hex[:6]}_"
        env = {
            "KAFKA_BOOTSTRAP_SERVERS": st.bootstrap,
            "MONGODB_URI": st.mongodb_uri,
            "GARDIEN_DB_PREFIX": prefix,
            "GARDIEN_LOG_LEVEL": "WARNING",
            "GARDIEN_FETCH_MAX_WAIT_MS": "20",
            "GARDIEN_KAFKA_SESSION_TIMEOUT_MS": "3000",
            "GARDIEN_PSEUDONYM_KEY": uuid.uuid4().hex * 2,
        }
        ctx = mp.get_context("spawn")
        stop = ctx.Event()
        child = ctx.Process(target=serve, args=(env, stop))
        child.start()
        trail = Trail(st.mongodb_uri, f"{prefix}audit")
        try:
            run = uuid.uuid4().hex[:5]
            warm = [e for i in range(20) for e in events_of(run + "w", i)]
            asyncio.run(produce(st.bootstrap, warm, None, {}))
            trail.wait(len(warm), 120)  # joined, indexes made, keys vault ready
            items = [e for i in range(records // 3) for e in events_of(run, i)]
            stack_pids = [st.broker_pid, st.mongo_pid]
            cpu0, stack0 = cpu_seconds([child.pid or 0]), cpu_seconds(stack_pids)
            base, sent = trail.appended(), {}
            started = time.time()
            asyncio.run(produce(st.bootstrap, items, None, sent))
            finished = trail.wait(base + len(items), 600)
            rate = len(items) / (finished - started)
            rate_override = rate_arg
            cpu = cpu_seconds([child.pid or 0]) - cpu0
            stack_cpu = cpu_seconds(stack_pids) - stack0
            print(
                f"  audit service pid {child.pid}: {cpu:.1f} CPU-s, broker+MongoDB {stack_cpu:.1f}"
            )
            half = rate_override or rate / 2
            n = max(int(half * latency_seconds), 30)
            paced = [e for i in range(n // 3 + 1) for e in events_of(run + "l", i)][:n]
            sent_l: dict[str, float] = {}
            base = trail.appended()
            asyncio.run(produce(st.bootstrap, paced, half, sent_l))
            trail.wait(base + len(paced), 300)
            at = trail.recorded(list(sent_l))
            lat = [1000 * (at[k] - sent_l[k]) for k in sent_l if k in at]
            per_record = trail.documents_per_record()
        finally:
            stop.set()
            child.join(timeout=30)
    return {
        "records": len(items),
        "records_per_s": round(rate, 1),
        "cpu_s_per_1000": round(1000 * cpu / len(items), 3),
        "stack_cpu_s_per_1000": round(1000 * stack_cpu / len(items), 3),
        "half_rate": round(half, 1),
        "p50_ms": round(percentile(lat, 50), 1),
        "p99_ms": round(percentile(lat, 99), 1),
        "max_ms": round(max(lat), 1) if lat else float("nan"),
        "documents_per_record": per_record,
        **ceiling_of(raw, per_record, rate),
    }


def ceiling_of(raw: dict[str, float], per_record: dict[str, float], rate: float) -> dict[str, Any]:
    """The most records/s these servers allow for the documents one record stores (the
    record and what the writer stored besides it) and the event consumed, and the ratio."""
    docs = 1 + sum(per_record.values())
    seconds = docs / raw["insert_many_docs_per_s"] + 1 / raw["consume_msgs_per_s"]
    return {
        "ceiling": {
            "insert_many_docs_per_s": round(raw["insert_many_docs_per_s"]),
            "consume_msgs_per_s": round(raw["consume_msgs_per_s"]),
            "documents_per_record": round(docs, 3),
            "records_per_s": round(1 / seconds, 1),
        },
        "ratio_to_ceiling": round(rate * seconds, 3),
    }


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=20_000)
    parser.add_argument("--latency-seconds", type=float, default=15)
    parser.add_argument("--latency-rate", type=float, default=None, help="instead of half")
    args = parser.parse_args(argv)
    print(f"audit appends benchmark — {machine()}", flush=True)
    r = measure(args.records, args.latency_seconds, args.latency_rate)
    print(
        f"audit appends: {r['records']} records through the consumer at {r['records_per_s']:,.0f}"
        f" records/s (target >= 5,000), {r['cpu_s_per_1000']} CPU-s per 1000 in the service "
        f"(+{r['stack_cpu_s_per_1000']} in broker+MongoDB); "
        f"at half rate ({r['half_rate']:,.0f}/s) event -> own record p50 {r['p50_ms']} ms, "
        f"p99 {r['p99_ms']} ms (target < 100), max {r['max_ms']} ms; besides each record: "
        + ", ".join(f"{v} {k}" for k, v in r["documents_per_record"].items())
    )
    c = r["ceiling"]
    print(
        f"physical ceiling, same servers before the run: {c['insert_many_docs_per_s']:,} docs/s"
        f" insert_many, {c['consume_msgs_per_s']:,} msgs/s consumed -> {c['records_per_s']:,.0f}"
        f" records/s for {c['documents_per_record']} documents per record; ratio "
        f"{r['ratio_to_ceiling']:.2f}"
    )
    emit({"benchmark": "audit_appends", **r})
    return r


if __name__ == "__main__":
    main()
