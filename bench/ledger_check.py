"""Benchmark of the ledger check: full vs incremental (from a checkpoint), as history grows.

    python bench/ledger_check.py [--sizes 100000,1000000] [--db sqlite,postgresql]
                                 [--hours 3] [--repeat 3]

For every database and size, a fresh database is filled as bench/settlement.py fills it (`size`
savings positions over 10 currencies, size / 10 users, booked in the ledger), on PostgreSQL with
the lending-history day partitions made ahead (`retention.ensure_partitions`), and `--hours`
hours are settled (the first only matches; each later one pays interest on every position and
writes a history row for each). Then, each timed after a tidy (VACUUM ANALYZE + CHECKPOINT /
WAL checkpoint, as in bench/settlement.py):

* `full`: `ledger_check.run(full=True)`, `--repeat` times: the whole journal and history.
* `first checkpoint`: the check that writes the first checkpoint (everything, plus the copy).
* then `--repeat` rounds of: settle one more hour of every currency (untimed), `incremental`:
  `ledger_check.run()` from the latest checkpoint, and `incremental + checkpoint`:
  `ledger_check.run(checkpoint=True)`, what the worker runs after each settlement (it verifies the
  same, then writes the new checkpoint and drops the superseded one).

Medians are printed; every check must be green (asserted). Output: a JSON line per result, then
a table.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import sqlalchemy as sa

sys.path.insert(0, str(Path(__file__).parent))
from flexearn.adapters import tables as t
from flexearn.adapters.clock import HOUR_MS
from flexearn.adapters.db import make_engine, migrate
from flexearn.services import ledger_check, retention
from settlement import CURRENCIES, HOUR1, fill, fresh_database, settle_all, table, tidy

COLUMNS = (
    ("db", "db", "{}"), ("positions", "positions", "{:,}"), ("hours", "hours settled", "{}"),
    ("history_rows", "history rows", "{:,}"), ("full_s", "full s", "{:.2f}"),
    ("first_checkpoint_s", "first checkpoint s", "{:.2f}"), ("incremental_s", "incremental s", "{:.2f}"),
    ("incremental_checkpoint_s", "incremental + checkpoint s", "{:.2f}"),
)


def timed(engine: sa.Engine, check: Callable[[], ledger_check.Report]) -> tuple[float, ledger_check.Report]:
    tidy(engine)
    started = time.perf_counter()
    report = check()
    elapsed = time.perf_counter() - started
    assert report.violations == [], report.violations[:5]
    return elapsed, report


def bench(db: str, size: int, hours: int, repeat: int) -> dict[str, Any]:
    with fresh_database(db) as url:
        engine = make_engine(url)
        migrate(engine)
        started = time.perf_counter()
        fill(engine, size)
        retention.ensure_partitions(engine, HOUR1)
        for hour in range(HOUR1, HOUR1 + hours * HOUR_MS, HOUR_MS):
            settle_all(engine, hour)
        prepared = time.perf_counter() - started
        full = [timed(engine, lambda: ledger_check.run(engine, full=True))[0] for _ in range(repeat)]
        first, report = timed(engine, lambda: ledger_check.run(engine, checkpoint=True))
        assert report.checkpoint is not None
        incremental, with_checkpoint = [], []
        next_hour = HOUR1 + hours * HOUR_MS
        for _ in range(repeat):
            settle_all(engine, next_hour)
            next_hour += HOUR_MS
            seconds, report = timed(engine, lambda: ledger_check.run(engine))
            assert report.journal_base is not None
            incremental.append(seconds)
            seconds, report = timed(engine, lambda: ledger_check.run(engine, checkpoint=True))
            assert report.checkpoint is not None
            with_checkpoint.append(seconds)
        with engine.connect() as conn:
            rows = conn.execute(sa.select(sa.func.count()).select_from(t.lending_history)).scalar_one()
        engine.dispose()
    return {
        "db": db,
        "positions": size,
        "currencies": len(CURRENCIES),
        "hours": hours + repeat,
        "history_rows": rows,
        "full_s": round(statistics.median(full), 3),
        "first_checkpoint_s": round(first, 3),
        "incremental_s": round(statistics.median(incremental), 3),
        "incremental_checkpoint_s": round(statistics.median(with_checkpoint), 3),
        "samples": {"full_s": _rounded(full), "incremental_s": _rounded(incremental),
                    "incremental_checkpoint_s": _rounded(with_checkpoint)},
        "prepare_s": round(prepared, 1),
        "load_avg_1m": os.getloadavg()[0],
    }


def _rounded(samples: list[float]) -> list[float]:
    return [round(x, 3) for x in samples]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", default="100000,1000000", help="positions, comma separated")
    parser.add_argument("--db", default="sqlite,postgresql", help="sqlite and/or postgresql")
    parser.add_argument("--hours", type=int, default=3, help="hours settled before the checks (default 3)")
    parser.add_argument("--repeat", type=int, default=3, help="timed runs of each check; medians (default 3)")
    args = parser.parse_args()
    results = []
    for db in (d.strip() for d in args.db.split(",") if d.strip()):
        for size in (int(s.replace("_", "")) for s in args.sizes.split(",") if s):
            result = bench(db, size, args.hours, args.repeat)
            results.append(result)
            print(json.dumps(result), flush=True)
    print()
    print(table(results, COLUMNS))


if __name__ == "__main__":
    main()
