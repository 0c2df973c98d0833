"""Fan-out through erasure's batch use cases, driven directly with batches of B events.

What the service does per poll once the consumer hands it real batches (today
``Consumer.batches`` still delivers one record per call, so ``bench.fanout`` measures
batches of one). Same code path after the consumer: typed events -> ``open_work`` /
``record_results`` -> one ``get_many``, one ``save_many``, one ``relay_saved`` per batch,
on the real servers (a private embedded stack: MongoDB wire server, Kafka broker).
N cases x 10 systems: work items in batches of B, then every system's answer, interleaved
across cases as keyed partitions deliver them, in batches of B. Prints commands/s,
acknowledgements/s and this process's peak RSS (the use cases and the driver).

    python -m bench.fanout_batches --cases 10000 --batch 500
"""

from __future__ import annotations

import argparse
import asyncio
import os
import resource
import time
import uuid
from collections.abc import Iterator
from contextlib import AbstractContextManager, nullcontext
from typing import Any

from faststream.kafka import KafkaBroker
from opentelemetry.trace import INVALID_SPAN, Span

from bench.common import Stack, bench_registry, embedded_stack, emit, machine, rss_mib
from services.erasure.connector import HttpConnector
from services.erasure.mongo import INDEXES, mongo_repositories
from services.erasure.planning import WorkRequested
from services.erasure.registry import load_registry
from services.erasure.settings import ErasureSettings
from services.erasure.usecases import Erasure
from shared.clock import SystemClock
from shared.events.inbound import ErasureResult
from shared.kafka_admin import ensure_topics
from shared.mongo import create_client, service_database
from shared.pseudonyms import Pseudonymiser
from shared.settings import Settings
from shared.topics import all_topics

SYSTEMS = 10


def no_span(_: str) -> AbstractContextManager[Span]:
    return nullcontext(INVALID_SPAN)


def works(run: str, cases: range) -> list[tuple[str, WorkRequested]]:
    return [
        (
            f"work-{run}-{i}",
            WorkRequested.model_validate(
                {
                    "case_id": f"req:B{run}-{i}",
                    "origin": "request",
                    "request_id": f"B{run}-{i}",
                    "subject": {
                        "kind": "customer",
                        "identifiers": {"email": f"u{run}{i}@example.org", "customer_id": f"C{i}"},
                    },
                    "categories": [{"category": "customer", "action": "erase", "ground": "x"}],
                    "due_by": "2027-04-05",
                }
            ),
        )
        for i in cases
    ]


def answer(case_id: str, system: int) -> dict[str, str]:
    return {"command_id": f"{case_id}:sys{system:02d}", "system": f"sys{system:02d}",
            "outcome": "erased"}  # fmt: skip


def answers(run: str, cases: int, batch: int) -> Iterator[list[tuple[str, ErasureResult]]]:
    """Every system's answer, system by system (a batch spans many cases), B at a time."""
    keys = [(i, s) for s in range(SYSTEMS) for i in range(cases)]
    for n in range(0, len(keys), batch):
        yield [
            (f"res-{run}-{i}-{s}", ErasureResult.model_validate(answer(f"req:B{run}-{i}", s)))
            for i, s in keys[n : n + batch]
        ]


async def drive(st: Stack, cases: int, batch: int) -> dict[str, Any]:
    await ensure_topics(st.bootstrap, all_topics())
    settings = Settings(
        kafka_bootstrap_servers=st.bootstrap,
        mongodb_uri=st.mongodb_uri,
        gardien_db_prefix=f"fb{uuid.uuid4().hex[:6]}_",
    )
    client = create_client(settings)
    db = service_database(client, settings, "erasure")
    await INDEXES.apply(db)
    broker = KafkaBroker(st.bootstrap)
    await broker.start()
    home = st.home
    assert home is not None
    registry = load_registry(bench_registry(home, SYSTEMS))
    pseudonyms = Pseudonymiser(uuid.uuid4().bytes * 2)
    erasure = Erasure(
        mongo_repositories(db), broker, registry, ErasureSettings(), SystemClock(),
        HttpConnector(b"bench-secret-bench-secret", 5), pseudonyms.refs, no_span,
    )  # fmt: skip
    run, rss = uuid.uuid4().hex[:5], [rss_mib(os.getpid())]
    try:
        t0 = time.perf_counter()
        for n in range(0, cases, batch):
            await erasure.open_work(works(run, range(n, min(n + batch, cases))))
        opened = time.perf_counter() - t0
        t1 = time.perf_counter()
        for n, results in enumerate(answers(run, cases, batch)):
            refused = await erasure.record_results(results)
            assert not refused, refused
            if n % 10 == 0:
                rss.append(rss_mib(os.getpid()))
        acked = time.perf_counter() - t1
        found = db["cases"].find({"state": "closed"}, {"_id": 1})
        closed = len([d async for d in found])
    finally:
        await broker.stop()
        await client.close()
    return {"opened_s": opened, "acked_s": acked, "closed": closed, "rss": rss}


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--cases", type=int, default=10_000)
    parser.add_argument("--batch", type=int, default=500)
    args = parser.parse_args(argv)
    print(f"fan-out in batches — {machine()}", flush=True)
    with embedded_stack() as st:
        got = asyncio.run(drive(st, args.cases, args.batch))
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    commands, acks = args.cases * SYSTEMS, args.cases * SYSTEMS
    total = got["opened_s"] + got["acked_s"]
    result = {
        "benchmark": "fanout_batches",
        "cases": args.cases,
        "systems": SYSTEMS,
        "batch": args.batch,
        "closed": got["closed"],
        "seconds": round(total, 1),
        "commands_per_s": round(commands / got["opened_s"], 1),
        "acks_reconciled_per_s": round(acks / got["acked_s"], 1),
        "process_peak_rss_mib": round(peak, 1),
        "rss_mib_start_mid_end": [round(got["rss"][i], 1) for i in (0, len(got["rss"]) // 2, -1)],
    }
    print(
        f"fan-out in batches of {args.batch}: {got['closed']}/{args.cases} cases x {SYSTEMS} "
        f"closed in {total:.0f}s ({total / 60:.1f} min); {commands} commands issued at "
        f"{result['commands_per_s']}/s, {acks} acknowledgements at "
        f"{result['acks_reconciled_per_s']}/s; peak RSS {peak:.0f} MiB; RSS start/mid/end "
        f"{result['rss_mib_start_mid_end']} MiB"
    )
    emit(result)
    return result


if __name__ == "__main__":
    main()
