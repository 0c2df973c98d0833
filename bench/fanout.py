"""Fan-out: erasure cases x 10 connected systems, commands issued and acknowledgements
reconciled per second, through the real services.

`gardien up` runs with a registry of ten kafka-transport systems (bench.common.
bench_registry); one fast responder in this process answers every
``gardien.erasure.command.issued`` on ``gdpr.erasure.results.v1`` with ``erased``.
N erasure requests enter as ``gdpr.request.received`` (intake decides, erasure plans the
case and issues ten commands, each answer is reconciled, the case closes). Rates are read
from the audit trail by ``recorded_at``: command.issued records (commands/s) and
case.closed records x 10 (acknowledgements reconciled/s).

    python -m bench.fanout --cases 150
"""

from __future__ import annotations

import argparse
import asyncio
import json
import threading
import time
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from bench.common import Progress, cpu_seconds, embedded_stack, emit, gardien_up, machine
from bench.pipeline import produce, received_event

SYSTEMS = 10


async def responder(bootstrap: str, stop: threading.Event) -> None:
    from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

    consumer = AIOKafkaConsumer(
        "gardien.erasure.commands.v1",
        bootstrap_servers=bootstrap,
        group_id="bench-responders",
        auto_offset_reset="earliest",
        fetch_max_wait_ms=20,
        session_timeout_ms=3000,
        heartbeat_interval_ms=1000,
    )
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, linger_ms=2)
    await consumer.start()
    await producer.start()
    while not stop.is_set():
        for records in (await consumer.getmany(timeout_ms=200)).values():
            for rec in records:
                cmd = json.loads(rec.value)
                data = cmd.get("data", {})
                if cmd.get("type") != "gardien.erasure.command.issued":
                    continue
                answer = {
                    "specversion": "1.0",
                    "id": f"res-{uuid.uuid4().hex}",
                    "source": f"bench/{data['system']}",
                    "type": "gdpr.erasure.result",
                    "time": datetime.now(UTC).isoformat(),
                    "datacontenttype": "application/json",
                    "data": {
                        "command_id": data["command_id"],
                        "system": data["system"],
                        "outcome": "erased",
                    },
                }
                await producer.send(
                    "gdpr.erasure.results.v1",
                    json.dumps(answer).encode(),
                    key=str(data["command_id"]).encode(),
                )
    await consumer.stop()
    await producer.stop()


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", type=int, default=150)
    parser.add_argument("--ceiling", type=float, default=None)
    parser.add_argument("--timeout", type=float, default=120, help="stall limit, seconds")
    args = parser.parse_args(argv)
    print(f"fan-out benchmark — {machine()}", flush=True)
    from pymongo import MongoClient

    with embedded_stack() as st, gardien_up(st, registry_systems=SYSTEMS) as up:
        stop = threading.Event()
        answering = threading.Thread(target=lambda: asyncio.run(responder(st.bootstrap, stop)))
        answering.start()
        time.sleep(4)  # the responder's group join
        records = MongoClient(st.mongodb_uri, tz_aware=True)[up.db_name("audit")].records
        run = uuid.uuid4().hex[:5]
        events = [received_event(run, i, "erasure") for i in range(args.cases)]
        pids = list(up.service_pids().values())
        cpu0, t0 = cpu_seconds(pids), time.time()
        since = datetime.now(UTC) - timedelta(seconds=2)
        seen: set[str] = set()
        issued: list[float] = []
        closed: list[float] = []
        sent: dict[str, float] = {}
        producing = threading.Thread(
            target=lambda: asyncio.run(produce(st.bootstrap, events, None, sent))
        )
        producing.start()
        progress = Progress("cases closed", args.cases)
        calm = time.monotonic()
        while len(closed) < args.cases and time.monotonic() - calm < args.timeout:
            time.sleep(0.5)
            query = {
                "recorded_at": {"$gte": since - timedelta(seconds=2)},
                "type": {"$in": ["gardien.erasure.command.issued", "gardien.erasure.case.closed"]},
            }
            newest = since
            for doc in records.find(query, {"type": 1, "recorded_at": 1}):
                if doc["_id"] in seen or run not in doc["_id"]:
                    continue
                seen.add(doc["_id"])
                calm = time.monotonic()
                newest = max(newest, doc["recorded_at"])
                at = doc["recorded_at"].timestamp()
                (issued if doc["type"].endswith("issued") else closed).append(at)
            since = newest
            progress.update(len(closed))
        producing.join()
        stop.set()
        answering.join()
        cpu = cpu_seconds(pids) - cpu0
    span = (max(closed) if closed else time.time()) - t0
    cmd_rate = len(issued) / ((max(issued) - t0) if issued else 1)
    ack_rate = SYSTEMS * len(closed) / span
    est = 10_000 / (len(closed) / span) if closed else float("inf")
    print(
        f"fan-out: {len(closed)}/{args.cases} cases x {SYSTEMS} systems closed in {span:.1f}s; "
        f"{len(issued)} commands issued at {cmd_rate:.1f}/s, {ack_rate:.1f} acknowledgements "
        f"reconciled/s; {cpu / max(len(closed), 1):.3f} CPU-s per case in the services"
    )
    print(
        f"fan-out: 10,000 cases at this rate would take ~{est / 60:.0f} min (extrapolated, "
        f"not measured)"
    )
    result: dict[str, Any] = {
        "benchmark": "fanout",
        "cases": args.cases,
        "systems": SYSTEMS,
        "closed": len(closed),
        "commands_issued": len(issued),
        "seconds": round(span, 1),
        "commands_per_s": round(cmd_rate, 1),
        "acks_reconciled_per_s": round(ack_rate, 1),
        "cpu_s_per_case": round(cpu / max(len(closed), 1), 3),
        "extrapolated_10k_minutes": round(est / 60, 1),
    }
    if args.ceiling:
        result["ratio_to_ceiling"] = round(cmd_rate / args.ceiling, 3)
        print(f"commands/s / ceiling events/s = {cmd_rate / args.ceiling:.2f}")
    emit(result)
    return result


if __name__ == "__main__":
    main()
