"""Audit: chain verification rate, query p99 by subject and by request, export rate.

Records are generated in the real record shape (services/audit/usecases.py ``_entry`` then
``_append``: chain, seq, prev_hash, chain_seq, hash over the canonical form) on six chains,
inserted directly in bulk (``insert_many``) into a fresh audit database with the service's
own indexes, then:

* verification, in memory (``services.audit.chain.verify``, the walk `gardien audit verify`
  runs) in one process, and across chains with one process per core;
* verification end to end through ``Verifier`` (reads from MongoDB) on a sample;
* queries as ``GET /v1/audit/events`` builds them (subject index, the records of the
  aggregates it names that name the subject, then ``_id $in``; ``refs.request_id``),
  sorted by ``recorded_at``, limit 101): p50/p99 over random subjects and requests;
* export: records read in ``recorded_at`` order and rendered as CSV rows (views.csv_row);
* appends through the real consumer first (``bench.audit_appends``): records/s, and the
  p99 from an event to its own record at half that rate.

    python -m bench.audit --records 1000000
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import io
import multiprocessing as mp
import random
import time
from datetime import UTC, datetime, timedelta
from typing import Any

from bench import audit_appends
from bench.common import Progress, embedded_stack, emit, machine, median, percentile
from services.audit import chain as chains
from services.audit.mongo import INDEXES
from services.audit.repository import about, chain_seq, index_entries, lookups

CHAINS = [f"gardien.requests.v1/{p}" for p in range(6)]
TYPES = [
    "gdpr.request.received",
    "gardien.request.accepted",
    "gardien.request.decided",
    "gardien.deadline.scheduled",
    "gardien.erasure.case.opened",
]
PER_REQUEST = 5  # records per request id, as a request's life leaves several


def make_records(n: int) -> list[dict[str, Any]]:
    """``n`` chained records in the stored shape, round-robin over six chains."""
    start = datetime(2027, 3, 5, 12, 0, tzinfo=UTC)
    heads = {c: (0, chains.GENESIS) for c in CHAINS}
    out = []
    progress = Progress("records generated", n)
    for i in range(n):
        chain = CHAINS[i % len(CHAINS)]
        req = i // PER_REQUEST
        seq, prev = heads[chain]
        topic, part = chain.split("/")
        rec = {
            "_id": f"{topic}|ev-{i}",
            "kind": "event",
            "topic": topic,
            "partition": int(part),
            "offset": seq,
            "recorded_at": start + timedelta(milliseconds=i),
            "event_id": f"ev-{i}",
            "type": TYPES[i % PER_REQUEST],
            "source": "bench",
            "event_time": "2027-03-05T15:45:00+00:00",
            "refs": {"request_id": f"REQ-{req:08d}"},
            "subject_refs": [f"sr-{req:08d}a", f"sr-{req:08d}b"],
            "data": {"request_id": f"REQ-{req:08d}", "right": "access", "channel": "web_form"},
            "sealed": [],
            "chain": chain,
            "seq": seq + 1,
            "prev_hash": prev,
            "chain_seq": chain_seq(chain, seq + 1),
        }
        rec["hash"] = chains.record_hash(rec)
        heads[chain] = (seq + 1, rec["hash"])
        out.append(rec)
        if i % 10_000 == 0:
            progress.update(i)
    progress.update(n)
    return out


def subject_ids(db: Any, ref: str) -> list[str]:
    """The ids of a subject's records, as ``MongoRecords.records_of_subject`` finds them."""
    ids, aggregates = lookups(list(db.subject_index.find({"ref": ref})))
    for field, values in sorted(aggregates.items()):
        for value in sorted(values):
            ids |= about(ref, list(db.records.find({f"refs.{field}": value}, {"subject_refs": 1})))
    return sorted(ids)


_BY_CHAIN: dict[str, list[dict[str, Any]]] = {}


def _verify_chain(name: str) -> tuple[int, bool]:
    seq, _, problem = chains.verify(name, _BY_CHAIN[name])
    return seq, problem is None


