"""Scenario 1, kill -9: SIGKILL services 20 times during a run of 10,000 requests, every
``CHAOS_PAIR_EVERY``-th time two services at once; nothing is lost, nothing is doubled,
every clock is set once, every command acknowledged once, the audit trail verifies.

    python -m tests.chaos.kill9     # CHAOS_EVENTS (10000), CHAOS_KILLS (20), CHAOS_RATE (25/s)
    CHAOS_EVENTS=2000 CHAOS_KILLS=6 python -m tests.chaos.kill9    # a reduced run
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

EVENTS = int(os.environ.get("CHAOS_EVENTS", "10000"))
KILLS = int(os.environ.get("CHAOS_KILLS", "20"))
# Every PAIR_EVERY-th kill takes two services down at once (0: never).
PAIR_EVERY = int(os.environ.get("CHAOS_PAIR_EVERY", "4"))
# Published faster than the services sustain with kills, so work queues up and every kill
# lands on a busy pipeline; the kills are spread over the publishing window.
RATE = float(os.environ.get("CHAOS_RATE", "25"))
SEED = int(os.environ.get("CHAOS_SEED", "7"))


async def killer(up, verdict: Verdict, window: float, rng: random.Random) -> list[str]:
    """SIGKILL services ``KILLS`` times over ``window`` seconds (every ``PAIR_EVERY``-th time
    two at once); wait for each to be restarted and the system to serve again."""
    log: list[str] = []
    interval, kills, restarted, pairs = window / KILLS, 0, 0, 0
    while kills < KILLS:
        await asyncio.sleep(interval * rng.uniform(0.6, 1.4))
        state = up.state()
        alive = [s for s in SERVICES if stack.alive(int(state["children"][s]))]
        width = 2 if PAIR_EVERY and (kills + 1) % PAIR_EVERY == 0 else 1
        if len(alive) < width:
            continue
        names = rng.sample(alive, width)
        pids = {name: up.kill(name) for name in names}  # back to back: down together
        kills, pairs = kills + 1, pairs + (width == 2)
        t0 = time.monotonic()
        say(f"kill -9 #{kills}: {' + '.join(f'{n} (pid {p})' for n, p in pids.items())}")
        back = await asyncio.gather(*(restart(up, n, p) for n, p in pids.items()))
        for name, ok in zip(names, back, strict=True):
            restarted += ok
            if not ok:
                verdict.check(f"launcher restarted {name} after kill #{kills}", False, "not in 90s")
        # Then until it serves again, so the next kill hits a working system.
        ready = await asyncio.to_thread(up.wait_ready, 120)
        log.append(f"{'+'.join(names)} {time.monotonic() - t0 - ready:.0f}s+{ready:.0f}s")
    killed = KILLS + pairs
    verdict.check(
        f"the launcher restarted every one of the {killed} services killed in {KILLS} kills "
        f"({pairs} of two at once)",
        restarted == killed,
        f"service(s): seconds to restart + seconds to ready: {', '.join(log)}",
    )
    return log


async def restart(up, name: str, pid: int) -> bool:
    """True once the launcher has started ``name`` again (a new live pid in up.json)."""
    t0 = time.monotonic()
    while time.monotonic() - t0 < 90:
        new = int(up.state()["children"][name])
        if new != pid and stack.alive(new):
            return True
        await asyncio.sleep(0.2)
    return False


async def main() -> int:
    verdict = Verdict("kill9")
    rng = random.Random(SEED)
    say(
        f"kill -9: {EVENTS} events at {RATE}/s, {KILLS} kills (every {PAIR_EVERY}th of two "
        f"services), seed {SEED}; {machine()}, load {os.getloadavg()[0]:.1f}"
    )
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
    verdict.note(
        f"{EVENTS} events, {KILLS} kills, total {time.monotonic() - started:.0f}s, "
        f"load {os.getloadavg()[0]:.1f}"
    )
    return verdict.finish()


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
