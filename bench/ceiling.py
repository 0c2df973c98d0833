"""Ceiling: the pipeline's own I/O pattern with raw clients and no logic.

Per inbound access request, as the services do it now (counted from services/*/usecases.py,
repository.py and shared/outbox.py; see docs/performance.md):
  producer       1 produce to gdpr.requests.v1
  intake-like    1 consume; 1 find (request by id), 2 inserts (subject history, one per
                 identifier hash), 1 find (history dates), 1 insert (request + outbox),
                 relay: 1 find, 1 produce (accepted), 1 update (clear outbox); 1 commit
  deadlines-like 1 consume of the derived event; 1 find (timer), 1 insert (timer + outbox),
                 relay: 1 find, 1 produce (deadline scheduled), 1 update; 1 commit
  audit-like     3 consumes (inbound, accepted, scheduled), per record: 1 link upsert
                 (records that name a subject), 1 find (links), 1 insert, 1 subject-index
                 insert, 1 head update, 1 commit
= 3 produces, 5 consumes, 24 MongoDB operations (8 reads, 16 writes), 5 commits per event.
Each worker is its own process, as the services are. Prints events/s end to end.

    python -m bench.ceiling --events 5000
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing as mp
import time
import uuid
from typing import Any

from bench.common import Progress, embedded_stack, emit, machine

IN, OUT, OUT2 = "bench.in", "bench.out", "bench.out2"
PER_EVENT = 3  # audit records per inbound event


async def _consumer(bootstrap: str, group: str, *topics: str) -> Any:
    from aiokafka import AIOKafkaConsumer

    consumer = AIOKafkaConsumer(
        *topics,
        bootstrap_servers=bootstrap,
        group_id=group,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        fetch_max_wait_ms=20,
        session_timeout_ms=3000,
        heartbeat_interval_ms=1000,
    )
    await consumer.start()
    return consumer


async def _intake(bootstrap: str, uri: str, total: int, run: str) -> None:
    from aiokafka import AIOKafkaProducer
    from pymongo import AsyncMongoClient

    db = AsyncMongoClient(uri, tz_aware=True)[f"bench_{run}_intake"]
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, linger_ms=0)
    await producer.start()
    consumer = await _consumer(bootstrap, f"{run}-intake", IN)
    done = 0
    while done < total:
        for records in (await consumer.getmany(timeout_ms=100)).values():
            for rec in records:
                doc = json.loads(rec.value)
                await db.requests.find_one({"_id": doc["id"]})
                for h in ("a", "b"):
                    await db.history.insert_one({"_id": f"{h}:{doc['id']}", "subject_hash": h})
                await db.history.find({"subject_hash": {"$in": ["a", "b"]}}).to_list(None)
                await db.requests.insert_one(
                    {"_id": doc["id"], "outbox": [doc], "pending": True, "version": 1}
                )
                await db.requests.find_one({"_id": doc["id"]}, {"outbox": 1, "version": 1})
                await producer.send_and_wait(OUT, rec.value, key=rec.key)
                await db.requests.update_one(
                    {"_id": doc["id"], "version": 1},
                    {"$set": {"outbox": [], "pending": False}, "$inc": {"version": 1}},
                )
                await consumer.commit()
                done += 1
    await consumer.stop()
    await producer.stop()


async def _deadlines(bootstrap: str, uri: str, total: int, run: str) -> None:
    from aiokafka import AIOKafkaProducer
    from pymongo import AsyncMongoClient

    db = AsyncMongoClient(uri, tz_aware=True)[f"bench_{run}_deadlines"]
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, linger_ms=0)
    await producer.start()
    consumer = await _consumer(bootstrap, f"{run}-deadlines", OUT)
    done = 0
    while done < total:
        for records in (await consumer.getmany(timeout_ms=100)).values():
            for rec in records:
                doc = json.loads(rec.value)
                await db.timers.find_one({"_id": doc["id"]})
                await db.timers.insert_one(
                    {
                        "_id": doc["id"],
                        "due": doc["time"],
                        "version": 1,
                        "outbox": [doc],
                        "outbox_pending": True,
                    }
                )
                await db.timers.find_one({"_id": doc["id"]}, {"outbox": 1, "version": 1})
                await producer.send_and_wait(OUT2, rec.value, key=rec.key)
                await db.timers.update_one(
                    {"_id": doc["id"], "version": 1},
                    {"$set": {"outbox": [], "outbox_pending": False}},
                )
                await consumer.commit()
                done += 1
    await consumer.stop()
    await producer.stop()


async def _audit(bootstrap: str, uri: str, total: int, run: str, queue: Any) -> None:
    from pymongo import AsyncMongoClient

    db = AsyncMongoClient(uri, tz_aware=True)[f"bench_{run}_audit"]
    await db.records.create_index("seq_key", unique=True)
    consumer = await _consumer(bootstrap, f"{run}-audit", IN, OUT, OUT2)
    seqs: dict[str, int] = {}
    done = 0
    while done < PER_EVENT * total:
        for tp, records in (await consumer.getmany(timeout_ms=100)).items():
            for rec in records:
                chain = f"{tp.topic}/{tp.partition}"
                rid = f"{tp.topic}|{json.loads(rec.value)['id']}"
                if tp.topic == IN:  # the inbound event names the subject: link it
                    await db.links.update_one({"_id": rid}, {"$set": {"key_id": "k"}}, upsert=True)
                await db.links.find({"_id": {"$in": [rid]}}).to_list(None)
                seqs[chain] = seqs.get(chain, 0) + 1
                await db.records.insert_one(
                    {"_id": rid, "seq_key": f"{chain}#{seqs[chain]}", "body": rec.value.decode()}
                )
                # the scalar subject index beside each record (every record is linked)
                await db.subject_index.insert_many([{"_id": f"s|{rid}", "ref": "s", "r": rid}])
                await db.heads.update_one(
                    {"_id": chain}, {"$set": {"seq": seqs[chain]}}, upsert=True
                )
                await consumer.commit()
                done += 1
                if done % 200 == 0 or done == PER_EVENT * total:
                    queue.put(done)
    await consumer.stop()


def _run(target: Any, *args: Any) -> None:
    asyncio.run(target(*args))


async def _produce(bootstrap: str, total: int) -> float:
    from aiokafka import AIOKafkaProducer

    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, linger_ms=5)
    await producer.start()
    body = {
        "specversion": "1.0",
        "source": "bench",
        "type": "gdpr.request.received",
        "time": "2027-03-05T16:45:00+01:00",
        "data": {"pad": "x" * 600},
    }
    started = time.monotonic()
    futures = []
    for i in range(total):
        event = {**body, "id": f"e{i}"}
        futures.append(
            await producer.send(IN, json.dumps(event).encode(), key=f"k{i % 97}".encode())
        )
    await asyncio.gather(*futures)
    await producer.stop()
    return started


def main(argv: list[str] | None = None) -> float:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=3000)
    args = parser.parse_args(argv)
    print(f"ceiling benchmark — {machine()}")
    with embedded_stack() as st:
        from shared.kafka_admin import ensure_topics

        asyncio.run(ensure_topics(st.bootstrap, {IN: 6, OUT: 6, OUT2: 6}))
        run = uuid.uuid4().hex[:6]
        ctx = mp.get_context("spawn")
        queue = ctx.Queue()
        workers = [
            ctx.Process(
                target=_run, args=(_intake, st.bootstrap, st.mongodb_uri, args.events, run)
            ),
            ctx.Process(
                target=_run, args=(_deadlines, st.bootstrap, st.mongodb_uri, args.events, run)
            ),
            ctx.Process(
                target=_run, args=(_audit, st.bootstrap, st.mongodb_uri, args.events, run, queue)
            ),
        ]
        for w in workers:
            w.start()
        time.sleep(6)  # let the three consumer groups join before the clock starts
        started = asyncio.run(_produce(st.bootstrap, args.events))
        progress = Progress("audited records", PER_EVENT * args.events)
        done = 0
        while done < PER_EVENT * args.events:
            done = queue.get(timeout=600)
            progress.update(done)
        elapsed = time.monotonic() - started
        for w in workers:
            w.join(timeout=30)
    rate = args.events / elapsed
    print(f"ceiling: {args.events} events end to end in {elapsed:.1f}s = {rate:,.0f} events/s")
    emit(
        {
            "benchmark": "ceiling",
            "events": args.events,
            "seconds": round(elapsed, 2),
            "events_per_s": round(rate, 1),
        }
    )
    return rate


if __name__ == "__main__":
    main()
