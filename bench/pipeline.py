"""Pipeline: inbound `gdpr.request.received` to audited, through the four real services.

`gardien up` runs intake, deadlines, erasure and audit as separate processes (as deployed)
against a private embedded stack. A request counts as completed when the audit trail holds
every record proving it went through: ``gardien.request.accepted`` and
``gardien.deadline.scheduled`` (clock set) for every request; for erasure requests also
``gardien.request.decided`` and ``gardien.erasure.case.opened`` (decision made, case planned).
Completion is read from the audit database chain by chain up to each chain's head
(``bench.common.AuditTail``: each record read once, no look-back re-reads).

Phase 0 (ceiling, unless ``--ceiling`` gives it): on the same servers before the services
start, ``bench.ceiling``'s raw ``insert_many`` and produce/consume rates and from them the
physical ceiling for the documents and messages one request needs (``ceiling.NEEDS``).
Phase 1 (throughput): all events produced at once; sustained completed requests/s per mix.
Phase 2 (latency): events produced at 50% of the mixed rate (paced); p50/p99 from the
inbound event's send time to its own audit record's ``recorded_at`` and to its last
proving record.
CPU-seconds per completed request: user+system CPU (/proc, what psutil's ``cpu_times``
reads) of the four service processes, and of the broker and MongoDB server, before and
after each phase; their sum per erasure request is the issue's figure.

    python -m bench.pipeline --events 1500 --latency-seconds 30
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import time
import uuid
from typing import Any

from bench.common import (
    AuditTail,
    Progress,
    Up,
    cpu_seconds,
    embedded_stack,
    emit,
    gardien_up,
    machine,
    percentile,
    rss_mib,
)

REQUESTS_TOPIC = "gdpr.requests.v1"
ALWAYS = {"gardien.request.accepted", "gardien.deadline.scheduled"}
ERASURE = ALWAYS | {"gardien.request.decided", "gardien.erasure.case.opened"}


def received_event(run: str, i: int, right: str) -> dict[str, Any]:
    rid = f"B{run}-{i}"
    data: dict[str, Any] = {
        "request_id": rid,
        "right": right,
        "received_at": "2027-03-05T16:45:00+01:00",
        "channel": "web_form",
        "subject": {
            "kind": "customer",
            "identifiers": {"email": f"u{run}{i}@example.org", "customer_id": f"C{run}{i}"},
        },
    }
    if right == "erasure":
        data["details"] = {"contract_status": "terminated", "contract_end_date": "2026-06-30"}
    return {
        "specversion": "1.0",
        "id": f"ev-{rid}",
        "source": "bench.pipeline",
        "type": "gdpr.request.received",
        "time": "2027-03-05T16:45:00+01:00",
        "datacontenttype": "application/json",
        "data": data,
    }


class Tracker:
    """Reads new audit records by ``recorded_at`` and tells when each request is complete."""

    def __init__(self, up: Up, rights: dict[str, str]) -> None:
        from pymongo import MongoClient

        db = MongoClient(up.mongodb_uri, tz_aware=True)[up.db_name("audit")]
        self.tail = AuditTail(db, {"type": 1, "refs": 1, "recorded_at": 1})
        self.rights = rights
        self.seen: dict[str, set[str]] = {}
        self.done_at: dict[str, float] = {}
        self.audited_at: dict[str, float] = {}  # the inbound event's own audit record
        self.last: dict[str, float] = {}
        self.count = 0  # records read (every record, each once)

    def poll(self) -> int:
        for doc in self.tail.new():
            self.count += 1
            rid = (doc.get("refs") or {}).get("request_id")
            if rid not in self.rights or rid in self.done_at:
                continue
            at = doc["recorded_at"].timestamp()
            if doc["type"] == "gdpr.request.received":
                self.audited_at.setdefault(rid, at)
            self.seen.setdefault(rid, set()).add(doc["type"])
            self.last[rid] = max(self.last.get(rid, 0.0), at)
            need = ERASURE if self.rights[rid] == "erasure" else ALWAYS
            if need <= self.seen[rid]:
                self.done_at[rid] = self.last[rid]
        return len(self.done_at)


async def produce(
    bootstrap: str, events: list[dict[str, Any]], rate: float | None, sent: dict[str, float]
) -> None:
    from aiokafka import AIOKafkaProducer

    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, linger_ms=2)
    await producer.start()
    started = time.monotonic()
    futures = []
    for n, event in enumerate(events):
        if rate:
            wait = started + n / rate - time.monotonic()
            if wait > 0:
                await asyncio.sleep(wait)
        rid = event["data"]["request_id"]
        sent[rid] = time.time()
        futures.append(
            await producer.send(
                REQUESTS_TOPIC,
                json.dumps(event).encode(),
                key=rid.encode(),
                headers=[("content-type", b"application/cloudevents+json")],
            )
        )
    await asyncio.gather(*futures)
    await producer.stop()


def run_phase(
    up: Up,
    stack_pids: list[int],
    label: str,
    n: int,
    rate: float | None,
    erasure_share: float,
    timeout: float,
) -> dict[str, Any]:
    """Send ``n`` requests (at ``rate``/s, or all at once) and wait until all are audited."""
    import threading

    run = uuid.uuid4().hex[:5]
    every = round(1 / erasure_share) if erasure_share > 0 else 0
    events = [
        received_event(run, i, "erasure" if every and i % every == 0 else "access")
        for i in range(n)
    ]
    rights = {e["data"]["request_id"]: e["data"]["right"] for e in events}
    tracker = Tracker(up, rights)
    pids = list(up.service_pids().values())
    cpu0, t0 = cpu_seconds(pids), time.time()
    stack0 = cpu_seconds(stack_pids)
    sent: dict[str, float] = {}
    producer = threading.Thread(
        target=lambda: asyncio.run(produce(up.bootstrap, events, rate, sent))
    )
    producer.start()
    progress = Progress(f"{label}: completed requests", n)
    done, stall = 0, time.monotonic()
    while done < n:
        time.sleep(0.5)
        now_done = tracker.poll()
        if now_done != done:
            stall = time.monotonic()
        done = now_done
        progress.update(done)
        if time.monotonic() - stall > timeout:
            print(f"\n  {label}: stalled at {done}/{n} for {timeout:.0f}s; stopping the phase")
            break
    producer.join()
    drain(tracker)  # CPU of the phase's tail (commands, case events) belongs to it too
    cpu = cpu_seconds(pids) - cpu0
    stack_cpu = cpu_seconds(stack_pids) - stack0
    finished = [tracker.done_at[r] for r in tracker.done_at]
    elapsed = (max(finished) if finished else time.time()) - t0
    lat_ms = [1000 * (tracker.done_at[r] - sent[r]) for r in tracker.done_at if r in sent]
    own_ms = [1000 * (at - sent[r]) for r, at in tracker.audited_at.items() if r in sent]
    return {
        "requests": n,
        "completed": len(finished),
        "seconds": round(elapsed, 2),
        "requests_per_s": round(len(finished) / elapsed, 2) if elapsed > 0 else 0.0,
        "cpu_s_per_request": round(cpu / max(len(finished), 1), 4),
        "stack_cpu_s_per_request": round(stack_cpu / max(len(finished), 1), 4),
        "latency_p50_ms": round(percentile(lat_ms, 50), 1),
        "latency_p99_ms": round(percentile(lat_ms, 99), 1),
        "event_to_audit_p50_ms": round(percentile(own_ms, 50), 1),
        "event_to_audit_p99_ms": round(percentile(own_ms, 99), 1),
        "rss_mib": {k: round(rss_mib(p), 1) for k, p in up.service_pids().items()},
    }


def drain(tracker: Tracker, quiet: float = 3.0, limit: float = 120.0) -> None:
    """Wait until the audit trail stops growing (the phase's tail: commands, cases)."""
    started, count, calm = time.monotonic(), tracker.count, time.monotonic()
    while time.monotonic() - calm < quiet and time.monotonic() - started < limit:
        time.sleep(0.5)
        tracker.poll()
        if tracker.count != count:
            count, calm = tracker.count, time.monotonic()


def ratios(
    throughput: dict[str, dict[str, Any]], access: float, erasure: float, share: float
) -> dict[str, tuple[float, float, float]]:
    """(requests/s, physical ceiling, ratio) per mix; a mix's ceiling adds its requests' costs."""
    shares = {"access": 0.0, "mixed": share, "erasure": 1.0}
    out = {}
    for name, r in throughput.items():
        bound = 1 / ((1 - shares[name]) / access + shares[name] / erasure)
        got = float(r["requests_per_s"])
        out[name] = (got, round(bound, 1), round(got / bound, 3))
    return out


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=1500, help="requests per throughput run")
    parser.add_argument("--latency-seconds", type=float, default=30)
    parser.add_argument("--erasure-share", type=float, default=0.5)
    parser.add_argument(
        "--ceiling",
        type=float,
        nargs=2,
        metavar=("ACCESS", "ERASURE"),
        default=None,
        help="physical ceilings in requests/s measured in the same run (bench.ceiling)",
    )
    parser.add_argument(
        "--fetch-wait-ms",
        type=int,
        default=50,
        help="GARDIEN_FETCH_MAX_WAIT_MS of the services (50: the default as deployed; the "
        "tests use 20, which costs the idle broker and services ~0.3 core in fetch polling)",
    )
    parser.add_argument("--ceiling-docs", type=int, default=10_000)
    parser.add_argument("--ceiling-messages", type=int, default=20_000)
    args = parser.parse_args(argv)
    print(f"pipeline benchmark — {machine()}; fetch wait {args.fetch_wait_ms} ms", flush=True)
    with embedded_stack() as st:
        if args.ceiling is None:
            args.ceiling = same_run_ceiling(st, args.ceiling_docs, args.ceiling_messages)
        result = phases(st, args)
    report(result, args)
    emit(result)
    return result


