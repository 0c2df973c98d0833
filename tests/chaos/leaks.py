"""Scenario 5, no personal data leaks: a flow with seeded unique identifiers (e-mail, customer
id, phone), then a scan of logs, exported spans, /metrics and Kafka record keys for them.

The flow: an access request and an erasure request (through Kafka) and one through the HTTP
API (`POST /v1/requests`), follow-ups whose free text names the subject, a contract end and
a legal hold naming the subject, an invalid event carrying the identifiers (dead-lettered),
the fake connected systems answering the erasure commands, and a DPO looking the subject up
(`GET /v1/audit/events?subject=...`) and reading the request.

    python -m tests.chaos.leaks
"""

from __future__ import annotations

import asyncio
import json
import random
import sys
import time
from typing import Any
from urllib.parse import quote, quote_plus

import httpx
from aiokafka import AIOKafkaConsumer
from aiokafka.structs import TopicPartition

from shared import topics
from tests.chaos.harness import (
    SERVICES,
    FakeSystems,
    Up,
    Verdict,
    machine,
    new_producer,
    request_event,
    say,
    wait_quiet,
)
from tests.e2e.otlp_receiver import Receiver

SEED = 7


def canaries(seed: int) -> dict[str, str]:
    rng = random.Random(seed)
    tag = f"{rng.randrange(16**8):08x}"
    return {
        "email": f"canary.{tag}@leak-test.example",
        "customer_id": f"CANARY-{tag.upper()}",
        "phone": f"+33 6 {rng.randrange(10**8):08d}"[:17],
    }


def forms(value: str) -> set[str]:
    """The spellings a leak could take: raw, case-folded, URL-encoded, digits only."""
    out = {value, value.lower(), quote(value, safe=""), quote_plus(value), json.dumps(value)[1:-1]}
    digits = "".join(c for c in value if c.isdigit())
    if value.startswith("+") and len(digits) >= 8:
        out.add(digits)
    return {f for f in out if f}


def hits(blob: bytes | str, ids: dict[str, str]) -> list[str]:
    text = blob.decode("utf-8", errors="replace") if isinstance(blob, bytes) else blob
    low = text.lower()
    return [name for name, value in ids.items() if any(f.lower() in low for f in forms(value))]


def event(type_: str, eid: str, data: dict[str, Any]) -> dict[str, Any]:
    return {
        "specversion": "1.0",
        "id": eid,
        "source": "leaks.example",
        "type": type_,
        "time": "2027-03-05T17:00:00+01:00",
        "datacontenttype": "application/json",
        "data": data,
    }


async def all_keys(bootstrap: str) -> list[tuple[str, bytes, list[tuple[str, bytes]]]]:
    """(topic, key, headers) of every record of every Gardien topic."""
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap,
        enable_auto_commit=False,
        max_partition_fetch_bytes=8 * 1024 * 1024,
    )
    await consumer.start()
    try:
        parts = [TopicPartition(t, p) for t, n in topics.all_topics().items() for p in range(n)]
        consumer.assign(parts)
        ends = await consumer.end_offsets(parts)
        for tp in parts:
            consumer.seek(tp, 0)
        pos = dict.fromkeys(parts, 0)
        out: list[tuple[str, bytes, list[tuple[str, bytes]]]] = []
        deadline = time.monotonic() + 60
        while any(pos[tp] < ends[tp] for tp in parts) and time.monotonic() < deadline:
            for tp, records in (await consumer.getmany(timeout_ms=500)).items():
                for rec in records:
                    pos[tp] = rec.offset + 1
                    out.append((tp.topic, rec.key or b"", list(rec.headers)))
        return out
    finally:
        await consumer.stop()


async def flow(up: Up, ids: dict[str, str], run: str) -> list[str]:
    """Drive every path that handles the identifiers; returns the request ids."""
    producer = await new_producer(up.bootstrap)
    fake = FakeSystems(up.bootstrap)
    fake.start()
    access = request_event(run, 1, "access", identifiers=ids)
    erasure = request_event(run, 2, "erasure", identifiers=ids)
    rid = access["data"]["request_id"]
    note = f"caller gave {ids['email']} and {ids['phone']}, customer {ids['customer_id']}"
    follow = [
        event(
            "gdpr.request.identity_verified",
            f"evt-{run}-idv",
            {"request_id": rid, "at": "2027-03-06T10:00:00+01:00", "note": note},
        ),
        event(
            "gdpr.contract.ended",
            f"evt-{run}-ctr",
            {
                "contract_id": f"CTR-{run}",
                "subject": {"kind": "customer", "identifiers": ids},
                "ended_at": "2026-06-30T18:00:00+02:00",
                "categories": ["customer"],
            },
        ),
        event(
            "gdpr.legal_hold.placed",
            f"evt-{run}-hold",
            {
                "hold_id": f"HOLD-{run}",
                "matter": f"matter-{run}",
                "scope": {"subjects": [{"kind": "customer", "identifiers": ids}]},
                "at": "2027-01-15T09:00:00+01:00",
            },
        ),
    ]
    bad = request_event(run, 3, "forget_me", identifiers=ids)  # invalid right: dead-lettered
    for e in [access, erasure, *follow, bad]:
        topic = {
            "gdpr.contract.ended": topics.CONTRACTS,
            "gdpr.legal_hold.placed": topics.LEGAL_HOLDS,
        }.get(e["type"], topics.REQUESTS)
        key = str(
            e["data"].get("request_id") or e["data"].get("contract_id") or e["data"].get("hold_id")
        )
        await producer.send_and_wait(topic, json.dumps(e).encode(), key=key.encode())
        await asyncio.sleep(1)
    await producer.stop()
    rids = [rid, erasure["data"]["request_id"]]
    async with httpx.AsyncClient(base_url=up.api, headers=up.headers(), timeout=30) as http:
        api_request = request_event(run, 4, "access", identifiers=ids)["data"]
        r = await http.post("/v1/requests", json=api_request)
        say(f"POST /v1/requests -> {r.status_code}")
        rids.append(api_request["request_id"])
        await asyncio.sleep(8)
        for path, params in [
            ("/v1/audit/events", {"subject": ids["email"]}),
            ("/v1/audit/events", {"subject": ids["customer_id"], "reveal": "true"}),
            ("/v1/audit/events", {"subject": ids["phone"]}),
            (f"/v1/requests/{rid}", {}),
            ("/v1/requests", {}),
            (f"/v1/erasure/cases/req:{erasure['data']['request_id']}", {}),
            (f"/v1/audit/requests/{rid}/report", {}),
        ]:
            r = await http.get(path, params=params)
            say(f"GET {path} {sorted(params)} -> {r.status_code}")
    await asyncio.sleep(5)
    await fake.stop()
    return rids


