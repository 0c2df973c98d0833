"""Fan-out: N erasure cases x 10 connected systems, every command issued and acknowledged,
measured on the erasure service alone, as deployed (its own process).

A private embedded stack; `gardien service erasure` with a registry of ten kafka-transport
systems (bench.common.bench_registry); N ``gardien.erasure.work.requested`` items produced
on ``gardien.erasure.work.v1`` at once; one fast responder in this process answers every
``gardien.erasure.command.issued`` with ``erased`` on ``gdpr.erasure.results.v1``. A watcher
reads the commands topic (commands issued) and the cases topic (one ``progressed`` per
acknowledgement reconciled, ``closed`` per case); the erasure process's resident memory is
sampled every second (peak = the kernel's high-water mark, VmHWM).

    python -m bench.fanout                 # the target: 10,000 cases x 10 systems
    python -m bench.fanout --cases 300     # the size `make bench` runs
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx

from bench.common import REPO, Progress, Stack, bench_registry, embedded_stack, emit, machine
from gardien import stack
from shared import topics

SYSTEMS = 10
TARGET_CASES = 10_000


def work_event(run: str, i: int) -> tuple[bytes, bytes]:
    """One erasure work item for subject ``i`` (both identifiers, every system reached)."""
    case_id = f"req:B{run}-{i}"
    event = {
        "specversion": "1.0",
        "id": f"work-{run}-{i}",
        "source": "bench.fanout",
        "type": "gardien.erasure.work.requested",
        "time": datetime.now(UTC).isoformat(),
        "datacontenttype": "application/json",
        "data": {
            "case_id": case_id,
            "origin": "request",
            "request_id": f"B{run}-{i}",
            "subject": {
                "kind": "customer",
                "identifiers": {"email": f"u{run}{i}@example.org", "customer_id": f"C{run}{i}"},
            },
            "categories": [{"category": "customer", "action": "erase", "ground": "Art 17(1)"}],
            "due_by": "2027-04-05",
        },
    }
    return case_id.encode(), json.dumps(event).encode()


def answer(command: dict[str, Any]) -> tuple[bytes, bytes]:
    """The system's answer to a command: ``erased``, or for an export (an access request's
    collection) ``not_found`` with nothing to upload."""
    data = command["data"]
    export = data.get("action") == "export"
    said = {"outcome": "not_found", "records": 0} if export else {"outcome": "erased"}
    result = {
        "specversion": "1.0",
        "id": f"res-{uuid.uuid4().hex}",
        "source": f"bench/{data['system']}",
        "type": "gdpr.export.result" if export else "gdpr.erasure.result",
        "time": datetime.now(UTC).isoformat(),
        "datacontenttype": "application/json",
        "data": {"command_id": data["command_id"], "system": data["system"], **said},
    }
    return str(data["command_id"]).encode(), json.dumps(result).encode()


async def responder(bootstrap: str, stop: threading.Event) -> None:
    """Answer every command on the commands topic (its own consumer group)."""
    from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

    consumer = AIOKafkaConsumer(
        topics.ERASURE_COMMANDS,
        bootstrap_servers=bootstrap,
        group_id="bench-responders",
        auto_offset_reset="earliest",
        fetch_max_wait_ms=20,
        session_timeout_ms=3000,
        heartbeat_interval_ms=1000,
    )
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, linger_ms=5)
    await consumer.start()
    await producer.start()
    while not stop.is_set():
        batch = await consumer.getmany(timeout_ms=200, max_records=2000)
        sends = [
            await producer.send(topics.ERASURE_RESULTS, value, key=key)
            for records in batch.values()
            for rec in records
            for key, value in [answer(json.loads(rec.value))]
        ]
        await asyncio.gather(*sends)
    await consumer.stop()
    await producer.stop()


async def produce_work(bootstrap: str, items: list[tuple[bytes, bytes]]) -> None:
    from aiokafka import AIOKafkaProducer

    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, linger_ms=5)
    await producer.start()
    futures = [await producer.send(topics.ERASURE_WORK, v, key=k) for k, v in items]
    await asyncio.gather(*futures)
    await producer.stop()


class Watch:
    """Counts, with their arrival times, commands issued, acks reconciled and cases closed."""

    def __init__(self, run: str) -> None:
        self.run = run
        self.commands: list[float] = []
        self.acks: list[float] = []
        self.closed: list[float] = []

    def see(self, topic: str, value: bytes, at: float) -> None:
        if self.run.encode() not in value:
            return
        kind = json.loads(value)["type"]
        if topic == topics.ERASURE_COMMANDS:
            self.commands.append(at)
        elif kind == "gardien.erasure.case.progressed":
            self.acks.append(at)
        elif kind == "gardien.erasure.case.closed":
            self.closed.append(at)


async def watch(bootstrap: str, seen: Watch, stop: threading.Event) -> None:
    from aiokafka import AIOKafkaConsumer, TopicPartition

    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, fetch_max_wait_ms=50)
    await consumer.start()
    plan = topics.all_topics()
    parts = [
        TopicPartition(t, p)
        for t in (topics.ERASURE_COMMANDS, topics.ERASURE_CASES)
        for p in range(plan[t])
    ]
    consumer.assign(parts)
    await consumer.seek_to_beginning()
    while not stop.is_set():
        for tp, records in (await consumer.getmany(timeout_ms=200, max_records=5000)).items():
            now = time.time()
            for rec in records:
                seen.see(tp.topic, rec.value, now)
    await consumer.stop()


def memory(pid: int) -> tuple[float, float]:
    """(VmRSS, VmHWM) of ``pid`` in MiB."""
    values = {"VmRSS": float("nan"), "VmHWM": float("nan")}
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            name = line.split(":")[0]
            if name in values:
                values[name] = int(line.split()[1]) / 1024
    except OSError:
        pass
    return values["VmRSS"], values["VmHWM"]


@contextmanager
def erasure_service(st: Stack, home: Path) -> Iterator[subprocess.Popen[bytes]]:
    """`gardien service erasure` on ``st``, ready; stopped afterwards."""
    from shared.kafka_admin import ensure_topics
    from shared.pseudonyms import ensure_key_file
    from shared.topics import all_topics

    asyncio.run(ensure_topics(st.bootstrap, all_topics()))
    port = stack.free_port()
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("GARDIEN_", "OTEL_"))},
        "KAFKA_BOOTSTRAP_SERVERS": st.bootstrap,
        "MONGODB_URI": st.mongodb_uri,
        "GARDIEN_DB_PREFIX": f"fan{uuid.uuid4().hex[:6]}_",
        "GARDIEN_ERASURE_REGISTRY_PATH": str(bench_registry(home, SYSTEMS)),
        "GARDIEN_ERASURE_SIGNING_SECRET": uuid.uuid4().hex,
        "GARDIEN_PSEUDONYM_KEY_FILE": str(ensure_key_file(home / "pseudonym.key")),
        "GARDIEN_SERVICE_PORT": str(port),
        "GARDIEN_KAFKA_SESSION_TIMEOUT_MS": "3000",
        "GARDIEN_FETCH_MAX_WAIT_MS": "20",
        "GARDIEN_LOG_LEVEL": "WARNING",
    }
    log = (home / "erasure.log").open("wb")
    proc = subprocess.Popen(
        [sys.executable, "-m", "gardien", "service", "erasure"],
        cwd=REPO,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        _wait_ready(proc, port, home / "erasure.log")
        yield proc
    finally:
        proc.terminate()  # a loaded machine may take a while to drain the consumer
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=30)
        log.close()


def _wait_ready(proc: subprocess.Popen[bytes], port: int, log: Path) -> None:
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"erasure exited: {log.read_text(errors='replace')[-2000:]}")
        try:
            if httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.3)
    raise SystemExit("erasure not ready within 90 s")


def rate(times: list[float], t0: float) -> float:
    return len(times) / max((max(times) - t0) if times else 1.0, 1e-9)


def run(cases: int, stall: float) -> dict[str, Any]:
    """Run the fan-out of ``cases`` cases and return the figures."""
    run_id = uuid.uuid4().hex[:5]
    with embedded_stack() as st, erasure_service(st, st.home or Path(".")) as proc:
        stop, seen = threading.Event(), Watch(run_id)
        threads = [
            threading.Thread(target=lambda: asyncio.run(responder(st.bootstrap, stop))),
            threading.Thread(target=lambda: asyncio.run(watch(st.bootstrap, seen, stop))),
        ]
        for thread in threads:
            thread.start()
        time.sleep(4)  # the responder's group join
        items = [work_event(run_id, i) for i in range(cases)]
        t0 = time.time()
        asyncio.run(produce_work(st.bootstrap, items))
        produced = time.time() - t0
        progress, samples = Progress("cases closed", cases), []
        calm, last = time.monotonic(), 0
        while len(seen.closed) < cases and time.monotonic() - calm < stall:
            time.sleep(1)
            samples.append((len(seen.closed), memory(proc.pid)[0]))
            if len(seen.acks) != last:
                calm, last = time.monotonic(), len(seen.acks)
            progress.update(len(seen.closed))
        rss_now, peak = memory(proc.pid)
        stop.set()
        for thread in threads:
            thread.join()
    result = figures(cases, seen, t0, produced, samples, peak, rss_now)
    return {**result, "gauge_reads_cut_short": cut_short(st.home or Path("."))}


def cut_short(home: Path) -> int:
    """Gauge reads the erasure service gave up on during the run (a figure left stale)."""
    log = home / "erasure.log"
    text = log.read_text(errors="replace") if log.exists() else ""
    return sum("not refreshed" in line for line in text.splitlines())


def figures(
    cases: int,
    seen: Watch,
    t0: float,
    produced: float,
    samples: list[tuple[int, float]],
    peak: float,
    rss_end: float,
) -> dict[str, Any]:
    end = max(seen.closed or seen.acks or [time.time()])
    by_quarter = {}
    for q in (0.1, 0.25, 0.5, 0.75, 1.0):
        hit = next((rss for done, rss in samples if done >= q * cases), None)
        by_quarter[f"rss_mib_at_{int(q * 100)}pct"] = round(hit, 1) if hit else None
    return {
        "benchmark": "fanout",
        "cases": cases,
        "systems": SYSTEMS,
        "closed": len(seen.closed),
        "commands_issued": len(seen.commands),
        "acks_reconciled": len(seen.acks),
        "seconds": round(end - t0, 1),
        "work_produced_s": round(produced, 1),
        "commands_per_s": round(rate(seen.commands, t0), 1),
        "acks_reconciled_per_s": round(rate(seen.acks, t0), 1),
        "cases_closed_per_s": round(rate(seen.closed, t0), 2),
        "erasure_peak_rss_mib": round(peak, 1),
        "erasure_rss_end_mib": round(rss_end, 1),
        **by_quarter,
    }


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--cases", type=int, default=TARGET_CASES)
    parser.add_argument("--ceiling", type=float, default=None)
    parser.add_argument("--stall", type=float, default=120, help="give up after this long idle")
    args = parser.parse_args(argv)
    print(f"fan-out benchmark — {machine()}", flush=True)
    result = run(args.cases, args.stall)
    print(
        f"fan-out: {result['closed']}/{args.cases} cases x {SYSTEMS} systems closed in "
        f"{result['seconds']}s ({result['seconds'] / 60:.1f} min); "
        f"{result['commands_issued']} commands issued at {result['commands_per_s']}/s, "
        f"{result['acks_reconciled']} acknowledgements reconciled at "
        f"{result['acks_reconciled_per_s']}/s; erasure peak RSS "
        f"{result['erasure_peak_rss_mib']} MiB (at 10/50/100%: {result['rss_mib_at_10pct']}/"
        f"{result['rss_mib_at_50pct']}/{result['rss_mib_at_100pct']} MiB); "
        f"gauge reads cut short: {result['gauge_reads_cut_short']}"
    )
    if args.ceiling:
        result["ratio_to_ceiling"] = round(result["commands_per_s"] / args.ceiling, 3)
    emit(result)
    return result


if __name__ == "__main__":
    main()
