"""Load run of a production-shaped flexearn: throughput, latency percentiles, answer mix.

    python bench/load.py [--seconds 120] [--traders 30] [--apis 2] [--speed 7200] [--mix load|burst]

The same run as `tests/deployment/test_load.py`, for longer and with its numbers as the result: a
private PostgreSQL and Redis, `--apis` `flexearn serve --no-scheduler` processes and one settling
worker on loopback (`tests/deployment/cluster.py`), `--traders` users each making one request at a
time on both façades (`tests/deployment/traffic.py`: purchases, redemptions, rate changes,
subscriptions, redemptions and reads with `--mix load`; only purchases and subscriptions with
`--mix burst`) while the simulated clock runs `--speed` business seconds per real second.

Afterwards it stops the clock, waits for the worker to settle every due hour and day, and checks
what the load test asserts: every acknowledged write is in the journal exactly once, nothing
refused is, the ledger check passes, each period is settled once. Output: the report, then one
JSON line. The traders, the servers, PostgreSQL and Redis share this machine's cores: the figures
are those of the whole box, not of flexearn alone.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the tests package, run as a script

from tests.deployment.cluster import cluster
from tests.deployment.traffic import (
    BITGET,
    BURST_MIX,
    LOAD_MIX,
    OKX,
    load_run,
    percentile,
)

from flexearn.domain.money import D


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=120)
    parser.add_argument("--traders", type=int, default=30)
    parser.add_argument("--apis", type=int, default=2)
    parser.add_argument("--speed", type=int, default=7200, help="business seconds per real second")
    parser.add_argument("--mix", choices=["load", "burst"], default="load")
    args = parser.parse_args()
    mix = LOAD_MIX if args.mix == "load" else BURST_MIX
    with cluster(apis=args.apis) as c:
        run = load_run(c, args.traders, D(args.speed), mix, args.seconds)
    print(run.summary())
    run.writes.assert_held()
    tally, elapsed, writes = run.tally, run.seconds, run.writes
    result = {
        "seconds": round(elapsed, 1),
        "apis": args.apis,
        "traders": args.traders,
        "mix": args.mix,
        "requests": tally.requests(),
        "per_second": round(tally.requests() / elapsed, 1),
        **{
            f"{facade}_{name}": value
            for facade in (OKX, BITGET)
            for name, value in {
                "per_second": round(tally.requests(facade) / elapsed, 1),
                "p50_ms": round(percentile(tally.latencies[facade], 0.5) * 1000, 1),
                "p95_ms": round(percentile(tally.latencies[facade], 0.95) * 1000, 1),
                "p99_ms": round(percentile(tally.latencies[facade], 0.99) * 1000, 1),
            }.items()
        },
        "acknowledged": writes.acknowledged,
        "refused": writes.refused,
        "unknown": writes.unknown,
        "applied_unknown": len(writes.applied_unknown),
        "hours_settled": run.hours,
        "days_settled": run.days,
    }
    print(json.dumps(result))


if __name__ == "__main__":
    main()
