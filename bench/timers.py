"""Timers: 1,000,000 pending timers — creation rate, tick cost, 10,000 due at once, 1,000 lag.

Timer documents are built once with the deadlines service's own code (``clocks`` ->
``messages.new_timer``, a request clock with its reminder plan) and copied with distinct
ids and due times, then inserted directly into the ``timers`` collection (batched
``insert_many``, the service's indexes created first). Pending timers are due in 2030.

The deadlines ``Scheduler`` (services/deadlines/scheduler.py) is driven in this process
with the real clock, the MongoDB repositories and a real broker, ticking every ``--tick``
seconds as the service does (default 1 s): a burst of timers is made due at one instant
(their plan set to one ``due`` firing then) and, for each, the lag from that instant (or from
the end of the write that made them due, when a loaded machine finishes it later) to its
firing (leased and saved in a batch, its event published) is measured; the scheduler clears
the outboxes of what it published afterwards (at the end of a round, or after 20,000
firings or half a lease), and the CPU of that write is counted in each burst's CPU per firing.
The physical floor, in the same run: the burst's own timers written once more, one update of
each at the size of its firing's leased write (fields and outbox as the scheduler set them),
in unordered bulk writes of ``--claim``, with nothing read or produced: the least any design
that records each firing before publishing it can cost on this server.
``--compare`` also runs the claim path before 2026-12-01 (``bench/timers_before.py``) on
other timers of the same database, bursts of the two alternating.
Two bursts at the full count: ``--batch`` (default 1,000: lag p99, target < 1 s) and
``--burst`` (default 10,000: when the last one fired, target < 3 s). Tick cost with nothing
due is measured at 10k and at the full count.

    python -m bench.timers --timers 1000000 --batch 1000 --burst 10000 [--claim 500 --workers 2]
"""

from __future__ import annotations

import argparse
import asyncio
import copy
import os
import time
from datetime import date
from pathlib import Path
from typing import Any

from bench.common import (
    Progress,
    cpu_seconds,
    embedded_stack,
    emit,
    machine,
    median,
    percentile,
    rss_mib,
)

FAR_MS = 1_900_000_000_000  # 2030: pending, never due during the benchmark
SERVERS: list[int] = []  # broker and MongoDB pids, for CPU per firing


def template() -> dict[str, Any]:
    """A real request timer document, as the use cases store it."""
    from services.deadlines import clocks
    from services.deadlines.messages import Recompute, new_timer
    from shared.rules import default_policy

    policy = default_policy()
    inputs = {"receipt_date": date(2029, 12, 1).isoformat(), "pauses": []}
    spec = clocks.request_from_inputs("REQ-T", inputs, policy.holiday_calendar)
    return new_timer(Recompute(spec, inputs), policy, "ev-template")


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
    uri: str,
    bootstrap: str,
    db: str,
    bursts: list[tuple[str, int, int]],
    tick: float,
    args: Any,
    floor: bool = False,
) -> dict[str, Any]:
    """Empty-tick cost, then for each ``(scheduler, size, first id)`` burst its firings' lag;
    with ``floor``, the write floor of the largest burst last (it rewrites those timers)."""
    from faststream.kafka import KafkaBroker
    from pymongo import AsyncMongoClient

    from bench.timers_before import BeforeScheduler
    from services.deadlines.repository import mongo_repositories
    from services.deadlines.scheduler import Scheduler
    from shared.clock import SystemClock

    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(uri, tz_aware=True)
    broker = KafkaBroker(bootstrap, log_level=10)
    await broker.start()
    fired_at: dict[str, float] = {}
    sample: list[Any] = []  # one firing's change, the size of the floor's writes

    def record(saved: list[Any]) -> None:
        at = time.time()
        fired_at.update({c.doc_id: at for c in saved})
        sample[:] = sample or [c for c in saved if c.outbox][:1]

    class Timed(Scheduler):
        ended: asyncio.Event | None = None  # set when a tick ends (see ``burst``)

        async def tick(self) -> int:
            fired = await super().tick()
            if self.ended is not None:
                self.ended.set()
            return fired

        async def _relay(self, saved: list[Any], claimed: int) -> int:
            n = await super()._relay(saved, claimed)
            record(saved)
            return n

    class TimedBefore(BeforeScheduler):
        ended: asyncio.Event | None = None

        async def tick(self) -> int:
            fired = await super().tick()
            if self.ended is not None:
                self.ended.set()
            return fired

        async def fired_hook(self, saved: list[Any]) -> None:
            record(saved)

    repos = mongo_repositories(client[db], lambda: broker)
    options = {"batch": args.claim, "workers": args.workers}
    scheds = {"after": Timed(repos, SystemClock(), **options)}
    scheds["before"] = TimedBefore(repos, SystemClock(), **options)
    costs = []
    for _ in range(30):
        t = time.perf_counter()
        await scheds["after"].tick()
        costs.append(1000 * (time.perf_counter() - t))
    result: dict[str, Any] = {"empty_tick_ms": median(costs)}
    for label, size, first in bursts:
        coll = client[db]["timers"]
        print(f"  burst of {size:,} ({label}), load {os.getloadavg()[0]:.1f}", flush=True)
        got = await burst(scheds[label], coll, size, first, tick, fired_at)
        result[str(size) if label == "after" else f"{size}_{label}"] = got
    if floor:
        size, first = max((size, first) for label, size, first in bursts if label == "after")
        timers = client[db]["timers"]
        result["floor_ms"] = await write_floor(timers, size, first, sample, args.claim)
    await broker.stop()
    await client.close()
    return result


