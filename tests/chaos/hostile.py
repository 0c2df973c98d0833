"""Scenario 4, hostile input: 1,000 generated malformed or hostile records (seeded) land in
dead-letter topics with reasons while interleaved valid requests keep flowing; then
schemathesis against the gateway's OpenAPI with zero server errors.

    python -m tests.chaos.hostile     # CHAOS_HOSTILE (default 1000), CHAOS_SEED,
                                      # CHAOS_ST_EXAMPLES (schemathesis examples per operation)
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import random
import subprocess
import sys
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.structs import TopicPartition

from shared import topics
from shared.messaging import DLQ_REASON
from tests.chaos.harness import (
    REPO,
    SERVICES,
    Up,
    Verdict,
    audited_ids,
    machine,
    request_event,
    running,
    say,
    wait_until,
)

HOSTILE = int(os.environ.get("CHAOS_HOSTILE", "1000"))
VALID_EVERY = 5  # one valid request after every 5 hostile records
SEED = int(os.environ.get("CHAOS_SEED", "7"))
ST_EXAMPLES = int(os.environ.get("CHAOS_ST_EXAMPLES", "25"))

OWNED = [  # topics whose owner dead-letters what it cannot use
    topics.REQUESTS,
    topics.CONTRACTS,
    topics.BREACHES,
    topics.LEGAL_HOLDS,
    topics.PROCESSORS,
    topics.ERASURE_RESULTS,
]


@dataclass
class Hostile:
    kind: str
    topic: str
    key: bytes | None
    body: bytes
    nonce: str


def _envelope(nonce: str, type_: str, data: Any) -> dict[str, Any]:
    return {
        "specversion": "1.0",
        "id": f"hostile-{nonce}",
        "source": "chaos.hostile",
        "type": type_,
        "time": "2027-03-05T17:00:00+01:00",
        "datacontenttype": "application/json",
        "data": data,
    }


def _request_data(nonce: str) -> dict[str, Any]:
    return {
        "request_id": f"HOST-{nonce}",
        "right": "access",
        "received_at": "2027-03-05T17:00:00+01:00",
        "channel": "email",
        "subject": {"kind": "customer", "identifiers": {"email": f"{nonce}@hostile.example"}},
    }


def _without(doc: dict[str, Any], name: str) -> dict[str, Any]:
    return {k: v for k, v in doc.items() if k != name}


def generate(rng: random.Random, count: int) -> list[Hostile]:
    """``count`` hostile records, every kind in turn, each with a unique nonce."""

    def nested(depth: int) -> bytes:
        return b'{"a":' * depth + b"1" + b"}" * depth

    kinds = {
        "invalid_json": lambda n: (
            rng.choice(OWNED),
            rng.choice(
                [
                    f'{{"id": "{n}", "type": '.encode(),
                    f"{{'id': '{n}'}}".encode(),
                    f'{{"id": "{n}",}}'.encode(),
                    f"<xml>{n}</xml>".encode(),
                ]
            ),
        ),
        "non_utf8": lambda n: (
            rng.choice(OWNED),
            b'{"id": "'
            + n.encode()
            + rng.choice([b"\xff\xfe", b"\xc3\x28", b"\xed\xa0\x80"])
            + b'"}',
        ),
        "not_an_object": lambda n: (
            rng.choice(OWNED),
            json.dumps(rng.choice([[n], n, len(n), None, True])).encode()
            + (b"" if rng.random() < 0.5 else b" "),
        ),
        "missing_envelope_fields": lambda n: (
            topics.REQUESTS,
            json.dumps(
                _without(
                    _envelope(n, "gdpr.request.received", _request_data(n)),
                    rng.choice(["specversion", "id", "source", "type"]),
                )
            ).encode(),
        ),
        # The contract (shared/events/common.py): instants are ISO 8601 with offset; not numbers.
        "numeric_dates": lambda n: (
            topics.REQUESTS,
            json.dumps(
                _envelope(
                    n,
                    "gdpr.request.received",
                    {**_request_data(n), "received_at": rng.choice([0, 123, "0", "1700000000"])},
                )
            ).encode(),
        ),
        "wrong_types": lambda n: (
            topics.REQUESTS,
            json.dumps(
                _envelope(
                    n,
                    "gdpr.request.received",
                    {
                        **_request_data(n),
                        rng.choice(["request_id", "right", "received_at", "subject", "channel"]): (
                            rng.choice([[1, 2], {"x": 1}, True, None, 1.5e308])
                        ),
                    },
                )
            ).encode(),
        ),
        "bad_dates": lambda n: (
            rng.choice([topics.REQUESTS, topics.CONTRACTS]),
            json.dumps(
                _envelope(
                    n,
                    "gdpr.request.received",
                    {
                        **_request_data(n),
                        "received_at": rng.choice(
                            [
                                "2027-02-30T10:00:00+01:00",
                                "yesterday",
                                "2027-03-05T17:00:00",
                                "99999-01-01T00:00:00Z",
                                "2027-13-01T00:00:00Z",
                                "",
                            ]
                        ),
                    },
                )
                if rng.random() < 0.5
                else _envelope(
                    n,
                    "gdpr.contract.ended",
                    {
                        "contract_id": f"CTR-{n}",
                        "ended_at": rng.choice(["2026-06-31T00:00:00Z", "soon", "2026-06-30"]),
                    },
                )
            ).encode(),
        ),
        "unknown_type": lambda n: (
            rng.choice(OWNED),
            json.dumps(
                _envelope(
                    n,
                    rng.choice(
                        [
                            "gdpr.request.teleported",
                            "gardien.audit.forge",
                            "x" * 128,
                            "com.evil.rm-rf",
                        ]
                    ),
                    {"request_id": f"HOST-{n}"},
                )
            ).encode(),
        ),
        "type_on_wrong_topic": lambda n: (
            topics.REQUESTS,
            json.dumps(_envelope(n, "gdpr.breach.detected", {"breach_id": f"BR-{n}"})).encode(),
        ),
        "huge_strings": lambda n: (
            topics.REQUESTS,
            json.dumps(
                _envelope(
                    n,
                    "gdpr.request.received",
                    {
                        **_request_data(n),
                        rng.choice(["request_id", "channel"]): n
                        + "x" * rng.choice([300, 5000, 200_000]),
                    },
                )
            ).encode(),
        ),
        "oversize_near_1MiB": lambda n: (
            rng.choice(OWNED),
            json.dumps(
                _envelope(
                    n,
                    "gdpr.request.received",
                    {
                        **_request_data(n),
                        "details": {"blob": "y" * rng.randint(1_000_000, 1_040_000)},
                    },
                )
            ).encode(),
        ),
        "deeply_nested": lambda n: (
            rng.choice(OWNED),
            rng.choice(
                [
                    b"[" * 100_000 + n.encode(),
                    json.dumps(_envelope(n, "gdpr.request.received", {})).encode()[:-2]
                    + b', "x": '
                    + nested(rng.choice([2_000, 50_000]))
                    + b"}",
                ]
            ),
        ),
        "empty_or_blank": lambda n: (rng.choice(OWNED), rng.choice([b"", b" ", b"\n\t"]) + b""),
        "unknown_aggregate": lambda n: (
            rng.choice([topics.REQUESTS, topics.ERASURE_RESULTS]),
            json.dumps(
                _envelope(
                    n,
                    "gdpr.request.identity_verified",
                    {"request_id": f"HOST-NONE-{n}", "at": "2027-03-06T10:00:00+01:00"},
                )
                if rng.random() < 0.5
                else _envelope(
                    n,
                    "gdpr.erasure.result",
                    {"command_id": f"req:NONE-{n}:crm", "system": "crm", "outcome": "erased"},
                )
            ).encode(),
        ),
    }
    names = sorted(kinds)
    out = []
    for i in range(count):
        kind = names[i % len(names)]
        nonce = f"h{SEED}x{i:05d}{rng.randrange(16**6):06x}"
        topic, body = kinds[kind](nonce)
        if kind == "unknown_aggregate":
            topic = topics.REQUESTS if b"identity_verified" in body else topics.ERASURE_RESULTS
        if kind == "empty_or_blank":
            nonce = ""  # nothing to carry it; matched by digest with multiplicity
        key = None if rng.random() < 0.2 else f"hostile-{i}".encode()
        out.append(Hostile(kind, topic, key, body, nonce))
    return out


async def read_dead_letters(bootstrap: str) -> list[tuple[str, bytes, dict[str, str]]]:
    """Every record of every dead-letter topic: (topic, body, headers)."""
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap,
        enable_auto_commit=False,
        max_partition_fetch_bytes=8 * 1024 * 1024,
        fetch_max_bytes=64 * 1024 * 1024,
        request_timeout_ms=30000,
    )
    await consumer.start()
    try:
        parts = [TopicPartition(topics.dlq(t), 0) for t in topics.INBOUND + topics.INTERNAL]
        consumer.assign(parts)
        ends = await consumer.end_offsets(parts)
        for tp in parts:
            consumer.seek(tp, 0)
        found: list[tuple[str, bytes, dict[str, str]]] = []
        position = {tp: 0 for tp in parts}
        deadline = time.monotonic() + 120
        while any(position[tp] < ends[tp] for tp in parts) and time.monotonic() < deadline:
            batch = await consumer.getmany(timeout_ms=1000, max_records=1000)
            for tp, records in batch.items():
                for rec in records:
                    position[tp] = rec.offset + 1
                    headers = {k: v.decode(errors="replace") for k, v in rec.headers}
                    found.append((tp.topic, rec.value or b"", headers))
        return found
    finally:
        await consumer.stop()


def digest(body: bytes) -> str:
    return hashlib.sha256(body).hexdigest()


def schemathesis(up: Up, verdict: Verdict) -> None:
    """Run schemathesis on the gateway's OpenAPI (127.0.0.1 only), bounded, 5xx check."""
    exe = Path(sys.executable).with_name("schemathesis")  # a dev dependency (pyproject)
    if not exe.exists():
        verdict.check("schemathesis available", False, f"{exe} missing: run `make env`")
        return
    report = up.home / "schemathesis"
    started = time.monotonic()
    done = subprocess.run(
        [
            str(exe),
            "run",
            f"{up.api}/openapi.json",
            "--url",
            up.api,
            "--checks",
            "not_a_server_error",
            "--max-examples",
            str(ST_EXAMPLES),
            "--seed",
            str(SEED),
            "--header",
            f"X-API-Key: {up.admin_key}",
            "--request-timeout",
            "30",
            "--report",
            "junit",
            "--report-dir",
            str(report),
            "--no-color",
        ],
        capture_output=True,
        timeout=900,
        cwd=up.home,
    )
    out = done.stdout.decode(errors="replace")
    tail = [line for line in out.splitlines() if line.strip()][-12:]
    print("\n".join(f"    st| {line}" for line in tail), flush=True)
    server_errors = out.count("Server error")
    verdict.check(
        "schemathesis: zero server errors (5xx) on every operation of /openapi.json",
        done.returncode == 0,
        f"exit {done.returncode} in {time.monotonic() - started:.0f}s, {ST_EXAMPLES} examples "
        f"per operation; 'Server error' mentioned {server_errors} times; "
        + " | ".join(tail[-3:])[-300:],
    )
    if done.returncode != 0:
        saved = REPO / ".gardien" / "chaos-schemathesis.txt"
        saved.parent.mkdir(exist_ok=True)
        saved.write_text(out + done.stderr.decode(errors="replace"))
        verdict.note(f"schemathesis output saved to {saved}")


