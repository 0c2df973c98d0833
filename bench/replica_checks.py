"""What a replica run must prove once its traffic has drained (bench/replicas.py).

Read from the topics themselves (every partition from the beginning, outside any group), the
services' databases and `gardien audit verify`:

- every request decided once: one ``accepted`` per request, one ``decided`` per erasure
  request (distinct event ids);
- order per key: every record of one key in one partition, ``accepted`` before ``decided``,
  and every audit chain appended in its partition's offset order;
- every clock fired once: each retention clock done, no firing twice in its ``fired`` list
  (firing ids seen twice on the topic are counted: see ``check_firings``);
- every command issued once and acknowledged once: one command per command id, every case
  of the run closed with every system part acknowledged, one ``closed`` per case;
- exactly-once effect in the audit: one record per (topic, event id), every event of the run
  on those topics audited;
- ``gardien audit verify`` exits 0.

Copies of one event id on a topic (an outbox relayed again after a member stopped between
publishing and clearing) are counted as ``republished``: consumers recognise them by id, so
they are no double effect, and the effect checks above still hold.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from typing import Any

from shared import topics

FIRINGS = {"gardien.deadline.approaching", "gardien.deadline.due", "gardien.deadline.missed"}
READ = (topics.REQUEST_EVENTS, topics.DEADLINES, topics.ERASURE_COMMANDS, topics.ERASURE_CASES)


@dataclass(frozen=True)
class Record:
    topic: str
    partition: int
    offset: int
    key: str
    event: dict[str, Any]


@dataclass
class Verdict:
    """Each check's failures (empty lists when it held) and the counts it looked at."""

    failures: dict[str, list[str]] = field(default_factory=dict)
    counts: dict[str, int] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    def fail(self, check: str, what: str) -> None:
        self.failures.setdefault(check, []).append(what)

    @property
    def ok(self) -> bool:
        return not any(self.failures.values())

    def summary(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "counts": self.counts,
            "republished": self.notes[:5],
            "failures": {k: v[:5] for k, v in self.failures.items() if v},
        }


async def read_topics(bootstrap: str, names: tuple[str, ...] = READ) -> list[Record]:
    """Every record of ``names``, every partition from its start to its current end."""
    from aiokafka import AIOKafkaConsumer, TopicPartition

    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=None)
    await consumer.start()
    try:
        tps = [TopicPartition(t, p) for t in names for p in range(topics.PARTITIONS[t])]
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        ends = await consumer.end_offsets(tps)
        out: list[Record] = []
        left = {tp for tp in tps if ends[tp] > 0}
        while left:
            for tp, records in (await consumer.getmany(*left, timeout_ms=500)).items():
                for r in records:
                    key = r.key.decode() if r.key else ""
                    out.append(Record(tp.topic, tp.partition, r.offset, key, json.loads(r.value)))
                if await consumer.position(tp) >= ends[tp]:
                    left.discard(tp)
        return out
    finally:
        await consumer.stop()


def check_requests(v: Verdict, records: list[Record], rights: dict[str, str]) -> None:
    """One accepted per request, one decided per erasure request; order per key kept."""
    mine = [r for r in records if r.topic == topics.REQUEST_EVENTS and r.key in rights]
    by_key: dict[str, list[Record]] = defaultdict(list)
    for r in mine:
        by_key[r.key].append(r)
    for rid, right in rights.items():
        got = by_key.get(rid, [])
        if len({r.partition for r in got}) > 1:
            v.fail("order_per_key", f"{rid} in partitions {sorted({r.partition for r in got})}")
        ids: dict[str, set[str]] = defaultdict(set)
        first: dict[str, int] = {}
        for r in got:
            ids[r.event["type"]].add(r.event["id"])
            first[r.event["type"]] = min(first.get(r.event["type"], r.offset), r.offset)
        wanted = {"gardien.request.accepted": 1}
        if right == "erasure":
            wanted["gardien.request.decided"] = 1
        for kind, n in wanted.items():
            if len(ids.get(kind, ())) != n:
                v.fail("decided_once", f"{rid}: {len(ids.get(kind, ()))} x {kind}")
        if "gardien.request.decided" in first and (
            first["gardien.request.decided"] < first.get("gardien.request.accepted", -1)
        ):
            v.fail("order_per_key", f"{rid}: decided before accepted")
    v.counts["request_events"] = len(mine)


def check_firings(v: Verdict, records: list[Record], timers: list[dict[str, Any]]) -> None:
    """Every retention clock fired (and each firing recorded) once, and is done.

    Two members cannot both fire one timer (a claim is a lease under a version check), so
    a firing id seen twice on the topic is a relay of an outbox not yet cleared when its
    member stopped: counted, not failed (consumers apply an id once).
    """
    firing = Counter(
        r.event["id"]
        for r in records
        if r.topic == topics.DEADLINES and r.key.startswith("ret") and r.event["type"] in FIRINGS
    )
    v.counts["retention_firings"] = len(firing)
    v.counts["firings_published_twice"] = sum(1 for n in firing.values() if n > 1)
    for doc in timers:
        fired = [str(f) for f in doc.get("fired") or []]
        if len(fired) != len(set(fired)):
            v.fail("fired_once", f"{doc['_id']}: fired {fired}")
        if doc.get("state") != "done":
            v.fail("fired_once", f"{doc['_id']}: state {doc.get('state')}")


