"""What every benchmark needs: the machine, percentiles, progress, a private embedded stack."""

from __future__ import annotations

import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gardien import stack


def machine() -> str:
    """Cores, memory and Python of this machine, for every figure we print."""
    mem_kb = 0
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                mem_kb = int(line.split()[1])
    except OSError:
        pass
    return (
        f"{os.cpu_count()} cores, {mem_kb / 1024 / 1024:.1f} GiB, "
        f"Python {platform.python_version()}, {platform.machine()}, "
        f"load {os.getloadavg()[0]:.1f}"
    )


def access_request(rid: str, tag: str) -> dict[str, object]:
    """The data of one access request with identifiers of its own (``tag`` makes them unique)."""
    return {
        "request_id": rid,
        "right": "access",
        "received_at": "2027-03-05T16:45:00+01:00",
        "channel": "web_form",
        "subject": {
            "kind": "customer",
            "identifiers": {"email": f"u{tag}@example.org", "customer_id": f"C{tag}"},
        },
    }


def percentile(values: list[float], p: float) -> float:
    """The p-th percentile (0-100) by nearest rank."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    rank = max(0, min(len(ordered) - 1, round(p / 100 * len(ordered) + 0.5) - 1))
    return ordered[rank]


def median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


class Progress:
    """A one-line progress display on stderr, refreshed at most 4 times a second."""

    def __init__(self, label: str, total: int) -> None:
        self.label, self.total, self.done, self._shown = label, total, 0, 0.0
        self.started = time.monotonic()

    def update(self, done: int) -> None:
        self.done = done
        now = time.monotonic()
        if now - self._shown >= 0.25 or done >= self.total:
            rate = done / max(now - self.started, 1e-9)
            sys.stderr.write(f"\r  {self.label}: {done}/{self.total} ({rate:,.0f}/s)   ")
            sys.stderr.flush()
            self._shown = now
        if done >= self.total:
            sys.stderr.write("\n")


@dataclass
class Stack:
    bootstrap: str
    mongodb_uri: str
    broker_pid: int = 0
    mongo_pid: int = 0
    home: Path | None = None


@contextmanager
def embedded_stack() -> Iterator[Stack]:
    """A fresh embedded broker and MongoDB server on free ports, stopped afterwards."""
    home = Path(tempfile.mkdtemp(prefix="gardien-bench-"))
    kport, mport = stack.free_port(), stack.free_port()
    broker = stack.start_broker(home, kport)
    mongo = stack.start_mongo(home, mport)
    try:
        yield Stack(
            f"127.0.0.1:{kport}", f"mongodb://127.0.0.1:{mport}", broker.pid, mongo.pid, home
        )
    finally:
        stack.terminate_all([broker, mongo])


def cpu_seconds(pids: list[int]) -> float:
    """User+system CPU seconds used so far by the given processes (Linux /proc)."""
    total = 0.0
    tick = os.sysconf("SC_CLK_TCK")
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            total += (int(fields[11]) + int(fields[12])) / tick
        except (OSError, IndexError, ValueError):
            continue
    return total


# ---- running the services as deployed: `gardien up` in a subprocess ----------------------

REPO = Path(__file__).resolve().parents[1]

BENCH_REGISTRY_HEAD = """\
category_aliases:
  customer: [profile, contact]
  prospect: [profile, contact]
systems:
"""


def bench_registry(home: Path, systems: int) -> Path:
    """A registry of ``systems`` kafka-transport systems holding customer data."""
    lines = [BENCH_REGISTRY_HEAD]
    for i in range(systems):
        lines.append(
            f"  - id: sys{i:02d}\n"
            f"    description: benchmark system {i}\n"
            "    categories:\n      profile: {action: erase, activity: customers}\n"
            "      contact: {action: erase, activity: customers}\n"
            "    identifiers: [email, customer_id]\n"
            "    transport: {kind: kafka}\n"
            "    ack_timeout_seconds: 86400\n"
            "    retry: {initial_seconds: 3600, max_seconds: 7200}\n"
        )
    path = home / "bench-registry.yaml"
    path.write_text("".join(lines))
    return path


@dataclass
class Up:
    """A running `gardien up` (services as separate processes) and how to reach it."""

    proc: subprocess.Popen[bytes]
    home: Path
    api: str
    prefix: str
    bootstrap: str
    mongodb_uri: str

    def service_pids(self) -> dict[str, int]:
        import json

        state = json.loads((self.home / "up.json").read_text())
        return {k: int(v) for k, v in state["children"].items() if k != "api"}

    def db_name(self, service: str) -> str:
        return f"{self.prefix}{service}"


@contextmanager
def gardien_up(
    st: Stack,
    *,
    registry_systems: int = 2,
    timeout: float = 90,
    replicas: int = 1,
    **extra_env: str,
) -> Iterator[Up]:
    """`gardien up` against ``st`` as tests/e2e/conftest.py starts it; stopped afterwards."""
    from tests.upctl import free_base, start_up, stop_up, up_env

    home = Path(tempfile.mkdtemp(prefix="gardien-bench-up-"))
    env = up_env(
        st.bootstrap,
        st.mongodb_uri,
        GARDIEN_ERASURE_REGISTRY_PATH=str(bench_registry(home, registry_systems)),
        GARDIEN_LOG_LEVEL="WARNING",
        **extra_env,
    )
    env.pop("OTEL_EXPORTER_OTLP_ENDPOINT", None)
    extra = ["--replicas", str(replicas)] if replicas != 1 else None
    base = free_base(replicas)
    proc, api = start_up(home, env, timeout, extra, base_port=base)
    try:
        yield Up(proc, home, api, env["GARDIEN_DB_PREFIX"], st.bootstrap, st.mongodb_uri)
    finally:
        stop_up(proc)


def rss_mib(pid: int) -> float:
    """Resident memory of a process in MiB (Linux /proc)."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return float("nan")


def emit(result: dict[str, object]) -> None:
    """Print a benchmark's machine-readable result line (run_all collects these)."""
    import json

    result = {**result, "machine": machine(), "load_avg_1m": os.getloadavg()[0]}
    print("BENCH-RESULT " + json.dumps(result, default=str), flush=True)


class AuditTail:
    """Every audit record stored after it started, each read once (no look-back re-reads).

    Per chain, the records up to its head's position: a head moves only after the records
    below it are stored, so reading ``chain_seq`` ranges (the unique index) from the last
    position seen up to the head misses none and repeats none, whatever the order in which
    batches of different chains land. Polling by ``recorded_at`` instead must look back
    (a record's instant is its batch's start) and reads each record several times, load
    that the benchmark would add to the very server it measures.
    """

    def __init__(self, db: Any, fields: dict[str, int]) -> None:
        self.db, self.fields = db, fields
        self.seen = {str(h["_id"]): int(h["seq"]) for h in db.chain_heads.find()}

    def new(self) -> list[dict[str, Any]]:
        """The records stored since the last call, chain by chain, in position order."""
        out: list[dict[str, Any]] = []
        for head in self.db.chain_heads.find():
            chain, seq = str(head["_id"]), int(head["seq"])
            last = self.seen.get(chain, 0)
            if seq <= last:
                continue
            span = {"$gt": f"{chain}#{last:012d}", "$lte": f"{chain}#{seq:012d}"}
            out.extend(self.db.records.find({"chain_seq": span}, self.fields))
            self.seen[chain] = seq
        return out