async def main() -> int:
    verdict = Verdict("hostile")
    rng = random.Random(SEED)
    hostile = generate(rng, HOSTILE)
    say(
        f"hostile input: {len(hostile)} records ({dict(Counter(h.kind for h in hostile))}), "
        f"a valid request every {VALID_EVERY}; seed {SEED}; {machine()}"
    )
    started = time.monotonic()
    with running("hostile") as up:
        pids = dict(up.state()["children"])
        producer = AIOKafkaProducer(
            bootstrap_servers=up.bootstrap, acks="all", max_request_size=8 * 1024 * 1024
        )
        await producer.start()
        valid: list[dict[str, Any]] = []
        for i, h in enumerate(hostile):
            await producer.send_and_wait(h.topic, h.body, key=h.key)
            if (i + 1) % VALID_EVERY == 0:
                event = request_event(f"hv{SEED}", len(valid), "access")
                valid.append(event)
                await producer.send_and_wait(
                    topics.REQUESTS,
                    json.dumps(event).encode(),
                    key=event["data"]["request_id"].encode(),
                )
            if (i + 1) % 250 == 0:
                say(f"sent {i + 1} hostile records and {len(valid)} valid requests")
        await producer.stop()
        sent_at = time.monotonic()

        ids = {str(e["id"]) for e in valid}
        client = up.mongo()
        intake = up.db(client, "intake")["requests"]

        def valid_done() -> tuple[bool, str]:
            seen = audited_ids(up, client, topics.REQUESTS)
            stored = intake.count_documents({"_id": {"$regex": f"^REQ-hv{SEED}-"}})
            got = len(ids & set(seen))
            return got == len(ids) and stored == len(ids), (
                f"{got}/{len(ids)} valid audited, {stored} in intake"
            )

        ok, detail, took = await asyncio.to_thread(
            wait_until, "valid traffic", valid_done, 600, 5, 90
        )
        verdict.check(
            "valid requests interleaved with hostile records are all processed",
            ok,
            f"{detail}, {took:.0f}s after the last send",
        )

        wanted = Counter(digest(h.body) for h in hostile)
        by_digest = {digest(h.body): h for h in hostile}

        async def dead_letters() -> list[tuple[str, bytes, dict[str, str]]]:
            return await read_dead_letters(up.bootstrap)

        found: list[tuple[str, bytes, dict[str, str]]] = []
        deadline = time.monotonic() + 600
        last, moved_at = -1, time.monotonic()
        while time.monotonic() < deadline:
            found = await dead_letters()
            got = Counter(digest(b) for _, b, _ in found)
            missing = sum((wanted - got).values())
            say(f"dead letters: {len(found)} records, {missing} hostile records not there yet")
            if missing == 0:
                break
            if missing != last:
                last, moved_at = missing, time.monotonic()
            elif time.monotonic() - moved_at > 60:
                say("dead letters: no progress for 60s")
                break
            await asyncio.sleep(10)
        got = Counter(digest(b) for _, b, _ in found)
        missing = wanted - got
        extra = {d: n - wanted[d] for d, n in got.items() if d in wanted and n > wanted[d]}
        missing_kinds = Counter(by_digest[d].kind for d in missing.elements())
        verdict.check(
            "every hostile record lands in a dead-letter topic",
            not missing,
            f"{sum(wanted.values())} sent, {sum(missing.values())} missing"
            + (f" by kind {dict(missing_kinds)}" if missing else ""),
        )
        verdict.check(
            "each hostile record is dead-lettered exactly once",
            not extra,
            f"{len(extra)} dead-lettered more than once"
            + (f": kinds {dict(Counter(by_digest[d].kind for d in extra))}" if extra else ""),
        )
        reasons: dict[str, Counter[str]] = {}
        no_reason = leaked = 0
        for _topic, body, headers in found:
            h = by_digest.get(digest(body))
            if h is None:
                continue
            reason = headers.get(DLQ_REASON, "")
            if not reason:
                no_reason += 1
            # Ids may be named (they are not personal data); the subject's e-mail and the
            # free-text or oversized values must not be.
            bulky = h.kind in ("huge_strings", "oversize_near_1MiB")
            if (h.nonce and f"{h.nonce}@hostile.example" in reason) or (
                bulky and any(filler * 50 in reason for filler in ("x", "y"))
            ):
                leaked += 1
            reasons.setdefault(h.kind, Counter())[reason[:70]] += 1
        verdict.check(
            "every dead letter carries a reason header", no_reason == 0, f"{no_reason} without"
        )
        verdict.check(
            "reasons never echo personal or oversized values (ids may be named)",
            leaked == 0,
            f"{leaked} reasons contain the subject's e-mail or a long run of the filler",
        )
        for kind, counter in sorted(reasons.items()):
            top = "; ".join(f"{r!r} x{n}" for r, n in counter.most_common(2))
            say(f"  {kind}: {top}")

        audit = up.db(client, "audit")["records"]

        def rejections_audited() -> tuple[bool, str]:
            digests = Counter(
                str((d.get("data") or {}).get("body_sha256"))
                for d in audit.find({"kind": "rejection"}, {"data.body_sha256": 1, "data": 1})
            )
            miss = sum((wanted - digests).values())
            return miss == 0, f"{sum(wanted.values()) - miss}/{sum(wanted.values())} audited"

        ok, detail, _ = await asyncio.to_thread(
            wait_until, "rejections audited", rejections_audited, 300, 5, 60
        )
        verdict.check("every dead-lettered hostile record is audited as a rejection", ok, detail)
        client.close()
        now = dict(up.state()["children"])
        crashed = [s for s in SERVICES if now[s] != pids[s]]
        verdict.check(
            "no service crashed on hostile input",
            not crashed,
            f"restarted: {', '.join(crashed) or 'none'}",
        )
        verdict.note(
            f"Kafka part took {time.monotonic() - started:.0f}s "
            f"({time.monotonic() - sent_at:.0f}s after the last send)"
        )
        await asyncio.to_thread(schemathesis, up, verdict)
        # The API must still answer after the fuzzing.
        ready = await asyncio.to_thread(up.wait_ready, 60)
        verdict.check("every service still ready after schemathesis", True, f"{ready:.1f}s")
    verdict.note(f"total {time.monotonic() - started:.0f}s")
    return verdict.finish()


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
