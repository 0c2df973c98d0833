"""Replica run: N members of each service in one consumer group, rebalanced while traffic flows.

For each N (default 1, 2 and 4), a fresh private embedded stack and `gardien up --replicas N`
(every service N processes, each on its own port, one group per service; the topics have 6
partitions). A registry of 2 kafka systems and a responder in this process answering every
erasure command with ``erased``. The workload, produced at once: access and erasure requests
(``gdpr.request.received``, half each) and contracts that ended in 2019, whose retention
clocks are due at once (the scheduler fires them, erasure opens a purge case, the systems
answer). When 30% of it is done, member N of every service is stopped (SIGTERM: it leaves
its group, the others rebalance) and the launcher starts it again (it re-joins: a second
rebalance). N = 1 stops the only member: a restart, not a rebalance.

Measured: items completed per second (a request when its audit trail holds ``accepted`` and
``deadline.scheduled``, plus ``decided`` for erasure; a case when ``opened`` and ``closed``
are audited), and the rebalance pause: the longest time without any audit append after the
stop, against the longest before it. Then every correctness check of
``bench.replica_checks`` on the drained run (exactly-once effect, order per key, every clock
fired once, every command acknowledged once, ``gardien audit verify``).

    python -m bench.replicas [--members 1 2 4] [--requests 300] [--contracts 60]
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import os
import signal
import threading
import time
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx

from bench.common import Progress, Stack, Up, embedded_stack, emit, gardien_up, machine
from bench.fanout import responder
from bench.pipeline import received_event
from bench.replica_checks import verify_run
from shared import topics

REQUEST_TYPES = frozenset({"gardien.request.accepted", "gardien.deadline.scheduled"})
ERASURE_TYPES = REQUEST_TYPES | {"gardien.request.decided"}
CASE_TYPES = frozenset({"gardien.erasure.case.opened", "gardien.erasure.case.closed"})
Event = tuple[str, str, dict[str, Any]]  # topic, key, CloudEvent


def contract_ended(run: str, i: int) -> dict[str, Any]:
    """A contract that ended in 2019: its retention clock is due at once."""
    cid = f"CTR{run}-{i}"
    return {
        "specversion": "1.0",
        "id": f"ev-{cid}",
        "source": "bench.replicas",
        "type": "gdpr.contract.ended",
        "time": "2019-06-30T18:00:00+02:00",
        "datacontenttype": "application/json",
        "data": {
            "contract_id": cid,
            "subject": {
                "kind": "customer",
                "identifiers": {"email": f"c{run}{i}@example.org", "customer_id": f"K{run}{i}"},
            },
            "ended_at": "2019-06-30T18:00:00+02:00",
            "categories": ["customer"],
        },
    }


class Workload:
    """The events of one run and what the audit trail must show for each item."""

    def __init__(self, requests: int, contracts: int) -> None:
        run = uuid.uuid4().hex[:5]
        self.events: list[Event] = []
        self.rights: dict[str, str] = {}
        self.contracts: list[str] = []
        self.needs: dict[tuple[str, str], frozenset[str]] = {}  # (ref field, value) -> types
        for i in range(requests):
            event = received_event(run, i, "erasure" if i % 2 else "access")
            rid, right = event["data"]["request_id"], event["data"]["right"]
            self.rights[rid] = right
            self.events.append((topics.REQUESTS, rid, event))
            self.needs[("request_id", rid)] = ERASURE_TYPES if right == "erasure" else REQUEST_TYPES
            if right == "erasure":
                self.needs[("case_id", f"req:{rid}")] = CASE_TYPES
        for i in range(contracts):
            event = contract_ended(run, i)
            cid = event["data"]["contract_id"]
            self.contracts.append(cid)
            self.events.append((topics.CONTRACTS, cid, event))
            self.needs[("case_id", f"ret:retention:{cid}:customer")] = CASE_TYPES


class AuditWatch:
    """Reads new audit records by ``recorded_at``: when each item completed, every append."""

    def __init__(self, up: Up, work: Workload) -> None:
        from pymongo import MongoClient

        self.client = MongoClient(up.mongodb_uri, tz_aware=True)
        self.records = self.client[up.db_name("audit")].records
        self.needs = work.needs
        self.seen: dict[tuple[str, str], set[str]] = {}
        self.done_at: dict[tuple[str, str], float] = {}
        self.appends: list[float] = []
        self.ids: set[str] = set()
        self.start = self.since = datetime.now(UTC) - timedelta(seconds=5)

    def poll(self, full: bool = False) -> int:
        """Read the records appended since the last poll (``full``: since the start).

        A record's ``recorded_at`` is its batch's start: with several audit members a batch
        begun earlier can land after a later one, hence the 30 s look-back.
        """
        since = self.start if full else self.since - timedelta(seconds=30)
        query = {"recorded_at": {"$gte": since}}
        newest = self.since
        for doc in self.records.find(query, {"type": 1, "refs": 1, "recorded_at": 1}):
            if doc["_id"] in self.ids:
                continue
            self.ids.add(doc["_id"])
            newest = max(newest, doc["recorded_at"])
            at = doc["recorded_at"].timestamp()
            self.appends.append(at)
            for field in ("request_id", "case_id"):
                item = (field, str((doc.get("refs") or {}).get(field)))
                if item in self.needs and item not in self.done_at:
                    self.seen.setdefault(item, set()).add(doc["type"])
                    if self.needs[item] <= self.seen[item]:
                        self.done_at[item] = at
        self.since = newest
        return len(self.done_at)

    def longest_gap(self, start: float, end: float) -> float:
        """Longest time in [start, end] without an audit append, in seconds."""
        points = sorted([start, *(a for a in self.appends if start <= a <= end), end])
        return max((b - a for a, b in itertools.pairwise(points)), default=0.0)


async def produce(bootstrap: str, events: list[Event]) -> None:
    from aiokafka import AIOKafkaProducer

    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, linger_ms=5)
    await producer.start()
    try:
        sent = [
            await producer.send(t, json.dumps(e).encode(), key=k.encode()) for t, k, e in events
        ]
        await asyncio.gather(*sent)
    finally:
        await producer.stop()


def _state(up: Up) -> dict[str, Any]:
    return dict(json.loads((up.home / "up.json").read_text()))


def stop_members(up: Up, replicas: int) -> dict[str, int]:
    """SIGTERM member ``replicas`` of every service; the launcher starts it again."""
    state = _state(up)
    stopped = {}
    for service in ("intake", "deadlines", "erasure", "audit"):
        name = service if replicas == 1 else f"{service}-{replicas}"
        pid = int(state["children"][name])
        os.killpg(pid, signal.SIGTERM)
        stopped[name] = pid
    return stopped


def wait_back(up: Up, stopped: dict[str, int], timeout: float = 120) -> float:
    """Seconds until every stopped member runs again (new pid) and answers /healthz."""
    started, waiting = time.monotonic(), dict(stopped)
    while waiting and time.monotonic() - started < timeout:
        state = _state(up)
        for name, old in list(waiting.items()):
            if int(state["children"].get(name, old)) == old:
                continue
            try:
                port = state["ports"][name]
                if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200:
                    del waiting[name]
            except httpx.HTTPError:
                pass
        time.sleep(0.2)
    return round(time.monotonic() - started, 2) if not waiting else float("nan")


def run(
    st: Stack, replicas: int, requests: int, contracts: int, stall: float, rejoin: bool = True
) -> dict[str, Any]:
    """One replica run on ``st``: traffic, a member stopped (and, with ``rejoin``, waited for
    until it is back: a second rebalance), then the checks."""
    work = Workload(requests, contracts)
    stop = threading.Event()
    with gardien_up(st, replicas=replicas, timeout=60 + 30 * replicas) as up:
        answers = threading.Thread(target=lambda: asyncio.run(responder(up.bootstrap, stop)))
        answers.start()
        try:
            time.sleep(3)  # the other members finish joining their groups
            figures = _traffic(up, work, replicas, stall, rejoin)
        finally:
            stop.set()
            answers.join()
        verdict = verify_run(up.bootstrap, up.mongodb_uri, up.prefix, work.rights, work.contracts)
    return {"replicas": replicas, **figures, "checks": verdict.summary()}


class Stopper(threading.Thread):
    """Stops member ``replicas`` of every service once, then times its return."""

    def __init__(self, up: Up, replicas: int) -> None:
        super().__init__(daemon=True)
        self.up, self.replicas = up, replicas
        self.at, self.back_after = 0.0, float("nan")

    def run(self) -> None:
        self.at = time.time()
        try:
            self.back_after = wait_back(self.up, stop_members(self.up, self.replicas))
        except FileNotFoundError:  # the run ended and its stack went away first: not timed
            self.back_after = float("nan")


def _traffic(up: Up, work: Workload, replicas: int, stall: float, rejoin: bool) -> dict[str, Any]:
    watch = AuditWatch(up, work)
    total, t0 = len(work.needs), time.time()
    producer = threading.Thread(target=lambda: asyncio.run(produce(up.bootstrap, work.events)))
    producer.start()
    progress = Progress(f"replicas={replicas}: items completed", total)
    stopper = Stopper(up, replicas)
    done, moved, swept = 0, time.monotonic(), time.monotonic()
    while done < total and time.monotonic() - moved < stall:
        time.sleep(0.3)
        full = time.monotonic() - max(moved, swept) > 10  # idle: read everything again
        swept = time.monotonic() if full else swept
        now = watch.poll(full)
        moved = time.monotonic() if now != done else moved
        done = now
        progress.update(done)
        if not stopper.is_alive() and not stopper.at and done >= 0.3 * total:
            stopper.start()
            while not stopper.at:
                time.sleep(0.01)
    producer.join()
    if rejoin and stopper.at:
        stopper.join()
        watch.poll()
    end = max(watch.done_at.values(), default=time.time())
    watch.client.close()
    killed_at = stopper.at
    return {
        "items": total,
        "completed": done,
        "seconds": round(end - t0, 2),
        "items_per_s": round(done / max(end - t0, 1e-9), 2),
        "stopped_at_s": round(killed_at - t0, 2) if killed_at else None,
        "back_after_s": stopper.back_after,
        "pause_s": round(watch.longest_gap(killed_at, end), 2) if killed_at else None,
        "gap_before_s": _gap_before(watch, t0, killed_at),
    }


def _gap_before(watch: AuditWatch, t0: float, killed_at: float) -> float | None:
    """Longest time without an audit append from the run's first append to the stop."""
    first = [a for a in watch.appends if t0 <= a < killed_at]
    return round(watch.longest_gap(min(first), killed_at), 2) if killed_at and first else None


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--members", type=int, nargs="+", default=[1, 2, 4])
    parser.add_argument("--requests", type=int, default=300, help="requests per run (half erasure)")
    parser.add_argument("--contracts", type=int, default=60, help="retention clocks due per run")
    parser.add_argument("--stall", type=float, default=120, help="give up after this long idle")
    args = parser.parse_args(argv)
    print(f"replica benchmark — {machine()}", flush=True)
    runs = []
    for n in args.members:
        with embedded_stack() as st:
            runs.append(run(st, n, args.requests, args.contracts, args.stall))
        r = runs[-1]
        print(
            f"replicas={n}: {r['completed']}/{r['items']} items in {r['seconds']}s = "
            f"{r['items_per_s']}/s; member stopped at {r['stopped_at_s']}s, back after "
            f"{r['back_after_s']}s; longest pause after the stop {r['pause_s']}s (before: "
            f"{r['gap_before_s']}s); checks {'OK' if r['checks']['ok'] else 'FAILED'} "
            f"{json.dumps(r['checks'])}",
            flush=True,
        )
    result = {"benchmark": "replicas", "runs": runs, "ok": all(r["checks"]["ok"] for r in runs)}
    emit(result)
    return result


if __name__ == "__main__":
    main()
