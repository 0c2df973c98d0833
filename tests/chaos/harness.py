"""What every chaos scenario shares: a `gardien up` it owns, a workload, a fake connected
system, invariant bookkeeping and the exit code.

Each scenario starts its own `gardien up` with its own embedded stack (broker + MongoDB
server) in a fresh home directory, so it can kill those servers without touching anyone
else's, and stops it (Ctrl-C) at the end. Only processes this harness started are killed,
always by pid.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from pymongo import MongoClient

from shared import topics
from tests.upctl import free_base, start_up, up_env

REPO = Path(__file__).resolve().parents[2]

# Connected systems for the chaos runs: every one answers on Kafka (the fake system below),
# none over HTTP and none unreachable, so every case can close once each system answered.
REGISTRY = """\
category_aliases:
  customer: [profile, contact, marketing, payment, behaviour]
  prospect: [profile, contact, marketing]
  accounting: [invoices]
systems:
  - id: crm
    categories:
      profile: {action: erase, activity: customers}
      contact: {action: erase, activity: customers}
    identifiers: [email, customer_id]
    transport: {kind: kafka}
    ack_timeout_seconds: 86400
    retry: {initial_seconds: 30, max_seconds: 120}
  - id: marketing
    categories: {marketing: {action: erase, activity: prospecting}}
    identifiers: [email]
    transport: {kind: kafka}
    ack_timeout_seconds: 86400
    retry: {initial_seconds: 30, max_seconds: 120}
  - id: billing
    categories: {payment: {action: anonymise, activity: customers}}
    identifiers: [customer_id, email]
    transport: {kind: kafka}
    ack_timeout_seconds: 86400
    retry: {initial_seconds: 30, max_seconds: 120}
