"""Time the public reads that need every position: the dashboard overview and market view,
`lending-rate-summary` (its estRate) and /metrics, answered in process through the ASGI app.

    python bench/reads.py [--size 50000] [--db sqlite,postgresql] [--calls 6]

For each database: a fresh one filled as `bench/settlement.py` fills it (`size` positions over 10
currencies, hour 1 settled: everything lent), then each endpoint is asked `--calls` times, 0.2 s
apart (under the per-IP limits): the first answer (`cold`: the figures read from the database)
and the median of the others (`warm`: nothing changed in between). Then one purchase, and the
overview asked again: `after change` is its first answer (a book of more than 1,000 positions may
still be the previous one for up to 10× its cost; the time is what the client waited). Answers
other than 200 (503 when the request's budget, FLEXEARN_API_TIMEOUT = 3 s, ran out) are counted
and shown beside the times.

The script runs unchanged against an older checkout (`PYTHONPATH=that/src`), which is how the
README's before/after figures were taken.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent))

import settlement as world  # bench/settlement.py: the same fill
from flexearn.adapters.secrets import generate_master_key
from flexearn.api.app import create_app
from flexearn.bootstrap import Flexearn
from flexearn.config import Settings
from flexearn.domain.money import D
from flexearn.services import accounts, savings

ENDPOINTS = {
    "overview": "/dashboard/api/overview",
    "market": "/dashboard/api/markets/USDT?window=24h",
    "summary": "/api/v5/finance/savings/lending-rate-summary",
    "metrics": "/metrics",
}


def timed(call: Callable[[], Any], refused: list[int]) -> float:
    """Seconds to answer; an answer other than 200 (503: the request's 3 s budget ran out) is noted."""
    started = time.perf_counter()
    answer = call()
    if answer.status_code != 200:
        refused.append(answer.status_code)
    return time.perf_counter() - started


def measure(url: str, size: int, calls: int) -> dict[str, Any]:
    world.phase_setup(url, size)
    app = Flexearn(url)
    from starlette.testclient import TestClient  # noqa: PLC0415  (it warns on import)

    http = TestClient(create_app(Settings(master_key=generate_master_key(), demo=True), app))
    result: dict[str, Any] = {"db": url.split(":", maxsplit=1)[0], "size": size}
    for name, path in ENDPOINTS.items():
        times, refused = [], []
        for _ in range(calls):
            times.append(timed(lambda path=path: http.get(path), refused))  # type: ignore[misc]
            time.sleep(0.2)
        result[name] = {
            "cold_s": round(times[0], 4),
            "warm_s": round(statistics.median(times[1:]), 4),
            "refused": refused,
        }
    accounts.deposit(app.uow(), 1, "USDT", D(1000))
    savings.purchase(app.uow(), 1, "USDT", D(100))
    after = timed(lambda: http.get(ENDPOINTS["overview"]), result["overview"]["refused"])
    result["overview"]["after_change_s"] = round(after, 4)
    app.close()
    return result


def _refused(figures: dict[str, Any]) -> str:
    return f" ({len(figures['refused'])} refused)" if figures["refused"] else ""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--size", type=int, default=50_000, help="positions (a multiple of 10)")
    parser.add_argument("--db", default="sqlite,postgresql", help="sqlite and/or postgresql")
    parser.add_argument("--calls", type=int, default=6, help="requests per endpoint (the first is cold)")
    args = parser.parse_args()
    rows = []
    for db in (d.strip() for d in args.db.split(",") if d.strip()):
        with world.fresh_database(db) as url:
            row = measure(url, args.size, args.calls)
        rows.append(row)
        print(json.dumps(row), flush=True)
    header = " | ".join(f"{n} cold / warm" for n in ENDPOINTS)
    print(f"\n| db | positions | {header} | overview after a change |")
    print("| --- | ---: |" + " ---: |" * (len(ENDPOINTS) + 1))
    for row in rows:
        cells = [f"{row[n]['cold_s']:.3f} / {row[n]['warm_s']:.3f} s{_refused(row[n])}" for n in ENDPOINTS]
        after = row["overview"]["after_change_s"]
        print(f"| {row['db']} | {row['size']:,} | {' | '.join(cells)} | {after:.3f} s |")


if __name__ == "__main__":
    main()
