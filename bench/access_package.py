"""Access packages on the embedded MongoDB: packages/s for many subjects, memory for a huge one.

A private embedded stack; the erasure service's real stores (``MongoBlobs`` under the
service's subject keys, ``MongoPackages``) and the ``Packages`` use case, driven directly
(events are counted by a broker stand-in: Kafka is not what is measured here).

1. N subjects x 4 systems (the reference registry's crm, newsletter, billing, vendor), each
   system's upload a few dozen records: the uploads are written first, then every package is
   built and downloaded (read to the end) C at a time. Prints packages/s.
2. One subject whose crm answer is M MB of JSON Lines: upload streamed in, package built and
   downloaded. Prints the resident memory (VmRSS) sampled while it runs, as a series (flat
   means the bytes are streamed, not held) and the tracemalloc peak of a separate, smaller
   run (tracemalloc slows Python several times).

    python -m bench.access_package                       # 1,000 subjects, 100 MB
    python -m bench.access_package --subjects 200 --big-mb 20
"""

from __future__ import annotations

import argparse
import asyncio
import json
import threading
import time
import tracemalloc
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any, cast

from faststream.kafka import KafkaBroker

from bench.common import REPO, Progress, embedded_stack, emit, machine, rss_mib
from services.erasure.assembly import Sources
from services.erasure.package_repo import PACKAGE_INDEXES, MongoPackages
from services.erasure.package_store import Packages
from services.erasure.packages import PackageOrder, SystemAnswer
from services.erasure.registry import load_registry
from services.erasure.settings import ErasureSettings
from shared.blobs import BLOB_INDEXES, MongoBlobs
from shared.mongo import IndexPlan, create_client, service_database
from shared.rules import default_policy
from shared.settings import Settings

NOW = datetime(2027, 3, 20, 10, tzinfo=UTC)
SYSTEMS = {"crm": "profile", "newsletter": "marketing", "billing": "payment", "vendor": "behaviour"}
MB = 1024 * 1024


class CountingBroker:
    """Stands in for the Kafka broker: counts what would be published."""

    def __init__(self) -> None:
        self.sent = 0

    async def publish(self, body: bytes, *, topic: str, key: bytes, headers: Any = None) -> None:
        self.sent += 1


def record(system: str, subject: int, n: int) -> dict[str, Any]:
    """One plausible record of a system (nested, so the CSV has dotted columns)."""
    return {
        "id": f"{system}-{subject}-{n}",
        "category": SYSTEMS[system],
        "created_at": "2026-11-02T10:00:00Z",
        "customer": {"id": f"C{subject}", "email": f"u{subject}@example.org"},
        "address": {"street": f"{n} rue des Lilas", "city": "Lyon", "zip": "69003"},
        "amount": n * 1.5,
        "tags": ["a", "b"],
        "note": "x" * 120,
    }


async def one_piece(data: bytes) -> AsyncIterator[bytes]:
    yield data


async def big_upload(system: str, size: int) -> AsyncIterator[bytes]:
    """``size`` bytes of JSON Lines, generated as they are sent (never held whole)."""
    sent, n, pending = 0, 0, []
    while sent < size:
        line = (json.dumps(record(system, 0, n)) + "\n").encode()
        pending.append(line)
        sent += len(line)
        n += 1
        if len(pending) >= 256:
            yield b"".join(pending)
            pending = []
    if pending:
        yield b"".join(pending)


def order(rid: str, kid: str, content_type: str = "application/json") -> PackageOrder:
    answers = [
        SystemAnswer(s, "answered", NOW, None, f"upload:{rid}:{s}", content_type, [c])
        for s, c in SYSTEMS.items()
    ]
    return PackageOrder(rid, "access", kid, answers, NOW)


async def drain(stream: AsyncIterator[bytes]) -> int:
    return sum([len(piece) async for piece in stream])


@contextmanager
def rss_sampler(interval: float = 0.2) -> Iterator[list[float]]:
    """This process's RSS in MiB, sampled every ``interval`` seconds while the block runs."""
    import os

    samples: list[float] = []
    stop = threading.Event()

    def run() -> None:
        while not stop.is_set():
            samples.append(rss_mib(os.getpid()))
            stop.wait(interval)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    try:
        yield samples
    finally:
        stop.set()
        thread.join()


def packages_on(db: Any) -> tuple[Packages, CountingBroker]:
    registry = load_registry(REPO / "examples" / "connected_systems" / "registry.yaml")
    blobs = MongoBlobs(db)
    broker = CountingBroker()
    sources = Sources(blobs, default_policy(), registry)
    packages = Packages(MongoPackages(db), sources, cast(KafkaBroker, broker), ErasureSettings())
    return packages, broker


