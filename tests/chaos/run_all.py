"""`make chaos`: every fault-injection scenario in turn, a summary, non-zero if any failed.

    python -m tests.chaos.run_all                 # all five
    python -m tests.chaos.run_all leaks hostile   # some of them

Each scenario runs in its own process with its own `gardien up` and embedded stack; the
results (one JSON file per scenario) go to .gardien/chaos/.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

from tests.chaos.harness import REPO, machine

# Cheapest first, so a broken environment shows up early.
SCENARIOS = ["leaks", "hostile", "broker_restart", "mongo_restart", "kill9"]
BUDGET_SECONDS = 30 * 60


def main(argv: list[str]) -> int:
    chosen = argv or SCENARIOS
    unknown = [c for c in chosen if c not in SCENARIOS]
    if unknown:
        print(f"unknown scenario(s) {unknown}; choose from {SCENARIOS}", file=sys.stderr)
        return 2
    out = Path(os.environ.get("CHAOS_RESULTS_DIR", REPO / ".gardien" / "chaos"))
    out.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "CHAOS_RESULTS_DIR": str(out)}
    print(f"chaos: {', '.join(chosen)} on {machine()}; results in {out}", flush=True)
    started = time.monotonic()
    rows = []
    for name in chosen:
        print(f"\n##### {name} #####", flush=True)
        t0 = time.monotonic()
        code = subprocess.call([sys.executable, "-m", f"tests.chaos.{name}"], cwd=REPO, env=env)
        rows.append((name, code, time.monotonic() - t0))
    total = time.monotonic() - started
    print("\n##### summary #####")
    for name, code, took in rows:
        result = out / f"{name}.json"
        failed = []
        if result.exists():
            failed = [c["name"] for c in json.loads(result.read_text())["checks"] if not c["ok"]]
        state = "PASSED" if code == 0 else f"FAILED (exit {code})"
        print(f"{name:<16} {state:<18} {took:6.0f}s" + (f"  failed: {failed}" if failed else ""))
    print(f"total {total:.0f}s (budget {BUDGET_SECONDS}s)")
    if total > BUDGET_SECONDS:
        print("over the 30-minute budget", file=sys.stderr)
    return 0 if all(code == 0 for _, code, _ in rows) else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