"""

SERVICES = ("intake", "deadlines", "erasure", "audit")


def say(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


# Invariants -------------------------------------------------------------------------------


@dataclass
class Verdict:
    """The invariants a scenario checked, with what was measured; decides the exit code."""

    scenario: str
    checks: list[tuple[str, bool, str]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def check(self, name: str, ok: bool, detail: str = "") -> bool:
        self.checks.append((name, bool(ok), detail))
        say(f"{'PASS' if ok else 'FAIL'}  {name}" + (f"  ({detail})" if detail else ""))
        return bool(ok)

    def note(self, text: str) -> None:
        self.notes.append(text)
        say(f"note: {text}")

    @property
    def ok(self) -> bool:
        return all(ok for _, ok, _ in self.checks) and bool(self.checks)

    def finish(self) -> int:
        print(f"\n=== {self.scenario}: {'PASSED' if self.ok else 'FAILED'} ===", flush=True)
        for name, ok, detail in self.checks:
            print(f"  [{'ok' if ok else 'FAIL'}] {name}" + (f" - {detail}" if detail else ""))
        for text in self.notes:
            print(f"  note: {text}")
        out = os.environ.get("CHAOS_RESULTS_DIR")
        if out:
            path = Path(out) / f"{self.scenario}.json"
            path.write_text(
                json.dumps(
                    {
                        "scenario": self.scenario,
                        "ok": self.ok,
                        "checks": [{"name": n, "ok": o, "detail": d} for n, o, d in self.checks],
                        "notes": self.notes,
                    },
                    indent=2,
                )
            )
        return 0 if self.ok else 1


# A running `gardien up` -------------------------------------------------------------------


@dataclass
class Up:
    """`gardien up` in a subprocess with its own embedded stack and home directory."""

    name: str
    extra_env: dict[str, str] = field(default_factory=dict)
    home: Path = field(init=False)
    prefix: str = field(init=False)
    proc: subprocess.Popen[bytes] | None = None
    api: str = ""
    env: dict[str, str] = field(default_factory=dict)
    base_port: int = 0

    def __post_init__(self) -> None:
        self.home = Path(tempfile.mkdtemp(prefix=f"gardien-chaos-{self.name}-"))
        self.prefix = f"chaos{uuid.uuid4().hex[:6]}_"

    def start(self, timeout: float = 90) -> None:
        (self.home / "registry.yaml").write_text(REGISTRY)
        env = up_env(
            None,
            None,
            GARDIEN_DB_PREFIX=self.prefix,
            GARDIEN_ERASURE_REGISTRY_PATH=str(self.home / "registry.yaml"),
            PYTHONUNBUFFERED="1",
            **self.extra_env,
        )
        if "OTEL_EXPORTER_OTLP_ENDPOINT" not in self.extra_env:
            env.pop("OTEL_EXPORTER_OTLP_ENDPOINT", None)
        self.base_port = free_base()
        self.proc, self.api = start_up(self.home, env, timeout, base_port=self.base_port)
        state = self.state()
        self.env = {
            **env,
            "KAFKA_BOOTSTRAP_SERVERS": str(state["bootstrap"]),
            "MONGODB_URI": str(state["mongodb_uri"]),
        }
        say(
            f"gardien up ready: home {self.home}, Kafka {state['bootstrap']}, "
            f"MongoDB {state['mongodb_uri']}, API {self.api}"
        )

    def wait_ready(self, timeout: float = 90) -> float:
        """Seconds until the gateway reports every service ready."""
        started = time.monotonic()
        deadline = started + timeout
        while time.monotonic() < deadline:
            assert self.proc is not None
            if self.proc.poll() is not None:
                raise RuntimeError(f"gardien up exited: {self.tail('up.out')}")
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{self.api}/readyz", timeout=3).status_code == 200:
                    return time.monotonic() - started
            time.sleep(0.3)
        raise RuntimeError(f"not ready in {timeout}s: {self.tail('up.out')}")

    def tail(self, name: str, chars: int = 2000) -> str:
        path = self.home / name
        return path.read_text(errors="replace")[-chars:] if path.exists() else ""

    def state(self) -> dict[str, Any]:
        for _ in range(50):
            with contextlib.suppress(FileNotFoundError, json.JSONDecodeError):
                return dict(json.loads((self.home / "up.json").read_text()))
            time.sleep(0.1)
        raise RuntimeError("no up.json")

    @property
    def bootstrap(self) -> str:
        return str(self.state()["bootstrap"])

    @property
    def admin_key(self) -> str:
        return (self.home / "admin-api-key").read_text().strip()

    def headers(self) -> dict[str, str]:
        return {"X-API-Key": self.admin_key}

    def mongo(self) -> MongoClient[dict[str, Any]]:
        return MongoClient(
            str(self.state()["mongodb_uri"]), serverSelectionTimeoutMS=20000, tz_aware=True
        )

    def db(self, client: MongoClient[dict[str, Any]], service: str) -> Any:
        return client[f"{self.prefix}{service}"]

    def kill(self, what: str) -> int:
        """SIGKILL one child of this `gardien up` (a service, 'broker' or 'mongo'); its pid."""
        state = self.state()
        pid = int(state[f"{what}_pid"] if what in ("broker", "mongo") else state["children"][what])
        os.kill(pid, signal.SIGKILL)
        return pid

    def gardien(self, *args: str, timeout: float = 600) -> subprocess.CompletedProcess[bytes]:
        return subprocess.run(
            [sys.executable, "-m", "gardien", *args],
            env=self.env,
            cwd=REPO,
            capture_output=True,
            timeout=timeout,
        )

    def stop(self) -> None:
        """Ctrl-C `gardien up` and wait until it has stopped every child."""
        if self.proc is None or self.proc.poll() is not None:
            return
        os.kill(self.proc.pid, signal.SIGINT)
        try:
            self.proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=10)

    def cleanup(self) -> None:
        if os.environ.get("CHAOS_KEEP_HOME"):
            say(f"kept {self.home}")
            return
        import shutil

        shutil.rmtree(self.home, ignore_errors=True)


@contextlib.contextmanager
def running(name: str, **extra_env: str) -> Iterator[Up]:
    up = Up(name, extra_env)
    try:
        up.start()
        yield up
    finally:
        up.stop()
        up.cleanup()


# The workload -----------------------------------------------------------------------------


def request_event(
    run: str, n: int, right: str, identifiers: dict[str, str] | None = None
) -> dict[str, Any]:
    """A valid `gdpr.request.received` with ids unique to this run."""
    rid = f"REQ-{run}-{n:06d}"
    data: dict[str, Any] = {
        "request_id": rid,
        "right": right,
        "received_at": "2027-03-05T17:00:00+01:00",
        "channel": "email",
        "subject": {
            "kind": "customer",
            "identifiers": identifiers
            or {"email": f"p{n}.{run}@chaos.example", "customer_id": f"C-{run}-{n}"},
        },
    }
    if right == "erasure":
        data["details"] = {"contract_status": "terminated", "contract_end_date": "2026-06-30"}
    return {
        "specversion": "1.0",
        "id": f"evt-{run}-{n:06d}",
        "source": "chaos.example",
        "type": "gdpr.request.received",
        "time": "2027-03-05T17:00:00+01:00",
        "datacontenttype": "application/json",
        "data": data,
    }


def workload(run: str, count: int, erasure_share: float = 0.3) -> list[dict[str, Any]]:
    """``count`` requests, every ``1/erasure_share``-th one an erasure (deterministic)."""
    every = max(1, round(1 / erasure_share)) if erasure_share else 0
    return [
        request_event(run, n, "erasure" if every and n % every == 0 else "access")
        for n in range(count)
    ]


async def new_producer(bootstrap: str) -> AIOKafkaProducer:
    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap, acks="all", linger_ms=5, request_timeout_ms=15000
    )
    await producer.start()
    return producer


async def publish(
    producer: AIOKafkaProducer,
    events: list[dict[str, Any]],
    rate: float | None = None,
    on_progress: Callable[[int], None] | None = None,
) -> None:
    """Send ``events`` keyed by request id, at ``rate`` events/s (as fast as possible if None)."""
    started = time.monotonic()
    for i, event in enumerate(events):
        key = str(event["data"]["request_id"]).encode()
        await producer.send_and_wait(topics.REQUESTS, json.dumps(event).encode(), key=key)
        if rate:
            ahead = started + (i + 1) / rate - time.monotonic()
            if ahead > 0:
                await asyncio.sleep(ahead)
        if on_progress and (i + 1) % 200 == 0:
            on_progress(i + 1)


class FakeSystems:
    """Every connected system of REGISTRY: answers each command it reads on the commands
    topic (duplicates included, as a real system might): an erasure command with a
    `gdpr.erasure.result`, an export command with a `gdpr.export.result` (`not_found`)."""

    OUTCOMES = {"erase": "erased", "anonymise": "anonymised", "suppress": "erased"}

    def __init__(self, bootstrap: str) -> None:
        self.bootstrap = bootstrap
        self.commands = 0
        self.answered: set[str] = set()
        self.task: asyncio.Task[None] | None = None

    async def _run(self) -> None:
        while True:
            try:
                await self._serve()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # the broker went away: reconnect
                say(f"fake systems: {type(exc).__name__}: {exc}; reconnecting")
                await asyncio.sleep(2)

    async def _serve(self) -> None:
        consumer = AIOKafkaConsumer(
            topics.ERASURE_COMMANDS,
            bootstrap_servers=self.bootstrap,
            group_id="chaos-fake-systems",
            auto_offset_reset="earliest",
            enable_auto_commit=True,
            fetch_max_wait_ms=50,
            session_timeout_ms=6000,
            heartbeat_interval_ms=2000,
        )
        producer = await new_producer(self.bootstrap)
        await consumer.start()
        try:
            while True:
                batch = await consumer.getmany(timeout_ms=500, max_records=500)
                for records in batch.values():
                    for record in records:
                        await self._answer(producer, record.value)
        finally:
            await consumer.stop()
            await producer.stop()

    async def _answer(self, producer: AIOKafkaProducer, value: bytes) -> None:
        command = json.loads(value)
        data = command.get("data", {})
        if command.get("type") != "gardien.erasure.command.issued":
            return
        self.commands += 1
        action = str(data.get("action", "erase"))
        # An export (access collection) is answered as a system holding nothing on the subject.
        kind, outcome = (
            ("gdpr.export.result", "not_found")
            if action == "export"
            else ("gdpr.erasure.result", self.OUTCOMES.get(action, "retained"))
        )
        result = {
            "specversion": "1.0",
            "id": f"res-{command['id']}",
            "source": f"{data['system']}.chaos.example",
            "type": kind,
            "time": "2027-03-06T10:00:00+01:00",
            "datacontenttype": "application/json",
            "data": {
                "command_id": data["command_id"],
                "system": data["system"],
                "outcome": outcome,
            },
        }
        await producer.send_and_wait(
            topics.ERASURE_RESULTS, json.dumps(result).encode(), key=data["command_id"].encode()
        )
        self.answered.add(str(data["command_id"]))

    def start(self) -> None:
        self.task = asyncio.create_task(self._run())

    async def stop(self) -> None:
        if self.task:
            self.task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self.task


# Consumer lag: how the runs know the pipeline has gone quiet ------------------------------

GROUP_TOPICS = {
    "gardien-intake": [topics.REQUESTS, topics.ERASURE_CASES],
    "gardien-deadlines": [
        topics.BREACHES,
        topics.CONTRACTS,
        topics.LEGAL_HOLDS,
        topics.PROCESSORS,
        topics.REQUEST_EVENTS,
    ],
    "gardien-erasure": [topics.PROCESSORS, topics.ERASURE_RESULTS, topics.ERASURE_WORK],
    "gardien-audit": sorted(topics.all_topics()),
}


async def lag_async(bootstrap: str) -> dict[str, int]:
    """Records each service's consumer group has not committed yet, over its topics."""
    from aiokafka.admin import AIOKafkaAdminClient
    from aiokafka.structs import TopicPartition

    parts = [TopicPartition(t, p) for t, n in topics.all_topics().items() for p in range(n)]
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, request_timeout_ms=10000)
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=10000)
    await consumer.start()
    await admin.start()
    try:
        ends = await consumer.end_offsets(parts)
        out = {}
        for group, names in GROUP_TOPICS.items():
            mine = [tp for tp in parts if tp.topic in names]
            committed = await admin.list_consumer_group_offsets(group, partitions=mine)
            total = 0
            for tp in mine:
                meta = committed.get(tp)
                done = meta.offset if meta is not None and meta.offset >= 0 else 0
                total += max(ends.get(tp, 0) - done, 0)
            out[group.removeprefix("gardien-")] = total
        return out
    finally:
        await admin.close()
        await consumer.stop()