async def many(
    packages: Packages, run: str, subjects: int, records: int, at_once: int
) -> dict[str, Any]:
    """Phase 1: uploads written, then packages built and downloaded ``at_once`` at a time."""
    blobs, gate = packages.sources.blobs, asyncio.Semaphore(at_once)
    progress = Progress("uploads", subjects)
    for i in range(subjects):
        rid, kid = f"{run}-{i}", f"case:acc:{run}-{i}"
        for s in SYSTEMS:
            body = json.dumps([record(s, i, n) for n in range(records)]).encode()
            await blobs.write(f"upload:{rid}:{s}", kid, one_piece(body), now=NOW)
        progress.update(i + 1)
    progress, done, size = Progress("packages", subjects), [0], [0]

    async def one(i: int) -> None:
        async with gate:
            rid = f"{run}-{i}"
            await packages.build(order(rid, f"case:acc:{rid}"), NOW)
            _, stream = await packages.open(rid, "bench", NOW)
            size[0] += await drain(stream)
            done[0] += 1
            progress.update(done[0])

    started = time.perf_counter()
    await asyncio.gather(*(one(i) for i in range(subjects)))
    elapsed = time.perf_counter() - started
    return {
        "subjects": subjects,
        "systems": len(SYSTEMS),
        "records_per_system": records,
        "packages_per_s": round(subjects / elapsed, 1),
        "mean_package_kib": round(size[0] / subjects / 1024, 1),
        "seconds": round(elapsed, 1),
    }


async def huge(packages: Packages, run: str, size: int) -> dict[str, Any]:
    """Phase 2: one subject whose crm answer is ``size`` bytes; RSS sampled throughout."""
    rid, kid = f"{run}-big", f"case:acc:{run}-big"
    blobs, marks = packages.sources.blobs, {}
    with rss_sampler() as samples:
        marks["start"] = samples[-1] if samples else rss_mib(__import__("os").getpid())
        t0 = time.perf_counter()
        await blobs.write(f"upload:{rid}:crm", kid, big_upload("crm", size), now=NOW)
        for s in list(SYSTEMS)[1:]:
            await blobs.write(f"upload:{rid}:{s}", kid, one_piece(b""), now=NOW)
        t1 = time.perf_counter()
        built = await packages.build(order(rid, kid, "application/x-ndjson"), NOW)
        t2 = time.perf_counter()
        _, stream = await packages.open(rid, "bench", NOW)
        downloaded = await drain(stream)
        t3 = time.perf_counter()
    return {
        "upload_mb": round(size / MB, 1),
        "package_mb": round(built.size / MB, 1),
        "downloaded_mb": round(downloaded / MB, 1),
        "upload_s": round(t1 - t0, 1),
        "build_s": round(t2 - t1, 1),
        "download_s": round(t3 - t2, 1),
        "rss_start_mib": round(marks["start"], 1),
        "rss_peak_mib": round(max(samples), 1),
        "rss_series_mib": [round(v) for v in samples[:: max(1, len(samples) // 20)]],
    }


async def traced(packages: Packages, run: str, size: int) -> dict[str, Any]:
    """The same flow under tracemalloc (smaller: it slows Python several times)."""
    tracemalloc.start()
    try:
        rid, kid = f"{run}-traced", f"case:acc:{run}-traced"
        blobs = packages.sources.blobs
        await blobs.write(f"upload:{rid}:crm", kid, big_upload("crm", size), now=NOW)
        for s in list(SYSTEMS)[1:]:
            await blobs.write(f"upload:{rid}:{s}", kid, one_piece(b""), now=NOW)
        await packages.build(order(rid, kid, "application/x-ndjson"), NOW)
        _, stream = await packages.open(rid, "bench", NOW)
        await drain(stream)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    return {"traced_upload_mb": round(size / MB, 1), "tracemalloc_peak_mib": round(peak / MB, 1)}


async def drive(uri: str, args: argparse.Namespace) -> dict[str, Any]:
    settings = Settings(mongodb_uri=uri, gardien_db_prefix=f"b{uuid.uuid4().hex[:8]}_")
    client = create_client(settings)
    try:
        db = service_database(client, settings, "erasure")
        await IndexPlan({**BLOB_INDEXES, **PACKAGE_INDEXES}).apply(db)
        packages, broker = packages_on(db)
        run = uuid.uuid4().hex[:6]
        result: dict[str, Any] = {
            "many": await many(packages, run, args.subjects, args.records, args.at_once)
        }
        result["huge"] = await huge(packages, run, args.big_mb * MB)
        result["huge"] |= await traced(packages, run, args.traced_mb * MB)
        result["events"] = broker.sent
        return result
    finally:
        await client.close()


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--subjects", type=int, default=1000)
    parser.add_argument("--records", type=int, default=25, help="records per system upload")
    parser.add_argument("--at-once", type=int, default=8, help="packages built concurrently")
    parser.add_argument("--big-mb", type=int, default=100)
    parser.add_argument("--traced-mb", type=int, default=10)
    args = parser.parse_args(argv)
    print(f"access packages — {machine()}", flush=True)
    with embedded_stack() as st:
        result = asyncio.run(drive(st.mongodb_uri, args))
    m, h = result["many"], result["huge"]
    print(
        f"{m['subjects']:,} subjects x {m['systems']} systems ({m['records_per_system']} records"
        f" each): {m['packages_per_s']} packages/s built and downloaded"
        f" ({m['mean_package_kib']} KiB each, {m['seconds']} s)"
    )
    print(
        f"one subject, {h['upload_mb']} MB of records: upload {h['upload_s']} s, build"
        f" {h['build_s']} s, download {h['download_s']} s; package {h['package_mb']} MB"
    )
    print(
        f"  RSS {h['rss_start_mib']} MiB at start, peak {h['rss_peak_mib']} MiB;"
        f" series {h['rss_series_mib']}"
    )
    print(f"  tracemalloc peak {h['tracemalloc_peak_mib']} MiB for {h['traced_upload_mb']} MB")
    emit({"bench": "access_package", **result})
    return result


if __name__ == "__main__":
    main()
