"""Intake alone: access requests/s from `gdpr.request.received` to stored and relayed.

A private embedded stack; ``--events`` access requests (distinct subjects, keyed by request
id so they spread over the partitions) are produced to ``gdpr.requests.v1`` first, then the
intake app starts in this process (its real MongoDB repositories and broker) and the clock
runs until every request is stored and its outbox relayed (``outbox_pending`` cleared, which
happens only after the broker acknowledged its events). Printed: requests/s from the first
stored request to the last relayed one, and from the app's start; CPU seconds per request
of this process (intake, plus the small polling loop) and of the two servers.

    python -m bench.intake --events 3000
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import secrets
import time
import uuid
from pathlib import Path
from typing import Any

from bench.common import Progress, access_request, cpu_seconds, embedded_stack, emit, machine

REQUESTS_TOPIC = "gdpr.requests.v1"


def received(run: str, i: int) -> dict[str, Any]:
    rid = f"B{run}-{i}"
    return {
        "specversion": "1.0",
        "id": f"ev-{rid}",
        "source": "bench.intake",
        "type": "gdpr.request.received",
        "time": "2027-03-05T16:45:00+01:00",
        "data": access_request(rid, f"{run}{i}"),
    }


async def produce(bootstrap: str, events: list[dict[str, Any]]) -> None:
    from aiokafka import AIOKafkaProducer

    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, linger_ms=5)
    await producer.start()
    try:
        futures = [
            await producer.send(
                REQUESTS_TOPIC, json.dumps(e).encode(), key=e["data"]["request_id"].encode()
            )
            for e in events
        ]
        await asyncio.gather(*futures)
    finally:
        await producer.stop()


async def measure(bootstrap: str, mongodb_uri: str, n: int, stall_s: float) -> dict[str, Any]:
    from services.intake.app import create_app
    from shared.kafka_admin import ensure_topics
    from shared.settings import Settings
    from shared.topics import all_topics
    from tests.support import running

    os.environ.setdefault("GARDIEN_PSEUDONYM_KEY", secrets.token_hex(32))
    await ensure_topics(bootstrap, all_topics())
    run = uuid.uuid4().hex[:5]
    await produce(bootstrap, [received(run, i) for i in range(n)])
    settings = Settings(
        kafka_bootstrap_servers=bootstrap,
        mongodb_uri=mongodb_uri,
        gardien_db_prefix=f"b{run}_",
        gardien_api_keys_file=Path(f"/tmp/bench-intake-{run}-keys.json"),
    )
    app = create_app(settings)
    cpu0, t0 = cpu_seconds([os.getpid()]), time.monotonic()
    first = last = None
    sizes: list[int] = []
    async with running(app):
        requests = app.state.runtime.db["requests"]
        intake = app.state.intake
        arrived = intake.requests_arrived

        async def counted(batch: Any) -> None:
            sizes.append(len(batch))
            await arrived(batch)

        intake.requests_arrived = counted
        progress, stall, done = Progress("access requests stored and relayed", n), t0, 0
        while done < n and time.monotonic() - stall < stall_s:
            await asyncio.sleep(0.5)
            stored = await requests.count_documents({})
            if stored and first is None:
                first = time.monotonic()
            now_done = await requests.count_documents({"outbox_pending": False})
            if now_done != done:
                stall, done = time.monotonic(), now_done
            progress.update(done)
        last = time.monotonic()
    cpu = cpu_seconds([os.getpid()]) - cpu0
    busy = last - (first or t0)
    return {
        "requests": n,
        "completed": done,
        "seconds_first_to_last": round(busy, 2),
        "requests_per_s": round(done / busy, 1) if busy > 0 else 0.0,
        "requests_per_s_from_start": round(done / (last - t0), 1),
        "cpu_s_per_request_intake": round(cpu / max(done, 1), 5),
        "batches": len(sizes),
        "mean_batch": round(sum(sizes) / max(len(sizes), 1), 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=3000)
    parser.add_argument("--timeout", type=float, default=60.0, help="stall limit (s)")
    args = parser.parse_args()
    print(f"intake alone, {args.events} access requests; {machine()}")
    with embedded_stack() as st:
        stack0 = cpu_seconds([st.broker_pid, st.mongo_pid])
        result = asyncio.run(measure(st.bootstrap, st.mongodb_uri, args.events, args.timeout))
        stack_cpu = cpu_seconds([st.broker_pid, st.mongo_pid]) - stack0
    result["cpu_s_per_request_servers"] = round(stack_cpu / max(result["completed"], 1), 5)
    for key, value in result.items():
        print(f"  {key}: {value}")
    emit({"bench": "intake", **result})


if __name__ == "__main__":
    main()
