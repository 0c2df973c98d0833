"""Timers: 1,000,000 pending timers — creation rate, memory, firing lag, per-tick cost.

Timer documents are built once with the deadlines service's own code (``clocks`` ->
``documents.new_timer``, a request clock with its reminder plan) and copied with distinct
ids and due times, then inserted directly into the ``timers`` collection (batched
``insert_many``, the service's indexes created first). Pending timers are due in 2030.

The deadlines ``Scheduler`` (services/deadlines/scheduler.py) is driven in this process
with the real clock and a real broker, ticking every ``--tick`` seconds as the service does
(default 1 s, the service default): a batch of ``--batch`` timers is made due at one instant
and the lag from that instant to each timer's firing (claimed, advanced, event published)
is measured. Tick cost with nothing due is measured at 10k and at the full count.

    python -m bench.timers --timers 1000000 --batch 1000
"""

from __future__ import annotations

import argparse
import asyncio
import copy
import time
from datetime import date
from pathlib import Path
from typing import Any

from bench.common import (
    Progress,
    embedded_stack,
    emit,
    machine,
    median,
    percentile,
    rss_mib,
)

FAR_MS = 1_900_000_000_000  # 2030: pending, never due during the benchmark

CONCURRENCY = 1  # scheduler workers (--concurrency)


def template() -> dict[str, Any]:
    """A real request timer document, as ``Deadlines.apply`` stores it."""
    from services.deadlines import clocks
    from services.deadlines.documents import Change, new_timer
    from shared.rules import default_policy

    policy = default_policy()
    inputs = {"receipt_date": date(2029, 12, 1).isoformat(), "pauses": []}
    spec = clocks.request_from_inputs("REQ-T", inputs, policy.holiday_calendar)
    return new_timer(Change(spec, inputs), policy, "ev-template")


def timer_doc(base: dict[str, Any], i: int, fire_ms: int) -> dict[str, Any]:
    doc = copy.copy(base)
    tid = f"request:BT-{i:08d}"
    doc["_id"] = tid
    doc["ref"] = {"request_id": f"BT-{i:08d}"}
    doc["next_fire_ms"] = fire_ms
    doc["sort_key"] = f"{fire_ms:015d}|{tid}"
    doc["applied_events"] = [f"ev-{i}"]
    return doc


def insert(coll: Any, base: dict[str, Any], start: int, stop: int, label: str) -> float:
    progress = Progress(label, stop - start)
    started, batch = time.monotonic(), 5000
    for i in range(start, stop, batch):
        docs = [timer_doc(base, j, FAR_MS + j) for j in range(i, min(i + batch, stop))]
        coll.insert_many(docs, ordered=False)
        progress.update(min(i + batch, stop) - start)
    return (stop - start) / (time.monotonic() - started)


async def measure(
    uri: str, bootstrap: str, db_name: str, batch: int, tick: float, first_id: int, rounds: int = 30
) -> dict[str, float]:
    """Empty-tick cost, then lag of ``batch`` timers made due at one instant."""
    from faststream.kafka import KafkaBroker
    from pymongo import AsyncMongoClient

    from services.deadlines.repository import MongoTimers
    from services.deadlines.scheduler import Scheduler
    from shared.clock import SystemClock

    client = AsyncMongoClient(uri, tz_aware=True)
    db = client[db_name]
    broker = KafkaBroker(bootstrap, log_level=10)
    await broker.start()
    fired_at: dict[str, float] = {}

    class Timed(Scheduler):
        async def fire(self, doc: dict[str, Any], token: str, now_ms: int) -> int:
            n = await super().fire(doc, token, now_ms)
            fired_at[str(doc["_id"])] = time.time()
            return n

    sched = Timed(
        lambda: MongoTimers(db),
        lambda: broker,
        SystemClock(),
        lease_seconds=30,
        concurrency=CONCURRENCY,
    )
    costs = []
    for _ in range(rounds):
        t = time.perf_counter()
        await sched.tick()
        costs.append(1000 * (time.perf_counter() - t))
    # A batch comes due: move ``batch`` pending timers to an instant 2 s from now.
    due_ms = int(time.time() * 1000) + 2000
    coll = db["timers"]
    ids = [f"request:BT-{i:08d}" for i in range(first_id, first_id + batch)]
    await coll.update_many({"_id": {"$in": ids}}, {"$set": {"next_fire_ms": due_ms}})
    run = asyncio.create_task(sched.run(tick, sweep_every=3600))
    progress = Progress("timers fired", batch)
    deadline = time.monotonic() + 600
    while len([i for i in ids if i in fired_at]) < batch and time.monotonic() < deadline:
        await asyncio.sleep(0.25)
        progress.update(len([i for i in ids if i in fired_at]))
    run.cancel()
    await asyncio.gather(run, return_exceptions=True)
    lags = [1000 * fired_at[i] - due_ms for i in ids if i in fired_at]
    await broker.stop()
    await client.close()
    return {
        "empty_tick_ms": median(costs),
        "lag_p50_ms": percentile(lags, 50),
        "lag_p99_ms": percentile(lags, 99),
        "fired": len(lags),
        "fire_rate_per_s": len(lags)
        / max((max(fired_at[i] for i in ids if i in fired_at) - due_ms / 1000), 1e-3)
        if lags
        else 0.0,
    }