async def burst(
    sched: Any, coll: Any, size: int, first: int, tick: float, fired_at: dict[str, float]
) -> dict[str, float]:
    """Make ``size`` pending timers due 2 s from now; lag of each firing after that instant."""
    due_ms = int(time.time() * 1000) + 2000
    ids = [f"request:BT-{i:08d}" for i in range(first, first + size)]
    plan = [{"name": "due", "type": "due", "at_ms": due_ms, "offset": None}]
    due = {"next_fire_ms": due_ms, "due_ms": due_ms, "plan": plan, "fired": []}
    await coll.update_many({"_id": {"$in": ids}}, {"$set": due})
    # On a loaded machine making them due can take longer than the 2 s: no timer can fire
    # before that write ends, so the lag counts from the later of the two instants.
    origin_ms = max(due_ms, time.time() * 1000)
    cpu0 = cpu_seconds(SERVERS) + cpu_seconds([os.getpid()])
    run = asyncio.create_task(sched.run(tick, sweep_every=3600))
    progress = Progress(f"{size:,} timers fired", size)
    deadline = time.monotonic() + 600
    while sum(i in fired_at for i in ids) < size and time.monotonic() < deadline:
        await asyncio.sleep(0.1)
        progress.update(sum(i in fired_at for i in ids))
    sched.ended = asyncio.Event()  # let the tick of the last firing end: it clears what it
    await asyncio.wait_for(sched.ended.wait(), timeout=120)  # published (CPU counted below)
    run.cancel()
    await asyncio.gather(run, return_exceptions=True)
    cpu = cpu_seconds(SERVERS) + cpu_seconds([os.getpid()]) - cpu0
    lags = [1000 * fired_at[i] - origin_ms for i in ids if i in fired_at]
    last = max(lags) if lags else float("nan")
    return {
        "fired": len(lags),
        "lag_p50_ms": percentile(lags, 50),
        "lag_p99_ms": percentile(lags, 99),
        "last_ms": last,
        "fire_rate_per_s": len(lags) / max(last / 1000, 1e-3) if lags else 0.0,
        "made_due_late_ms": origin_ms - due_ms,
        # CPU of broker + MongoDB + this process per firing: steadier than time under load.
        "cpu_ms_per_firing": 1000 * cpu / max(len(lags), 1),
    }


async def write_floor(coll: Any, size: int, first: int, sample: list[Any], claim: int) -> float:
    """Milliseconds to update ``size`` timers once each as a firing does, nothing else."""
    from pymongo import UpdateOne

    change = sample[0]
    # Not marked pending: a later scheduler's sweep would relay these copies one by one.
    body = {**change.fields, "outbox": change.outbox, "outbox_pending": False}
    ids = [f"request:BT-{i:08d}" for i in range(first, first + size)]
    started = time.perf_counter()
    for at in range(0, size, claim):
        ops = [UpdateOne({"_id": i}, {"$set": body}) for i in ids[at : at + claim]]
        await coll.bulk_write(ops, ordered=False)
    return 1000 * (time.perf_counter() - started)


