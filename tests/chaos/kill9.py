"""Scenario 1, kill -9: SIGKILL a random service 20 times during a run; nothing is lost,
nothing is doubled, the audit trail verifies.

    python -m tests.chaos.kill9            # CHAOS_EVENTS (default 1500), CHAOS_KILLS (20)
"""

from __future__ import annotations

import asyncio
import os
import random
import sys
import time

from gardien import stack
from tests.chaos.harness import (
    SERVICES,
    FakeSystems,
    Verdict,
    check_pipeline,
    machine,
    new_producer,
    publish,
    running,
    say,
    workload,
)

EVENTS = int(os.environ.get("CHAOS_EVENTS", "1500"))
KILLS = int(os.environ.get("CHAOS_KILLS", "20"))
# Measured here (2 cores): the whole pipeline audits ~5-6 inbound events/s end to end
# (each request is ~7 audit records); publish a little faster so work queues up.
RATE = float(os.environ.get("CHAOS_RATE", "8"))
SEED = int(os.environ.get("CHAOS_SEED", "7"))


async def killer(up, verdict: Verdict, window: float, rng: random.Random) -> list[str]:
    """SIGKILL ``KILLS`` services spread over ``window`` seconds; wait for each restart."""
    log: list[str] = []
    interval = window / KILLS
    kills = 0
    restart_delays: list[float] = []
    while kills < KILLS:
        await asyncio.sleep(interval * rng.uniform(0.6, 1.4))
        state = up.state()
        alive = [s for s in SERVICES if stack.alive(int(state["children"][s]))]
        if not alive:
            continue
        name = rng.choice(alive)
        pid = up.kill(name)
        kills += 1
        t0 = time.monotonic()
        say(f"kill -9 #{kills}: {name} (pid {pid})")
        # The launcher restarts it (with backoff): wait for the new pid in up.json.
        while time.monotonic() - t0 < 90:
            new = int(up.state()["children"][name])
            if new != pid and stack.alive(new):
                break
            await asyncio.sleep(0.2)
        else:
            verdict.check(f"launcher restarted {name} after kill #{kills}", False, "not in 90s")
            continue
        restart_delays.append(time.monotonic() - t0)
        # Then until it serves again, so the next kill hits a working system.
        ready = await asyncio.to_thread(up.wait_ready, 120)
        log.append(f"{name} {restart_delays[-1]:.0f}s+{ready:.0f}s")
    verdict.check(
        f"the launcher restarted every one of the {KILLS} killed services",
        len(restart_delays) == KILLS,
        f"service: seconds to restart + seconds to ready: {', '.join(log)}",
    )
    return log


async def main() -> int:
    verdict = Verdict("kill9")
    rng = random.Random(SEED)
    say(f"kill -9: {EVENTS} events at {RATE}/s, {KILLS} SIGKILLs, seed {SEED}; {machine()}")
    started = time.monotonic()
    with running("kill9") as up:
        fake = FakeSystems(up.bootstrap)
        fake.start()
        events = workload(f"k9{SEED}", EVENTS)
        producer = await new_producer(up.bootstrap)
        window = EVENTS / RATE
        kill_task = asyncio.create_task(killer(up, verdict, window, rng))
        await publish(producer, events, RATE, lambda n: say(f"published {n}/{EVENTS}"))
        await producer.stop()
        say(f"published {EVENTS} events in {time.monotonic() - started:.0f}s")
        await kill_task
        # Every kill is over: the services must now finish the work by themselves.
        settle = float(os.environ.get("CHAOS_SETTLE", "900"))
        await asyncio.to_thread(check_pipeline, verdict, up, events, settle=settle, fake=fake)
        await fake.stop()
        restarts = up.tail("up.out", 100_000).count("restarting (see")
        verdict.note(f"launcher log shows {restarts} service restarts")
    verdict.note(f"{EVENTS} events, {KILLS} kills, total {time.monotonic() - started:.0f}s")
    return verdict.finish()


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