async def main() -> int:
    verdict = Verdict("leaks")
    ids = canaries(SEED)
    run = f"lk{SEED}"
    say(f"no personal data leaks: seeded identifiers {sorted(ids)}; {machine()}")
    started = time.monotonic()
    with Receiver() as traces:
        up = Up("leaks", {"OTEL_EXPORTER_OTLP_ENDPOINT": f"http://127.0.0.1:{traces.port}"})
        try:
            up.start()
            rids = await flow(up, ids, run)
            await asyncio.to_thread(wait_quiet, up, 300)
            await asyncio.sleep(3)  # last span batches (OTEL_BSP_SCHEDULE_DELAY=200 ms)

            # The flow really carried the identifiers (else a zero would prove nothing).
            client = up.mongo()
            try:
                stored = up.db(client, "intake")["requests"].count_documents({"_id": {"$in": rids}})
                case = up.db(client, "erasure")["cases"].find_one({"_id": f"req:{rids[1]}"})
            finally:
                client.close()
            verdict.check(
                "the flow ran: the requests were recorded and the erasure case opened",
                stored == len(rids) and case is not None,
                f"{stored}/{len(rids)} requests, case {'found' if case else 'missing'}",
            )

            # 1. Logs.
            logs = [*sorted(up.home.glob("*.log")), up.home / "up.out"]
            service_logs = [p for p in logs if p.stem in (*SERVICES, "api") or p.name == "up.out"]
            leaked_logs = {p.name: hits(p.read_bytes(), ids) for p in service_logs}
            leaked_logs = {k: v for k, v in leaked_logs.items() if v}
            size = sum(p.stat().st_size for p in service_logs)
            verdict.check(
                "service logs (<home>/<service>.log, api.log, up.out) name no identifier",
                not leaked_logs,
                f"{len(service_logs)} files, {size} bytes; hits {leaked_logs}",
            )
            others = [p for p in logs if p not in service_logs]
            other_hits = {p.name: hits(p.read_bytes(), ids) for p in others}
            verdict.note(
                "third-party server logs (broker, MongoDB server), not Gardien's: "
                + (", ".join(f"{k}: {v or 'clean'}" for k, v in other_hits.items()) or "none")
            )

            # 2. Spans: every attribute, span name and resource, as exported (raw protobuf).
            span_hits: dict[str, set[str]] = {}
            for s in traces.spans:
                text = s["name"] + " " + " ".join(f"{k}={v}" for k, v in s["attributes"].items())
                for name in hits(text, ids):
                    span_hits.setdefault(name, set()).add(f"{s['service']}:{s['name']}")
            raw = b"".join(traces.raw)
            raw_hits = hits(raw, ids)
            verdict.check(
                "exported spans carry no identifier (names, attributes, raw OTLP payloads)",
                not span_hits and not raw_hits and bool(traces.spans),
                f"{len(traces.spans)} spans from "
                f"{sorted({s['service'] for s in traces.spans})}; "
                f"hits { ({k: sorted(v)[:4] for k, v in span_hits.items()}) }, raw {raw_hits}",
            )
            if span_hits:
                examples = [
                    f"{s['service']}:{s['name']} {k}"
                    for s in traces.spans
                    for k, v in s["attributes"].items()
                    if hits(str(v), ids)
                ][:5]
                verdict.note(f"leaking span attributes: {examples}")

            # 3. /metrics of each service.
            base = up.base_port
            metric_hits = {}
            for offset, name in enumerate(SERVICES, start=1):
                async with httpx.AsyncClient(timeout=5) as http:
                    body = (await http.get(f"http://127.0.0.1:{base + offset}/metrics")).text
                metric_hits[name] = (len(body.splitlines()), hits(body, ids))
            verdict.check(
                "/metrics of every service names no identifier",
                all(not h for _, h in metric_hits.values()),
                ", ".join(f"{k}: {n} lines, hits {h}" for k, (n, h) in metric_hits.items()),
            )

            # 4. Kafka record keys (and headers) of every topic.
            records = await all_keys(up.bootstrap)
            key_hits = [(t, k.decode(errors="replace")) for t, k, _ in records if hits(k, ids)]
            header_hits = [(t, n) for t, _, hs in records for n, v in hs if hits(v or b"", ids)]
            verdict.check(
                "Kafka record keys of every topic carry no identifier",
                not key_hits and bool(records),
                f"{len(records)} records on {len({t for t, _, _ in records})} topics; "
                f"hits {key_hits[:5]}",
            )
            verdict.check(
                "Kafka record headers carry no identifier (dead-letter reasons included)",
                not header_hits,
                f"hits {header_hits[:5]}",
            )
        finally:
            up.stop()
            up.cleanup()
    verdict.note(f"total {time.monotonic() - started:.0f}s")
    return verdict.finish()


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