def du_mib(path: Path) -> float:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file()) / 1024 / 1024


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--timers", type=int, default=1_000_000)
    parser.add_argument("--batch", type=int, default=1000, help="due at once: lag p99")
    parser.add_argument("--burst", type=int, default=10_000, help="due at once: last fired")
    parser.add_argument("--tick", type=float, default=1.0)
    parser.add_argument("--claim", type=int, default=500, help="timers claimed per claim")
    parser.add_argument("--workers", type=int, default=2, help="claim loops per tick")
    parser.add_argument(
        "--compare", action="store_true", help="also run the claim path before 2026-12-01"
    )
    args = parser.parse_args(argv)
    rounds = 2 if args.compare else 1
    if args.timers < 10_000 + rounds * (args.batch + args.burst):
        parser.error("--timers must hold 10,000 + (--batch + --burst) per scheduler compared")
    print(f"timers benchmark — {machine()}; load {os.getloadavg()[0]:.1f}", flush=True)
    from pymongo import MongoClient

    from services.deadlines.repository import INDEXES
    from shared.kafka_admin import ensure_topics
    from shared.topics import all_topics

    base = template()
    small = min(10_000, args.timers)
    with embedded_stack() as st:
        SERVERS[:] = [st.broker_pid, st.mongo_pid]
        asyncio.run(ensure_topics(st.bootstrap, all_topics()))
        db: Any = MongoClient(st.mongodb_uri, tz_aware=True)["bench_deadlines"]
        for name, models in INDEXES.indexes.items():
            db[name].create_indexes(models)
        rate_small = insert(db.timers, base, 0, small, "timers created")
        rss0 = rss_mib(os.getpid())
        at_small = asyncio.run(
            measure(
                st.mongodb_uri, st.bootstrap, "bench_deadlines",
                [("after", min(args.batch, small // 2), 0)], args.tick, args,
            )
        )  # fmt: skip
        rate_big = insert(db.timers, base, small, args.timers, "timers created")
        labels = ["before", "after"] if args.compare else ["after"]
        bursts, first = [], small
        for size in (args.batch, args.burst):  # before and after alternate, for load drift
            for label in labels:
                bursts.append((label, size, first))
                first += size
        at_big = asyncio.run(
            measure(st.mongodb_uri, st.bootstrap, "bench_deadlines", bursts, args.tick, args, True)
        )
        rss1 = rss_mib(os.getpid())
        db_mib = du_mib(st.home / "mongo-data") if st.home else float("nan")
    created = rate_small if args.timers <= small else rate_big
    report(args, small, created, len(INDEXES.indexes["timers"]), db_mib, rss0, rss1)
    lag, many = at_big[str(args.batch)], at_big[str(args.burst)]
    at_big.update(lag_p50_ms=lag["lag_p50_ms"], lag_p99_ms=lag["lag_p99_ms"])  # run_all's keys
    at_big["burst_last_ms"] = many["last_ms"]
    floor = at_big["floor_ms"]
    print(
        f"at {args.timers:,} pending: empty tick {at_big['empty_tick_ms']:.1f} ms (vs "
        f"{at_small['empty_tick_ms']:.1f} ms at {small:,}); claims of {args.claim}, "
        f"{args.workers} worker(s)\n"
        f"  {args.batch:,} due at once: lag p50 {lag['lag_p50_ms']:.0f} ms, p99 "
        f"{lag['lag_p99_ms']:.0f} ms (target p99 < 1000 ms)\n"
        f"  {args.burst:,} due at once: last fired after {many['last_ms']:.0f} ms (target "
        f"< 3000 ms), p50 {many['lag_p50_ms']:.0f} ms, {many['fire_rate_per_s']:.0f} firings/s\n"
        f"  physical floor, same run: one firing-sized update of each of the {args.burst:,} "
        f"(bulk writes of {args.claim}, {len(INDEXES.indexes['timers'])} indexes), nothing "
        f"read or produced: {floor:.0f} ms ({1000 * floor / args.burst:.0f} us per timer); "
        f"last fired / floor = {many['last_ms'] / floor:.2f}"
    )
    if args.compare:
        old, old_many = at_big[f"{args.batch}_before"], at_big[f"{args.burst}_before"]
        print(
            f"  before (claim update_many, save, token read, clear), same run:\n"
            f"  {args.batch:,} due at once: lag p99 {old['lag_p99_ms']:.0f} ms; "
            f"{args.burst:,}: last fired after {old_many['last_ms']:.0f} ms "
            f"({old_many['fire_rate_per_s']:.0f} firings/s); after/before time "
            f"{many['last_ms'] / old_many['last_ms']:.2f}; CPU per firing (servers + "
            f"scheduler) {many['cpu_ms_per_firing']:.2f} vs {old_many['cpu_ms_per_firing']:.2f} "
            f"ms = {many['cpu_ms_per_firing'] / old_many['cpu_ms_per_firing']:.2f}"
        )
    result = {
        "benchmark": "timers",
        "timers": args.timers,
        "claim": args.claim,
        "workers": args.workers,
        "create_per_s": round(rate_big if args.timers > small else rate_small),
        "db_mib": round(db_mib, 1),
        "scheduler_rss_mib": {"small": round(rss0, 1), "full": round(rss1, 1)},
        "small": small,
        "at_small": at_small,
        "at_full": at_big,
    }
    emit(result)
    return result


def report(
    args: Any, small: int, rate: float, indexes: int, db_mib: float, rss0: float, rss1: float
) -> None:
    print(
        f"created {args.timers:,} timers at {rate:,.0f}/s (insert_many, {indexes} indexes); "
        f"database on disk {db_mib:,.0f} MiB; scheduler process RSS {rss0:.0f} MiB at "
        f"{small:,} pending, {rss1:.0f} MiB at {args.timers:,}"
    )


if __name__ == "__main__":
    main()