def lag(bootstrap: str) -> dict[str, int]:
    """``lag_async`` from synchronous code (a thread without a running loop)."""
    return asyncio.run(asyncio.wait_for(lag_async(bootstrap), 30))


def wait_quiet(up: Up, timeout: float, stall: float = 90) -> tuple[bool, str, float]:
    """Wait until every service has committed every record of its topics (give up when the
    lag has not moved for ``stall`` seconds)."""

    def probe() -> tuple[bool, str]:
        lags = lag(up.bootstrap)
        return sum(lags.values()) == 0, "lag " + ", ".join(f"{k} {v}" for k, v in lags.items())

    return wait_until("pipeline quiet (consumer lag 0)", probe, timeout, stall=stall)


# Checking the stores ----------------------------------------------------------------------


def audited_ids(up: Up, client: MongoClient[dict[str, Any]], topic: str) -> dict[str, int]:
    """event id -> number of audit records of that event on ``topic``."""
    counts: dict[str, int] = {}
    records = up.db(client, "audit")["records"]
    for doc in records.find({"topic": topic}, {"event_id": 1, "kind": 1}):
        if doc.get("kind") == "event":
            eid = str(doc.get("event_id"))
            counts[eid] = counts.get(eid, 0) + 1
    return counts


def wait_until(
    what: str,
    probe: Callable[[], tuple[bool, str]],
    timeout: float,
    every: float = 5,
    stall: float | None = None,
) -> tuple[bool, str, float]:
    """Poll ``probe`` (-> done, progress text) until done or ``timeout``; print progress.

    With ``stall``, give up as soon as the progress text has not changed for that long.
    """
    started = time.monotonic()
    last = 0.0
    detail = ""
    changed_at, previous = started, ""
    while True:
        try:
            done, detail = probe()
        except Exception as exc:  # the store may be restarting
            done, detail = False, f"probe failed: {type(exc).__name__}"
        elapsed = time.monotonic() - started
        if done:
            say(f"{what}: done after {elapsed:.0f}s ({detail})")
            return True, detail, elapsed
        if detail != previous:
            changed_at, previous = time.monotonic(), detail
        if elapsed > timeout:
            say(f"{what}: NOT done after {timeout:.0f}s ({detail})")
            return False, detail, elapsed
        if stall is not None and time.monotonic() - changed_at > stall:
            say(f"{what}: STALLED, no progress for {stall:.0f}s ({detail})")
            return False, f"stalled: {detail}", elapsed
        if elapsed - last >= every:
            say(f"{what}: {detail}")
            last = elapsed
        time.sleep(1)


