"""Scenario 2, MongoDB server restart: SIGKILL nx-27017 twice mid-run; the launcher restarts it
on the same data directory, no acknowledged write is lost, the services recover alone.

    python -m tests.chaos.mongo_restart     # CHAOS_MONGO_EVENTS (default 450)
"""

from __future__ import annotations

import asyncio
import os
import sys
import time
from typing import Any

from gardien import stack
from tests.chaos.harness import (
    SERVICES,
    FakeSystems,
    Up,
    Verdict,
    check_pipeline,
    machine,
    new_producer,
    publish,
    running,
    say,
    workload,
)

EVENTS = int(os.environ.get("CHAOS_MONGO_EVENTS", "450"))
RATE = 8.0
RESTARTS = 2


def snapshot(up: Up) -> dict[str, dict[str, Any]]:
    """Every document the server has acknowledged so far, by store: id -> fingerprint."""
    client = up.mongo()
    try:
        return {
            "audit.records": {
                str(d["_id"]): d.get("hash")
                for d in up.db(client, "audit")["records"].find({}, {"hash": 1})
            },
            "intake.requests": {
                str(d["_id"]): None
                for d in up.db(client, "intake")["requests"].find({}, {"_id": 1})
            },
            "deadlines.timers": {
                str(d["_id"]): None
                for d in up.db(client, "deadlines")["timers"].find({}, {"_id": 1})
            },
            "erasure.cases": {
                str(d["_id"]): None for d in up.db(client, "erasure")["cases"].find({}, {"_id": 1})
            },
        }
    finally:
        client.close()


def marker_write(up: Up, n: int) -> str:
    """One write acknowledged by the server (w=1, journaled), just before the kill."""
    client = up.mongo()
    try:
        mid = f"marker-{n}-{time.time_ns()}"
        up.db(client, "chaos")["markers"].insert_one({"_id": mid, "n": n})
        return mid
    finally:
        client.close()


async def main() -> int:
    verdict = Verdict("mongo_restart")
    say(
        f"MongoDB restart: {EVENTS} events at {RATE}/s, "
        f"{RESTARTS} SIGKILLs of nx-27017; {machine()}"
    )
    started = time.monotonic()
    with running("mongo") as up:
        fake = FakeSystems(up.bootstrap)
        fake.start()
        events = workload("mg", EVENTS)
        producer = await new_producer(up.bootstrap)
        sending = asyncio.create_task(publish(producer, events, RATE))
        services_before = dict(up.state()["children"])
        snaps: list[dict[str, dict[str, Any]]] = []
        markers: list[str] = []
        window = EVENTS / RATE
        for n in range(RESTARTS):
            await asyncio.sleep(window / (RESTARTS + 1))
            snaps.append(await asyncio.to_thread(snapshot, up))
            markers.append(await asyncio.to_thread(marker_write, up, n))
            sizes = {k: len(v) for k, v in snaps[-1].items()}
            pid = up.kill("mongo")
            t0 = time.monotonic()
            say(f"kill -9 nx-27017 #{n + 1} (pid {pid}); acknowledged before it: {sizes}")
            while time.monotonic() - t0 < 60:
                new = up.state().get("mongo_pid")
                if new and int(new) != pid and stack.alive(int(new)):
                    break
                await asyncio.sleep(0.2)
            restarted = time.monotonic() - t0
            ready = await asyncio.to_thread(up.wait_ready, 180)
            verdict.check(
                f"MongoDB restart #{n + 1}: the launcher restarts the server, services ready again",
                True,
                f"server back in {restarted:.1f}s, every service ready {ready:.1f}s later",
            )
        await sending
        await producer.stop()
        say(f"published {EVENTS} events")

        after = await asyncio.to_thread(snapshot, up)
        for n, snap in enumerate(snaps):
            lost = {k: sorted(set(v) - set(after[k])) for k, v in snap.items()}
            changed = [
                rid
                for rid, digest in snap["audit.records"].items()
                if rid in after["audit.records"] and after["audit.records"][rid] != digest
            ]
            count = sum(len(v) for v in snap.values())
            verdict.check(
                f"no write acknowledged before MongoDB kill #{n + 1} is lost or altered",
                not any(lost.values()) and not changed,
                f"{count} documents checked; lost {[(k, len(v)) for k, v in lost.items() if v]}"
                f", audit hashes changed {len(changed)}",
            )
        client = up.mongo()
        try:
            kept = {str(d["_id"]) for d in up.db(client, "chaos")["markers"].find({})}
        finally:
            client.close()
        verdict.check(
            "a write acknowledged right before each kill survives it",
            set(markers) <= kept,
            f"{len(set(markers) & kept)}/{len(markers)} marker documents found",
        )
        await asyncio.to_thread(check_pipeline, verdict, up, events, settle=600, fake=fake)
        await fake.stop()
        services_after = dict(up.state()["children"])
        same = [s for s in SERVICES if services_before[s] == services_after[s]]
        verdict.check(
            "the services recovered alone (no service process was restarted)",
            len(same) == len(SERVICES),
            f"kept their pid: {', '.join(same) or 'none'}; restarted: "
            + (", ".join(s for s in SERVICES if s not in same) or "none"),
        )
        retries = sum(up.tail(f"{s}.log", 10_000_000).count("retrying") for s in SERVICES)
        verdict.note(f"the services logged {retries} retries of transient errors")
    verdict.note(f"total {time.monotonic() - started:.0f}s")
    return verdict.finish()


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
