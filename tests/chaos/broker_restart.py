"""Scenario 3, broker restart on the embedded stack: SIGKILL the memory-only broker mid-run.

Measures what is lost (topics, records, committed offsets), checks that the launcher brings
the broker, the topics and every service back, then runs the operator's recovery from
docs/reliability.md and checks the end state:

1. re-publish inbound events the audit trail holds but intake never processed
   (`GET /v1/audit/export?type=gdpr.request.received&reveal=true`, admin key);
2. ask the sources to re-send the window around the outage (here: the whole batch; inbound
   handling is idempotent by event id, so re-sending what was processed changes no state;
   intake publishes again the first events of a request still ``received``, which the broker
   may have lost after intake's outbox was cleared).

    python -m tests.chaos.broker_restart     # CHAOS_BROKER_EVENTS (default 300)
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import sys
import time
from typing import Any

import httpx
from aiokafka import AIOKafkaConsumer
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.structs import TopicPartition

from shared import topics
from shared.events import parse_event
from tests.chaos.harness import (
    SERVICES,
    FakeSystems,
    Up,
    Verdict,
    audited_ids,
    check_pipeline,
    lag,
    machine,
    new_producer,
    running,
    say,
    wait_quiet,
    workload,
)

EVENTS = int(os.environ.get("CHAOS_BROKER_EVENTS", "300"))
RATE = 10.0


async def broker_view(bootstrap: str) -> dict[str, Any]:
    """Topics, records held (sum of end offsets) and committed offsets of the groups."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=10000)
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, request_timeout_ms=10000)
    await admin.start()
    await consumer.start()
    try:
        names = set(await admin.list_topics())
        parts = [
            TopicPartition(t, p)
            for t, n in topics.all_topics().items()
            if t in names
            for p in range(n)
        ]
        ends = await consumer.end_offsets(parts) if parts else {}
        committed = offset_sum = 0
        for group in (f"gardien-{s}" for s in SERVICES):
            offsets = await admin.list_consumer_group_offsets(group, partitions=parts)
            done = [m.offset for m in offsets.values() if m is not None and m.offset >= 0]
            committed += len(done)
            offset_sum += sum(done)
        return {
            "topics": len(names & set(topics.all_topics())),
            "records": sum(ends.values()),
            "committed_partitions": committed,
            "committed_offsets_sum": offset_sum,
        }
    finally:
        await consumer.stop()
        await admin.close()


async def send_all(up: Up, events: list[dict[str, Any]], rate: float | None) -> list[str]:
    """Publish like a source with retries: each event is re-sent until a broker acks it.

    Returns the ids acknowledged by the broker (all of them, eventually)."""
    acked: list[str] = []
    producer = await new_producer(up.bootstrap)
    started = time.monotonic()
    try:
        for i, event in enumerate(events):
            body = json.dumps(event).encode()
            key = str(event["data"]["request_id"]).encode()
            while True:
                try:
                    await producer.send_and_wait(topics.REQUESTS, body, key=key)
                    break
                except Exception as exc:
                    say(f"send failed ({type(exc).__name__}); retrying with a new producer")
                    await asyncio.sleep(1)
                    with contextlib.suppress(Exception):
                        await producer.stop()
                    producer = await new_producer(up.bootstrap)
            acked.append(str(event["id"]))
            if rate:
                ahead = started + (i + 1) / rate - time.monotonic()
                if ahead > 0:
                    await asyncio.sleep(ahead)
    finally:
        await producer.stop()
    return acked


def from_audit(up: Up, missing_in_intake: set[str]) -> list[dict[str, Any]]:
    """Inbound events rebuilt from the audit trail (identifiers revealed by an admin key)."""
    rebuilt = []
    with httpx.stream(
        "GET",
        f"{up.api}/v1/audit/export",
        params={"type": "gdpr.request.received", "reveal": "true"},
        headers=up.headers(),
        timeout=120,
    ) as r:
        r.raise_for_status()
        for line in r.iter_lines():
            rec = json.loads(line)
            rid = (rec.get("refs") or {}).get("request_id")
            if rid not in missing_in_intake:
                continue
            rebuilt.append(
                {
                    "specversion": "1.0",
                    "id": rec["event_id"],
                    "source": rec["source"],
                    "type": rec["type"],
                    "time": rec["event_time"],
                    "datacontenttype": "application/json",
                    "data": rec["data"],
                }
            )
    return rebuilt