def verify_in_memory(records: list[dict[str, Any]], processes: int) -> tuple[float, bool]:
    """Records/s of ``chains.verify``; with ``processes`` > 1 the chains are split across
    forked workers (the records are inherited, not pickled; start-up is in the time)."""
    _BY_CHAIN.clear()
    for c in CHAINS:
        _BY_CHAIN[c] = []
    for r in records:
        _BY_CHAIN[r["chain"]].append(r)
    started = time.perf_counter()
    if processes <= 1:
        results = [_verify_chain(name) for name in CHAINS]
    else:
        with mp.get_context("fork").Pool(processes) as pool:
            results = pool.map(_verify_chain, CHAINS, chunksize=1)
    elapsed = time.perf_counter() - started
    ok = all(good for _, good in results) and sum(s for s, _ in results) == len(records)
    return len(records) / elapsed, ok


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=1_000_000)
    parser.add_argument("--queries", type=int, default=300)
    parser.add_argument(
        "--verify-db-records",
        type=int,
        default=60_000,
        help="records verified end to end through Verifier (MongoDB reads)",
    )
    parser.add_argument("--export-records", type=int, default=50_000)
    parser.add_argument(
        "--appends", type=int, default=20_000, help="records through the real consumer (0: skip)"
    )
    args = parser.parse_args(argv)
    print(f"audit benchmark — {machine()}", flush=True)
    appends = audit_appends.main(["--records", str(args.appends)]) if args.appends else {}
    records = make_records(args.records)

    single = [verify_in_memory(records, 1) for _ in range(3)]
    multi = [verify_in_memory(records, mp.cpu_count() or 2) for _ in range(3)]
    rate_1 = median([r for r, _ in single])
    rate_n = median([r for r, _ in multi])
    assert all(ok for _, ok in single + multi), "generated chains must verify"
    print(
        f"verify in memory: {rate_1:,.0f} records/s (1 process), {rate_n:,.0f} records/s "
        f"({mp.cpu_count()} processes, one per chain group) — target 100,000/s",
        flush=True,
    )

    from pymongo import InsertOne, MongoClient

    with embedded_stack() as st:
        db = MongoClient(st.mongodb_uri, tz_aware=True)["bench_audit"]
        for name, models in INDEXES.indexes.items():
            db[name].create_indexes(models)
        progress = Progress("records inserted", args.records)
        started = time.monotonic()
        batch, indexed = 5000, set[str]()
        for i in range(0, args.records, batch):
            chunk = records[i : i + batch]
            db.records.bulk_write([InsertOne(r) for r in chunk], ordered=False)
            # The scalar subject index the writer keeps (usecases.Auditor._write_index): the
            # entries of the chunk it has not written yet.
            fresh = [e for e in index_entries(chunk) if e["_id"] not in indexed]
            indexed.update(e["_id"] for e in fresh)
            if fresh:
                db.subject_index.insert_many(fresh, ordered=False)
            progress.update(min(i + batch, args.records))
        insert_rate = args.records / (time.monotonic() - started)
        heads = {}
        for r in records:
            heads[r["chain"]] = (r["seq"], r["hash"])
        db.chain_heads.insert_many([{"_id": c, "seq": s, "hash": h} for c, (s, h) in heads.items()])
        print(f"inserted {args.records:,} records at {insert_rate:,.0f}/s", flush=True)

        rng = random.Random(7)
        requests = args.records // PER_REQUEST
        timings: dict[str, list[float]] = {"subject": [], "request": []}
        sort = [("recorded_at", 1), ("_id", 1)]
        progress = Progress("queries", 2 * args.queries)
        for q in range(args.queries):
            req = rng.randrange(requests)
            for kind in ("subject", "request"):
                t = time.perf_counter()
                if kind == "subject":  # as services/audit/http.py: side index, then _id
                    query: dict[str, Any] = {"_id": {"$in": subject_ids(db, f"sr-{req:08d}a")}}
                else:
                    query = {"refs.request_id": f"REQ-{req:08d}"}
                found = list(db.records.find(query).sort(sort).limit(101))
                timings[kind].append(1000 * (time.perf_counter() - t))
                assert found, f"no record for {kind} {req}"
            progress.update(2 * (q + 1))
        q_sub = (percentile(timings["subject"], 50), percentile(timings["subject"], 99))
        q_req = (percentile(timings["request"], 50), percentile(timings["request"], 99))
        print(
            f"query by subject at {args.records:,} records: p50 {q_sub[0]:.1f} ms, "
            f"p99 {q_sub[1]:.1f} ms; by request: p50 {q_req[0]:.1f} ms, p99 {q_req[1]:.1f} ms "
            f"(target p99 < 50 ms)",
            flush=True,
        )

        # Export: the CSV rows GET /audit/export streams, in recorded_at order.
        from services.audit.views import csv_row, view

        started = time.monotonic()
        out = io.StringIO()
        writer = csv.writer(out)
        exported = 0
        for doc in db.records.find({}).sort(sort).limit(args.export_records):
            writer.writerow(csv_row(view(doc, {})))
            exported += 1
        export_rate = exported / (time.monotonic() - started)
        print(f"export: {exported:,} records as CSV at {export_rate:,.0f} records/s", flush=True)

        # End to end: Verifier reading spans from MongoDB (a prefix of each chain).
        from pymongo import AsyncMongoClient

        from services.audit.mongo import mongo_repositories
        from services.audit.verification import Verifier

        per_chain = max(args.verify_db_records // len(CHAINS), 1)
        start = {}

        async def verify_db() -> tuple[float, int, int]:
            client = AsyncMongoClient(st.mongodb_uri, tz_aware=True)
            repos = mongo_repositories(client["bench_audit"])
            # Verify the last ``per_chain`` records of every chain, from a saved position.
            for c, (s, _) in heads.items():
                first = max(s - per_chain, 0)
                prev = (
                    next(r for r in records if r["chain"] == c and r["seq"] == first)["hash"]
                    if first
                    else chains.GENESIS
                )
                start[c] = (first, prev)
            t = time.monotonic()
            report = await Verifier(repos, None).run(start)
            elapsed = time.monotonic() - t
            await client.close()
            return report.records / elapsed, report.records, len(report.problems)

        db_rate, db_count, problems = asyncio.run(verify_db())
        assert problems == 0
        print(
            f"verify end to end (Verifier, MongoDB reads): {db_count:,} records at "
            f"{db_rate:,.0f} records/s",
            flush=True,
        )

    result = {
        "benchmark": "audit",
        "records": args.records,
        "verify_records_per_s_1proc": round(rate_1),
        "verify_records_per_s_nproc": round(rate_n),
        "verify_db_records_per_s": round(db_rate),
        "insert_records_per_s": round(insert_rate),
        "query_subject_ms": {"p50": round(q_sub[0], 2), "p99": round(q_sub[1], 2)},
        "query_request_ms": {"p50": round(q_req[0], 2), "p99": round(q_req[1], 2)},
        "export_records_per_s": round(export_rate),
        "appends": appends,
    }
    emit(result)
    return result


if __name__ == "__main__":
    main()