def same_run_ceiling(st: Any, docs: int, messages: int) -> list[float]:
    """The physical ceiling (access, erasure requests/s) on these servers, now."""
    from bench import ceiling

    rates = ceiling.raw_rates(st, docs, messages, singles=200)
    out = []
    for name in ("access", "erasure"):
        need, bound = ceiling.NEEDS[name], ceiling.best(ceiling.NEEDS[name], rates)
        print(
            f"ceiling[{name}] (same servers, load {os.getloadavg()[0]:.1f}): "
            f"{need.documents} docs, {need.produced} produced, {need.consumed} consumed per "
            f"request at {rates['insert_many_docs_per_s']:,.0f} docs/s, "
            f"{rates['produce_msgs_per_s']:,.0f}/{rates['consume_msgs_per_s']:,.0f} msgs/s "
            f"-> {bound['requests_per_s']:,.1f} requests/s",
            flush=True,
        )
        out.append(round(bound["requests_per_s"], 1))
    return out


def phases(st: Any, args: Any) -> dict[str, Any]:
    """Warm-up, the three throughput mixes, then the paced run at half the mixed rate."""
    with gardien_up(st, GARDIEN_FETCH_MAX_WAIT_MS=str(args.fetch_wait_ms)) as up:
        spids = [st.broker_pid, st.mongo_pid]
        # Warm-up: first deliveries pay for consumer joins and index creation.
        run_phase(up, spids, "warm-up", 50, None, args.erasure_share, timeout=60)
        mixes = {"access": 0.0, "mixed": args.erasure_share, "erasure": 1.0}
        throughput = {
            name: run_phase(up, spids, f"throughput[{name}]", args.events, None, share, 120)
            for name, share in mixes.items()
        }
        best = throughput["mixed"]["requests_per_s"]
        half = max(best / 2, 0.5)
        n = max(int(half * args.latency_seconds), 20)
        latency = run_phase(up, spids, f"latency at {half:.1f}/s", n, half, args.erasure_share, 60)
    result: dict[str, Any] = {
        "benchmark": "pipeline",
        "throughput": throughput,
        "half_load": {"rate": round(half, 2), **latency},
        "ceiling": {"access": args.ceiling[0], "erasure": args.ceiling[1]},
    }
    result["ratio_to_ceiling"] = ratios(throughput, *args.ceiling, args.erasure_share)
    return result