async def main() -> int:
    verdict = Verdict("broker_restart")
    say(f"broker restart: {EVENTS} events at {RATE}/s, SIGKILL of the broker mid-run; {machine()}")
    started = time.monotonic()
    with running("broker") as up:
        fake = FakeSystems(up.bootstrap)
        fake.start()
        events = workload("br", EVENTS)
        before_pids = dict(up.state()["children"])
        broker_pid = int(up.state()["broker_pid"])
        sending = asyncio.create_task(send_all(up, events, RATE))
        await asyncio.sleep(EVENTS / RATE * 0.6)
        view = await broker_view(up.bootstrap)
        lags = await asyncio.to_thread(lag, up.bootstrap)
        client = up.mongo()
        in_intake_before = up.db(client, "intake")["requests"].count_documents({})
        client.close()
        say(f"before the kill: {view}; consumer lag {lags}; intake holds {in_intake_before}")
        up.kill("broker")
        t0 = time.monotonic()
        say(f"kill -9 broker (pid {broker_pid})")
        while time.monotonic() - t0 < 120:
            state = up.state()
            if int(state["broker_pid"] or 0) != broker_pid and all(
                int(state["children"][s]) != int(before_pids[s]) for s in SERVICES
            ):
                break
            await asyncio.sleep(0.2)
        back = time.monotonic() - t0
        ready = await asyncio.to_thread(up.wait_ready, 180)
        state = up.state()
        verdict.check(
            "the launcher restarts the broker and every service after a broker death",
            int(state["broker_pid"]) != broker_pid
            and all(int(state["children"][s]) != int(before_pids[s]) for s in SERVICES),
            f"broker and services restarted in {back:.1f}s, ready {ready:.1f}s later",
        )
        after = await broker_view(up.bootstrap)
        say(f"right after the restart: {after}")
        verdict.check(
            "every topic exists again after the restart (the launcher recreates them)",
            after["topics"] == len(topics.all_topics()),
            f"{after['topics']}/{len(topics.all_topics())} topics",
        )
        verdict.note(
            f"the broker lost: {view['records']} records held before the kill -> "
            f"{after['records']} on the new broker once the services were back (all new); "
            f"committed offsets summed over the 4 groups {view['committed_offsets_sum']} -> "
            f"{after['committed_offsets_sum']} (restarted from 0 on the empty broker); "
            f"consumer lag at the kill {lags}"
        )
        acked = await sending
        say(f"the source has sent all {len(acked)} events (re-sending on errors)")
        # Let what reached the new broker be processed before measuring the loss.
        await asyncio.sleep(5)
        ok_quiet = await asyncio.to_thread(wait_quiet, up, 600)
        client = up.mongo()
        try:
            seen = audited_ids(up, client, topics.REQUESTS)
            in_intake = {
                str(d["_id"]) for d in up.db(client, "intake")["requests"].find({}, {"_id": 1})
            }
            clocks = {
                str(d["_id"]) for d in up.db(client, "deadlines")["timers"].find({}, {"_id": 1})
            }
        finally:
            client.close()
        rids = {str(e["data"]["request_id"]) for e in events}
        lost_intake = rids - in_intake
        lost_audit = {str(e["id"]) for e in events} - set(seen)
        no_clock = {r for r in in_intake & rids if f"request:{r}" not in clocks}
        verdict.note(
            f"after the outage, before recovery (quiet: {ok_quiet[0]}): {len(lost_intake)} of "
            f"{len(rids)} broker-acknowledged requests never reached intake, {len(lost_audit)} "
            f"inbound events never reached audit, {len(no_clock)} recorded requests have no clock"
        )
        # Recovery 1: what the audit trail holds but intake lost.
        rebuilt = await asyncio.to_thread(from_audit, up, lost_intake)
        recoverable = {str(e["data"]["request_id"]) for e in rebuilt}
        verdict.note(
            f"recovery 1: {len(rebuilt)} of the {len(lost_intake)} lost requests can be rebuilt "
            "from the audit trail (audited before the broker died, not processed by intake)"
        )
        if rebuilt:
            await send_all(up, rebuilt, None)
        verdict.check(
            "events rebuilt from the audit trail are valid CloudEvents",
            all(parse_event(e) for e in rebuilt),
            f"{len(rebuilt)} rebuilt, e.g. {sorted(recoverable)[:2]}",
        )
        # Recovery 2: the sources re-send the whole window (idempotent by event id).
        await send_all(up, events, None)
        say("recovery 2: the source re-sent the whole batch")
        await asyncio.to_thread(check_pipeline, verdict, up, events, settle=600, fake=fake)
        await fake.stop()
    verdict.note(f"total {time.monotonic() - started:.0f}s")
    return verdict.finish()


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