def check_pipeline(
    verdict: Verdict,
    up: Up,
    events: list[dict[str, Any]],
    *,
    settle: float,
    fake: FakeSystems | None = None,
) -> None:
    """The end-state invariants of a run of ``events`` (requests), after it settles.

    - every inbound event has exactly one audit record;
    - every request exists once in intake, with exactly one request clock in deadlines;
    - every erasure request has one case, closed, each system's command acknowledged once;
    - `gardien audit verify` exits 0.
    """
    client = up.mongo()
    try:
        ids = {str(e["id"]) for e in events}
        rids = {str(e["data"]["request_id"]) for e in events}
        erasures = {str(e["data"]["request_id"]) for e in events if e["data"]["right"] == "erasure"}
        audit = up.db(client, "audit")
        cases = up.db(client, "erasure")["cases"]

        def settled() -> tuple[bool, str]:
            seen = audited_ids(up, client, topics.REQUESTS)
            missing = len(ids - set(seen))
            # The erasure requests' own cases (access collection cases close too, not counted).
            wanted = sorted(f"req:{r}" for r in erasures)
            found = cases.find({"_id": {"$in": wanted}, "state": "closed"}, {"_id": 1})
            closed = len(list(found)) if erasures else 0
            text = f"{len(ids) - missing}/{len(ids)} audited, {closed}/{len(erasures)} cases closed"
            return missing == 0 and closed >= len(erasures), text

        started = time.monotonic()
        wait_until("settling", settled, settle)
        # Derived events (clocks, case events, their audit records) may still be in flight.
        quiet, detail, _ = wait_quiet(up, max(60.0, settle - (time.monotonic() - started)))
        verdict.check("the pipeline drains: every consumer group at lag 0", quiet, detail)
        time.sleep(2)

        seen = audited_ids(up, client, topics.REQUESTS)
        missing = sorted(ids - set(seen))
        twice = sorted(i for i in ids if seen.get(i, 0) > 1)
        verdict.check(
            "every inbound event has exactly one audit record",
            not missing and not twice,
            f"{len(ids)} events: {len(missing)} missing, {len(twice)} recorded more than once"
            + (f"; e.g. missing {missing[:3]}" if missing else ""),
        )
        dupes = 0
        total = 0
        pairs: dict[tuple[str, str], int] = {}
        for doc in audit["records"].find({"kind": "event"}, {"topic": 1, "event_id": 1}):
            total += 1
            key = (str(doc.get("topic")), str(doc.get("event_id")))
            pairs[key] = pairs.get(key, 0) + 1
        dupes = sum(1 for v in pairs.values() if v > 1)
        verdict.check(
            "no event (inbound or internal) audited twice on any topic",
            dupes == 0,
            f"{total} event records, {dupes} duplicated (topic, event id)",
        )

        intake = up.db(client, "intake")["requests"]
        stored = {str(d["_id"]): d for d in intake.find({"_id": {"$in": sorted(rids)}}, {"_id": 1})}
        verdict.check(
            "every request recorded once by intake",
            len(stored) == len(rids),
            f"{len(stored)}/{len(rids)}",
        )

        timers = up.db(client, "deadlines")["timers"]
        clock_counts: dict[str, int] = {}
        for doc in timers.find({"kind": "request"}, {"_id": 1, "ref": 1}):
            rid = str((doc.get("ref") or {}).get("request_id", ""))
            clock_counts[rid] = clock_counts.get(rid, 0) + 1
        scheduled: dict[str, list[str]] = {}
        found_scheduled = audit["records"].find(
            {"type": "gardien.deadline.scheduled"}, {"refs": 1, "event_id": 1}
        )
        for doc in found_scheduled:
            rid = str((doc.get("refs") or {}).get("request_id", ""))
            scheduled.setdefault(rid, []).append(str(doc.get("event_id")))
        unscheduled = sorted(r for r in rids if not scheduled.get(r))
        twice_scheduled = sorted(
            r for r in rids if len(set(scheduled.get(r, []))) != len(scheduled.get(r, []))
        )
        verdict.check(
            "every request clock set once: its `deadline.scheduled` audited, none twice",
            not unscheduled and not twice_scheduled,
            f"{len(rids)} requests: {len(unscheduled)} never scheduled, "
            f"{len(twice_scheduled)} with a scheduled event audited twice"
            + (f"; e.g. {unscheduled[:3]}" if unscheduled else ""),
        )
        no_clock = sorted(r for r in rids if clock_counts.get(r, 0) == 0)
        many = sorted(r for r in rids if clock_counts.get(r, 0) > 1)
        verdict.check(
            "every request has exactly one request clock",
            not no_clock and not many,
            f"{len(rids)} requests: {len(no_clock)} without clock, {len(many)} with several"
            + (f"; e.g. {no_clock[:3]}" if no_clock else ""),
        )

        if erasures:
            wanted = {f"req:{r}" for r in erasures}
            found = {str(d["_id"]): d for d in cases.find({"_id": {"$in": sorted(wanted)}})}
            open_cases = [c for c, d in found.items() if d.get("state") != "closed"]
            bad_acks: list[str] = []
            commands = 0
            for case_id, doc in found.items():
                for system, progress in (doc.get("systems") or {}).items():
                    commands += 1
                    acks = [s for s in progress.get("steps", []) if s.get("kind") == "acknowledged"]
                    if progress.get("state") != "acknowledged" or len(acks) != 1:
                        bad_acks.append(f"{case_id}/{system}: {len(acks)} acks")
            verdict.check(
                "every erasure request has exactly one case, and it closed",
                len(found) == len(wanted) and not open_cases,
                f"{len(found)}/{len(wanted)} cases, {len(open_cases)} not closed",
            )
            verdict.check(
                "every command of every case acknowledged exactly once",
                not bad_acks and commands > 0,
                f"{commands} commands, {len(bad_acks)} not acknowledged exactly once"
                + (f"; e.g. {bad_acks[:3]}" if bad_acks else "")
                + (f"; fake systems read {fake.commands} command records" if fake else ""),
            )
    finally:
        client.close()
    started = time.monotonic()
    done = up.gardien("audit", "verify")
    out = (done.stdout + done.stderr).decode(errors="replace").strip().splitlines()
    verdict.check(
        "`gardien audit verify` exits 0",
        done.returncode == 0,
        f"exit {done.returncode} in {time.monotonic() - started:.0f}s: "
        + " | ".join(line for line in out if "verifying" not in line)[-400:],
    )


def machine() -> str:
    mem = "?"
    with contextlib.suppress(OSError):
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal"):
                mem = f"{int(line.split()[1]) // 1024} MiB"
    return f"{os.cpu_count()} cores, {mem} RAM"
