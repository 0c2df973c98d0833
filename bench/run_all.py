"""Every benchmark in sequence on fresh embedded stacks, then one summary (`make bench`).

Sizes are chosen so the whole run fits in 30 minutes on a 2-core machine (docs/
performance.md): ceiling 20,000 documents and 30,000 messages; audit appends 20,000
records through the real consumer; pipeline 400 requests per mix (access, mixed,
erasure) and 30 s at half load; timers 1,000,000 pending; fan-out 60 cases x 10 systems
(10,000 is extrapolated); audit 300,000 records (1,000,000 with --full); replicas 1, 2 and
4 members per service, 200 requests and 40 retention clocks each, one forced rebalance;
access packages 1,000 subjects x 4 systems and one 100 MB answer.

    python -m bench.run_all [--full]
"""

from __future__ import annotations

import argparse
import time
from typing import Any

from bench import (
    access_package,
    audit,
    ceiling,
    fanout,
    fanout_batches,
    pipeline,
    replicas,
    timers,
)
from bench.common import machine


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--full", action="store_true", help="audit at 1,000,000 records")
    args = parser.parse_args()
    started = time.monotonic()
    print(f"gardien benchmarks — {machine()}", flush=True)
    results: dict[str, Any] = {}
    ceil = ceiling.main([])
    access, erasure = ceil["access"]["requests_per_s"], ceil["erasure"]["requests_per_s"]
    results["pipeline"] = pipeline.main(
        ["--events", "400", "--latency-seconds", "30", "--ceiling", str(access), str(erasure)]
    )
    results["fanout"] = fanout.main(["--cases", "300"])
    results["fanout_batches"] = fanout_batches.main(["--cases", "2000", "--batch", "500"])
    results["timers"] = timers.main(["--timers", "1000000", "--batch", "1000"])
    results["audit"] = audit.main(["--records", "1000000" if args.full else "300000"])
    results["replicas"] = replicas.main(["--requests", "200", "--contracts", "40"])
    results["access_package"] = access_package.main(["--subjects", "1000", "--big-mb", "100"])
    p, f, t, a = (results[k] for k in ("pipeline", "fanout", "timers", "audit"))
    fb = results["fanout_batches"]
    mixed, half = p["throughput"]["mixed"], p["half_load"]
    print("\n==== summary — " + machine() + " ====")
    print(
        f"raw servers             insert_many {ceil['insert_many_docs_per_s']:,} docs/s, produce "
        f"{ceil['produce_msgs_per_s']:,}/s, consume {ceil['consume_msgs_per_s']:,} msgs/s"
    )
    print(f"ceiling                 access {access:.1f}, erasure {erasure:.1f} requests/s")
    for name, (got, bound, ratio) in p.get("ratio_to_ceiling", {}).items():
        print(f"pipeline [{name:7}]     {got:8.2f} requests/s  ratio {ratio:.2f} of {bound:.1f}")
    ap = results["audit"]["appends"]
    print(
        f"audit appends           {ap['records_per_s']:8.0f} records/s (target >= 5,000), ratio "
        f"{ap['ratio_to_ceiling']:.2f} of {ap['ceiling']['records_per_s']:,.0f}; event "
        f"-> own record p99 {ap['p99_ms']:.0f} ms at {ap['half_rate']:.0f}/s (target < 100)"
    )
    print(
        f"  CPU per request       {mixed['cpu_s_per_request']:8.4f} CPU-s in the services "
        f"(+{mixed['stack_cpu_s_per_request']} broker+MongoDB)"
    )
    er = p["throughput"]["erasure"]
    print(
        f"  CPU per erasure req.  {er['cpu_s_per_request'] + er['stack_cpu_s_per_request']:8.4f}"
        f" CPU-s, services + broker + MongoDB (target <= 0.02)"
    )
    print(
        f"  half load ({half['rate']}/s)   event -> own audit record p99 "
        f"{half['event_to_audit_p99_ms']:.0f} ms (target < 100); fully processed p50/p99 "
        f"{half['latency_p50_ms']:.0f} / {half['latency_p99_ms']:.0f} ms"
    )
    print(
        f"fan-out                 {f['commands_per_s']:8.1f} commands/s, "
        f"{f['acks_reconciled_per_s']} acks reconciled/s; "
        f"erasure peak RSS {f['erasure_peak_rss_mib']} MiB"
    )
    print(
        f"fan-out, batches of {fb['batch']} {fb['commands_per_s']:8.1f} commands/s, "
        f"{fb['acks_reconciled_per_s']} acks reconciled/s (use cases driven directly)"
    )
    print(
        f"timers ({t['timers']:,})     create {t['create_per_s']}/s, lag p50/p99 "
        f"{t['at_full']['lag_p50_ms']:.0f}/{t['at_full']['lag_p99_ms']:.0f} ms (target < 1000),"
        f" 10,000 due: last after {t['at_full']['burst_last_ms'] / 1000:.1f} s (target < 3;"
        f" one update each alone {t['at_full']['floor_ms'] / 1000:.1f} s),"
        f" empty tick {t['at_small']['empty_tick_ms']:.1f} ms at {t['small']:,} vs "
        f"{t['at_full']['empty_tick_ms']:.1f} ms at {t['timers']:,}"
    )
    print(
        f"audit ({a['records']:,})      verify {a['verify_records_per_s_1proc']:,}/s "
        f"(1 proc), {a['verify_records_per_s_nproc']:,}/s (all cores); query p99 subject "
        f"{a['query_subject_ms']['p99']} ms, request {a['query_request_ms']['p99']} ms; "
        f"export {a['export_records_per_s']:,}/s"
    )
    many, huge = results["access_package"]["many"], results["access_package"]["huge"]
    print(
        f"access packages         {many['packages_per_s']:8.1f} packages/s ({many['subjects']:,}"
        f" subjects x {many['systems']} systems); {huge['upload_mb']} MB answer: RSS peak"
        f" {huge['rss_peak_mib']} MiB from {huge['rss_start_mib']}"
    )
    for r in results["replicas"]["runs"]:
        print(
            f"replicas {r['replicas']}             {r['items_per_s']:8.2f} items/s, pause after a "
            f"member stopped {r['pause_s']} s, checks {'OK' if r['checks']['ok'] else 'FAILED'}"
        )
    print(f"total {(time.monotonic() - started) / 60:.1f} min")


if __name__ == "__main__":
    main()