def report(result: dict[str, Any], args: Any) -> None:
    throughput, latency = result["throughput"], result["half_load"]
    for name, r in throughput.items():
        total = r["cpu_s_per_request"] + r["stack_cpu_s_per_request"]
        print(
            f"pipeline[{name}]: {r['completed']}/{r['requests']} requests in {r['seconds']}s = "
            f"{r['requests_per_s']}/s, {r['cpu_s_per_request']} CPU-s/request in the services "
            f"+ {r['stack_cpu_s_per_request']} in broker+MongoDB = {total:.4f}, "
            f"p50 {r['latency_p50_ms']} ms (saturated)"
        )
    erasure = throughput["erasure"]
    print(
        f"CPU-s per erasure request (services + broker + MongoDB): "
        f"{erasure['cpu_s_per_request'] + erasure['stack_cpu_s_per_request']:.4f} (target <= 0.02)"
    )
    print(
        f"pipeline at half load ({latency['rate']}/s, paced, mixed): event to its own audit "
        f"record p50 {latency['event_to_audit_p50_ms']} ms, "
        f"p99 {latency['event_to_audit_p99_ms']} ms (target < 100); to fully processed p50 "
        f"{latency['latency_p50_ms']} ms, p99 {latency['latency_p99_ms']} ms; "
        f"{latency['cpu_s_per_request']} + {latency['stack_cpu_s_per_request']} CPU-s/request; "
        f"RSS MiB {latency['rss_mib']}"
    )
    for name, (got, bound, ratio) in result["ratio_to_ceiling"].items():
        print(f"pipeline[{name}]/ceiling = {got:.1f}/{bound:.1f} = {ratio:.2f} (target >= 0.3)")
    half_ratio = latency["rate"] / result["ratio_to_ceiling"]["mixed"][1]
    print(f"half-load rate / mixed ceiling = {half_ratio:.3f}; load {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