def check_commands(
    v: Verdict, records: list[Record], cases: list[dict[str, Any]], expected: set[str]
) -> None:
    """One command per command id, every case closed with every part acknowledged, once.

    A command is issued twice when it has two event ids. The same event seen twice is a
    relay of an outbox its member had not cleared when it stopped (as for firings): counted
    by ``check_audit`` as republished, not failed.
    """
    commands: dict[str, set[str]] = defaultdict(set)
    for r in records:
        if r.topic == topics.ERASURE_COMMANDS and r.event["data"]["case_id"] in expected:
            commands[r.event["data"]["command_id"]].add(r.event["id"])
    v.counts["commands"] = len(commands)
    for cid, ids in commands.items():
        if len(ids) > 1:
            v.fail("command_once", f"{cid} issued {len(ids)} times")
    closed = Counter(
        r.event["id"]
        for r in records
        if r.topic == topics.ERASURE_CASES
        and r.event["type"] == "gardien.erasure.case.closed"
        and r.key in expected
    )
    v.counts["cases_closed"] = len(closed)
    found = {str(c["_id"]): c for c in cases}
    for case_id in expected:
        case = found.get(case_id)
        if case is None or case.get("state") != "closed":
            v.fail("acknowledged_once", f"{case_id}: {case and case.get('state')}")
            continue
        for name, part in (case.get("systems") or {}).items():
            if isinstance(part, dict) and part.get("attempts", 1) != 1:
                v.fail("command_once", f"{case_id}/{name}: {part.get('attempts')} attempts")


def check_audit(v: Verdict, records: list[Record], audited: list[dict[str, Any]]) -> None:
    """One audit record per (topic, event id); every chain in its partition's offset order."""
    seen = Counter((str(a.get("topic")), str(a.get("event_id"))) for a in audited)
    v.counts["audit_records"] = len(audited)
    for key, n in seen.items():
        if n > 1:
            v.fail("audited_once", f"{key} recorded {n} times")
    for r in records:
        if (r.topic, r.event["id"]) not in seen:
            v.fail("audited_once", f"{r.topic} {r.event['id']} not audited")
    chains: dict[str, list[tuple[int, int]]] = defaultdict(list)
    for a in audited:
        if a.get("kind") == "event":
            chains[str(a["chain"])].append((int(a["seq"]), int(a["offset"])))
    for chain, pairs in chains.items():
        offsets = [o for _, o in sorted(pairs)]
        if offsets != sorted(offsets):
            v.fail("order_per_key", f"chain {chain}: appended out of offset order")
    copies = Counter((r.topic, r.event["id"]) for r in records)
    v.counts["republished"] = sum(n - 1 for n in copies.values())
    v.notes += [f"{t} {i} x{n}" for (t, i), n in copies.items() if n > 1]


def audit_verify(mongodb_uri: str, prefix: str) -> tuple[bool, str]:
    """`gardien audit verify --json` against the run's databases: (exit 0?, its output)."""
    import os

    env = {**os.environ, "MONGODB_URI": mongodb_uri, "GARDIEN_DB_PREFIX": prefix}
    done = subprocess.run(
        [sys.executable, "-m", "gardien", "audit", "verify", "--json"],
        env=env,
        capture_output=True,
        timeout=600,
    )
    return done.returncode == 0, (done.stdout or done.stderr).decode()[-400:]


def verify_run(
    bootstrap: str,
    mongodb_uri: str,
    prefix: str,
    rights: dict[str, str],
    contracts: list[str],
) -> Verdict:
    """Every check of this module on one drained run."""
    from pymongo import MongoClient

    records = asyncio.run(read_topics(bootstrap))
    client = MongoClient(mongodb_uri, tz_aware=True)
    try:
        db = client[f"{prefix}deadlines"]
        timer_ids = [f"retention:{c}:customer" for c in contracts]
        timers = list(db.timers.find({"_id": {"$in": timer_ids}}))
        expected = {f"req:{r}" for r, right in rights.items() if right == "erasure"}
        expected |= {f"ret:{t}" for t in timer_ids}
        cases = list(client[f"{prefix}erasure"].cases.find({"_id": {"$in": sorted(expected)}}))
        fields = {"topic": 1, "event_id": 1, "chain": 1, "seq": 1, "offset": 1, "kind": 1}
        audited = list(client[f"{prefix}audit"].records.find({}, fields))
    finally:
        client.close()
    verdict = Verdict()
    check_requests(verdict, records, rights)
    run_records = [r for r in records if _of_run(r, rights, expected)]
    check_firings(verdict, run_records, timers)
    if len(timers) != len(timer_ids):
        verdict.fail("fired_once", f"{len(timers)} of {len(timer_ids)} retention clocks stored")
    check_commands(verdict, run_records, cases, expected)
    check_audit(verdict, run_records, audited)
    ok, out = audit_verify(mongodb_uri, prefix)
    if not ok:
        verdict.fail("audit_verify", out)
    return verdict


def _of_run(r: Record, rights: dict[str, str], cases: set[str]) -> bool:
    data = r.event.get("data") or {}
    return (
        r.key in rights
        or r.key in cases
        or str(data.get("case_id", "")) in cases
        or f"ret:{r.key}" in cases
    )
