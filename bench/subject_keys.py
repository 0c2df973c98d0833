"""Subject keys of a batch: one key at a time (16 in flight) against ``prepare``/``destroy_many``.

Both shapes on the same private nx-27017 server, in turns, in one run: B new keys created and
a value sealed under each, then the B keys destroyed. The per-key shape is the single-key API
(``seal``, ``destroy``) as erasure used it per case before its batches prepared their keys.
The collection holds ``--existing`` keys first (a service's keys pile up as tombstones).

    python -m bench.subject_keys --batch 250 --rounds 5
"""

from __future__ import annotations

import argparse
import asyncio
import time
import uuid
from collections.abc import Awaitable
from datetime import UTC, datetime
from typing import Any

from pymongo import AsyncMongoClient
from pymongo.asynchronous.database import AsyncDatabase

from bench.common import embedded_stack, emit, machine, median
from shared.subject_vault import SubjectVault

IN_FLIGHT = 16
NOW = datetime(2027, 3, 5, 12, tzinfo=UTC)
Doc = dict[str, Any]


async def in_turns(calls: list[Awaitable[Any]]) -> None:
    for n in range(0, len(calls), IN_FLIGHT):
        await asyncio.gather(*calls[n : n + IN_FLIGHT])


async def per_key(db: AsyncDatabase[Doc], kids: list[str]) -> tuple[float, float]:
    vault, start = SubjectVault(db), time.perf_counter()
    await in_turns([vault.seal(k, {"email": "x"}, "subject", NOW) for k in kids])
    sealed = time.perf_counter()
    await in_turns([SubjectVault(db).destroy(k, NOW) for k in kids])
    return sealed - start, time.perf_counter() - sealed


async def batched(db: AsyncDatabase[Doc], kids: list[str]) -> tuple[float, float]:
    vault, start = SubjectVault(db), time.perf_counter()
    await vault.prepare(kids, NOW)
    for kid in kids:
        await vault.seal(kid, {"email": "x"}, "subject", NOW)
    sealed = time.perf_counter()
    await SubjectVault(db).destroy_many(kids, NOW)
    return sealed - start, time.perf_counter() - sealed


async def run(uri: str, batch: int, rounds: int, existing: int) -> dict[str, object]:
    client: AsyncMongoClient[Doc] = AsyncMongoClient(uri, tz_aware=True)
    db = client["bench_keys"]
    old = [
        {"_id": f"old-{i}", "key": None, "destroyed_at": NOW.isoformat()} for i in range(existing)
    ]
    if old:
        await db["subject_keys"].insert_many(old)
    times: dict[str, list[tuple[float, float]]] = {"per_key": [], "batched": []}
    for _ in range(rounds):
        for name, shape in (("per_key", per_key), ("batched", batched)):
            times[name].append(await shape(db, [f"case:{uuid.uuid4().hex}" for _ in range(batch)]))
    await client.close()
    result: dict[str, object] = {"benchmark": "subject_keys", "batch": batch, "rounds": rounds}
    for name, pairs in times.items():
        result[f"{name}_create_seal_ms"] = round(1000 * median([p[0] for p in pairs]), 1)
        result[f"{name}_destroy_ms"] = round(1000 * median([p[1] for p in pairs]), 1)
    return result


def main(argv: list[str] | None = None) -> dict[str, object]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=250)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--existing", type=int, default=5000)
    args = parser.parse_args(argv)
    print(f"subject keys in batches of {args.batch} — {machine()}")
    with embedded_stack() as stack:
        result = asyncio.run(run(stack.mongodb_uri, args.batch, args.rounds, args.existing))
    for name in ("per_key", "batched"):
        print(
            f"{name}: create+seal {result[f'{name}_create_seal_ms']} ms, "
            f"destroy {result[f'{name}_destroy_ms']} ms (median of {args.rounds})"
        )
    emit(result)
    return result


if __name__ == "__main__":
    main()