def du_mib(path: Path) -> float:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file()) / 1024 / 1024


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--timers", type=int, default=1_000_000)
    parser.add_argument("--batch", type=int, default=1000)
    parser.add_argument("--tick", type=float, default=1.0)
    parser.add_argument("--concurrency", type=int, default=1, help="scheduler workers")
    args = parser.parse_args(argv)
    global CONCURRENCY
    CONCURRENCY = args.concurrency
    print(f"timers benchmark — {machine()}", flush=True)
    from pymongo import MongoClient

    from services.deadlines.repository import INDEXES
    from shared.kafka_admin import ensure_topics
    from shared.topics import all_topics

    base = template()
    small = min(10_000, args.timers)
    with embedded_stack() as st:
        asyncio.run(ensure_topics(st.bootstrap, all_topics()))
        db = MongoClient(st.mongodb_uri, tz_aware=True)["bench_deadlines"]
        for name, models in INDEXES.indexes.items():
            db[name].create_indexes(models)
        rate_small = insert(db.timers, base, 0, small, "timers created")
        rss0 = rss_mib(__import__("os").getpid())
        at_small = asyncio.run(
            measure(
                st.mongodb_uri,
                st.bootstrap,
                "bench_deadlines",
                min(args.batch, small // 2),
                args.tick,
                0,
            )
        )
        print(
            f"at {small:,} pending: empty tick {at_small['empty_tick_ms']:.1f} ms, batch lag "
            f"p50 {at_small['lag_p50_ms']:.0f} ms p99 {at_small['lag_p99_ms']:.0f} ms",
            flush=True,
        )
        rate_big = insert(db.timers, base, small, args.timers, "timers created")
        at_big = asyncio.run(
            measure(st.mongodb_uri, st.bootstrap, "bench_deadlines", args.batch, args.tick, small)
        )
        rss1 = rss_mib(__import__("os").getpid())
        db_mib = du_mib(st.home / "mongo-data") if st.home else float("nan")
    create_rate = (
        ((args.timers - small) * 1.0) / ((args.timers - small) / rate_big)
        if args.timers > small
        else rate_small
    )
    print(
        f"created {args.timers:,} timers at {create_rate:,.0f}/s (insert_many, 6 indexes); "
        f"database on disk {db_mib:,.0f} MiB; scheduler process RSS {rss0:.0f} MiB at "
        f"{small:,} pending, {rss1:.0f} MiB at {args.timers:,}"
    )
    print(
        f"at {args.timers:,} pending: empty tick {at_big['empty_tick_ms']:.1f} ms "
        f"(vs {at_small['empty_tick_ms']:.1f} ms at {small:,}); {args.batch} due at once: lag "
        f"p50 {at_big['lag_p50_ms']:.0f} ms, p99 {at_big['lag_p99_ms']:.0f} ms (target p99 "
        f"< 1000 ms), {at_big['fire_rate_per_s']:.0f} firings/s"
    )
    result = {
        "benchmark": "timers",
        "timers": args.timers,
        "create_per_s": round(create_rate),
        "db_mib": round(db_mib, 1),
        "scheduler_rss_mib": {"small": round(rss0, 1), "full": round(rss1, 1)},
        "at_small": {k: round(v, 2) for k, v in at_small.items()},
        "small": small,
        "at_full": {k: round(v, 2) for k, v in at_big.items()},
    }
    emit(result)
    return result


if __name__ == "__main__":
    main()
