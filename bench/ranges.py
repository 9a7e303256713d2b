"""Benchmark of hourly market settlement shared by user-id range, against the single transaction.

    python bench/ranges.py [--sizes 200000] [--configs 1,4x1,4x2,8x2] [--repeat 3] [--poll-ms 5]

PostgreSQL only (`FLEXEARN_BENCH_POSTGRES_URL`, default postgresql://postgres@127.0.0.1:5432/postgres):
SQLite has a single writer, so ranges applied by several processes would only queue behind each
other there.

A configuration is `N` (N ranges, applied by the settling process alone; `1` is the single
transaction per currency, `settlement.settle_hour`) or `NxP`: N ranges applied by P processes,
the settler plus P - 1 helper processes (multiprocessing, spawned) that loop on
`settlement.help_open_periods` every `--poll-ms` while the hour is timed, as standbys do,
and are stopped after it.

For every size, each configuration gets its own fresh database with the same data: `fill` of
bench/settlement.py (deterministic: `size` positions over 10 currencies, size / 10 users, booked
in the ledger; auction with demand above supply, so everything is lent) and hour 1 settled untimed
in single transactions. Then hours 2, 3, ... (`--repeat` of them, each the same work: interest on
every position, every position re-matched, one lending history row each) are timed; the rounds
go round-robin over the configurations (the order rotated each round), so drift in the machine's
load hits all of them alike, and the database is tidied (VACUUM ANALYZE, CHECKPOINT) untimed
before each timed hour.

Timed: the settlement of the hour for the 10 currencies, one after the other as the scheduler
does it. A ranged currency is `open_hour` (read every position, compute the match, write the plan:
the part no other process can share; timed on its own as `open s`) then
`settlement.settle` (finds it open; applies ranges alongside the helpers, waits for
theirs, closes the hour: `apply+close s`). Medians over the rounds are reported, with the share
of the ranges the helpers applied and the ratio to the single transaction of the same run.

Checked afterwards, per configuration: every timed hour changed every position and wrote `size`
history rows; no period is left open; `market_hour` holds 10 × (1 + repeat) rows; the ledger
check (`ledger_check.run`) is green; and positions, lending history, market hours and every
account's balance are equal, value for value, to those of the first single-transaction
configuration: ranges reproduce the single transaction. Output: a JSON line per configuration,
then a table per size.
"""

from __future__ import annotations

import argparse
import itertools
import json
import multiprocessing as mp
import os
import statistics
import sys
import time
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the bench package, run as a script

import sqlalchemy as sa
from bench.settlement import CURRENCIES, HOUR1, HOUR2, fill, fresh_database, settle_all, table, tidy

from flexearn.adapters import tables as t
from flexearn.adapters.clock import HOUR_MS
from flexearn.adapters.db import make_engine, migrate
from flexearn.services import ledger_check, settlement
from flexearn.services.unit_of_work import UnitOfWork

# What must be equal, row for row, between a ranged run and the single transaction.
COMPARED = {
    "positions": "SELECT id, user_id, ccy, amt, loan, earnings, rate FROM savings_position ORDER BY id",
    "lending_history": "SELECT position_id, ts, user_id, ccy, amt, earnings, rate FROM lending_history "
    "ORDER BY position_id, ts",
    "market_hour": "SELECT ccy, hour, demand, borrow_rate, lender_rate, pool_rate, supply, lent, "
    "interest_paid, insurance_fee, borrower_paid, rounding, demand_state FROM market_hour ORDER BY ccy, hour",
    "balances": "SELECT a.key, sum(l.amount) FROM journal_leg l JOIN ledger_account a ON a.id = l.account_id "
    "GROUP BY a.key ORDER BY a.key",
}


@dataclass(frozen=True)
class Config:
    name: str
    ranges: int
    processes: int  # the settler and processes - 1 helpers

    @classmethod
    def parse(cls, text: str) -> Config:
        ranges, _, processes = text.strip().partition("x")
        config = cls(text.strip(), int(ranges), int(processes or 1))
        if config.ranges < 1 or config.processes < 1 or (config.ranges == 1 and config.processes > 1):
            raise ValueError(f"configuration {text!r}: N or NxP with N >= 1, P >= 1 (and P = 1 when N = 1)")
        return config


@dataclass
class Run:
    config: Config
    url: str
    engine: sa.Engine
    setup_s: float
    seconds: list[float] = field(default_factory=list)
    open_s: list[float] = field(default_factory=list)
    cpu_s: list[float] = field(default_factory=list)
    helped: list[int] = field(default_factory=list)  # ranges the helpers applied, per hour
    load: list[float] = field(default_factory=list)


# --- helper processes ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Helper:
    process: Any  # multiprocessing.Process
    stop: Any  # multiprocessing.Event
    applied: Any  # multiprocessing.Value("i")


def help_loop(url: str, worker: str, poll_s: float, stop: Any, ready: Any, applied: Any) -> None:
    """A standby's share: apply ranges of whatever period is open, poll again after `poll_s`."""
    engine = make_engine(url)
    with engine.connect() as conn:
        conn.exec_driver_sql("SELECT 1")
    ready.set()
    try:
        while not stop.is_set():
            done = settlement.help_open_periods(
                engine, worker=worker, keep_going=lambda: not stop.is_set()
            )
            if done:
                with applied.get_lock():
                    applied.value += done
            else:
                stop.wait(poll_s)
    finally:
        engine.dispose()


def start_helpers(url: str, count: int, poll_s: float) -> list[Helper]:
    context = mp.get_context("spawn")
    helpers, ready = [], []
    for number in range(1, count + 1):
        stop, started, applied = context.Event(), context.Event(), context.Value("i", 0)
        process = context.Process(
            target=help_loop, args=(url, f"helper-{number}", poll_s, stop, started, applied), daemon=True
        )
        process.start()
        helpers.append(Helper(process, stop, applied))
        ready.append(started)
    for started in ready:
        if not started.wait(60):
            stop_helpers(helpers)
            raise RuntimeError("a helper process did not start")
    return helpers


def stop_helpers(helpers: list[Helper]) -> int:
    """Stop the helpers; how many ranges they applied."""
    for helper in helpers:
        helper.stop.set()
    for helper in helpers:
        helper.process.join(60)
        if helper.process.exitcode != 0:
            raise RuntimeError(f"helper {helper.process.pid} ended with {helper.process.exitcode}")
    return sum(helper.applied.value for helper in helpers)


# --- one timed hour ------------------------------------------------------------------------------


def settle_timed(run: Run, hour: int, size: int, poll_s: float) -> None:
    engine, ranges = run.engine, run.config.ranges
    helpers = start_helpers(run.url, run.config.processes - 1, poll_s)
    try:
        changed, opening = 0, 0.0
        cpu, started = time.process_time(), time.perf_counter()
        for ccy, _ in CURRENCIES:
            if ranges > 1:
                opened = time.perf_counter()
                assert settlement.open_period(UnitOfWork(engine), settlement.HOURS, ccy, hour, ranges)
                opening += time.perf_counter() - opened
            result = settlement.settle(engine, settlement.HOURS, ccy, hour, ranges, worker="settler")
            assert result is not None, f"{ccy} hour {hour} was not settled"
            changed += result.positions_changed
        seconds, cpu = time.perf_counter() - started, time.process_time() - cpu
    finally:
        helped = stop_helpers(helpers)
    with engine.connect() as conn:
        history = conn.execute(
            sa.select(sa.func.count())
            .select_from(t.lending_history)
            .where(t.lending_history.c.ts == hour - HOUR_MS)
        ).scalar_one()
    assert changed == size, f"{run.config.name}: hour changed {changed} of {size} positions"
    assert history == size, f"{run.config.name}: hour wrote {history} history rows for {size} positions"
    run.seconds.append(seconds)
    run.open_s.append(opening)
    run.cpu_s.append(cpu)
    run.helped.append(helped)
    run.load.append(os.getloadavg()[0])


# --- checks --------------------------------------------------------------------------------------


def check(run: Run, hours: int) -> str:
    """'green' or what is wrong: the ledger check, the market hours, no period left open."""
    problems = ledger_check.run(run.engine).violations[:3]
    with run.engine.connect() as conn:
        settled = conn.execute(sa.select(sa.func.count()).select_from(t.market_hour)).scalar_one()
        still_open = conn.execute(sa.select(sa.func.count()).select_from(t.settlement_open)).scalar_one()
        ranges = conn.execute(sa.select(sa.func.count()).select_from(t.settlement_range)).scalar_one()
    if settled != hours * len(CURRENCIES):
        problems.append(f"{settled} market_hour rows, expected {hours * len(CURRENCIES)}")
    if still_open or ranges:
        problems.append(f"{still_open} periods and {ranges} ranges left open")
    return "green" if not problems else f"RED {problems}"


def compare(a: sa.Engine, b: sa.Engine) -> str:
    """'equal' if every query of COMPARED gives the same rows (by value) on both databases."""
    for name, query in COMPARED.items():
        with a.connect() as left, b.connect() as right:
            rows = (c.execution_options(yield_per=20_000).exec_driver_sql(query) for c in (left, right))
            for number, (x, y) in enumerate(itertools.zip_longest(*rows)):
                if x != y:
                    return f"{name} differ at row {number}: {x} vs {y}"
    return "equal"


# --- the driver ----------------------------------------------------------------------------------


def prepare(url: str, config: Config, size: int) -> Run:
    engine = make_engine(url)
    migrate(engine)
    started = time.perf_counter()
    fill(engine, size)
    tidy(engine)
    matched = settle_all(engine, HOUR1)
    assert matched == size, f"hour 1 matched {matched} of {size} positions"
    return Run(config, url, engine, time.perf_counter() - started)


def summary(run: Run, size: int, single: Run | None, checked: str, same: str) -> dict[str, Any]:
    seconds, opening = statistics.median(run.seconds), statistics.median(run.open_s)
    ranged = run.config.ranges > 1
    total_ranges = run.config.ranges * len(CURRENCIES)
    return {
        "positions": size,
        "config": run.config.name,
        "ranges": run.config.ranges,
        "processes": run.config.processes,
        "seconds": round(seconds, 3),
        "positions_per_s": round(size / seconds),
        "open_s": round(opening, 3) if ranged else None,
        "apply_close_s": round(
            statistics.median(s - o for s, o in zip(run.seconds, run.open_s, strict=True)), 3
        )
        if ranged
        else None,
        "open_share": round(opening / seconds, 3) if ranged else None,
        "settle_cpu_s": round(statistics.median(run.cpu_s), 3),
        "helped": f"{statistics.median(run.helped):g}/{total_ranges}" if ranged else None,
        "ratio": round(seconds / statistics.median(single.seconds), 3) if single else None,
        "check": checked,
        "same": same,
        "samples": {
            "seconds": [round(s, 3) for s in run.seconds],
            "open_s": [round(s, 3) for s in run.open_s],
            "helped": run.helped,
        },
        "load_avg_1m": [round(x, 2) for x in run.load],
        "setup_s": round(run.setup_s, 1),
    }


def bench(size: int, configs: list[Config], repeat: int, poll_s: float) -> list[dict[str, Any]]:
    with ExitStack() as stack:
        runs = []
        for config in configs:
            url = stack.enter_context(fresh_database("postgresql"))
            runs.append(prepare(url, config, size))
            stack.callback(runs[-1].engine.dispose)  # before its database is dropped
        for round_ in range(repeat):
            shift = round_ % len(runs)
            for run in runs[shift:] + runs[:shift]:
                tidy(run.engine)
                settle_timed(run, HOUR2 + round_ * HOUR_MS, size, poll_s)
        single = next((run for run in runs if run.config.ranges == 1), None)
        results = []
        for run in runs:
            checked = check(run, 1 + repeat)
            same = "-" if single is None or run is single else compare(single.engine, run.engine)
            results.append(summary(run, size, single, checked, same))
        return results


COLUMNS = (
    ("positions", "positions", "{:,}"),
    ("config", "config", "{}"),
    ("seconds", "settle s", "{:.2f}"),
    ("positions_per_s", "positions/s", "{:,}"),
    ("open_s", "open s", "{:.2f}"),
    ("apply_close_s", "apply+close s", "{:.2f}"),
    ("settle_cpu_s", "settler CPU s", "{:.2f}"),
    ("helped", "ranges by helpers", "{}"),
    ("ratio", "vs 1", "{:.2f}"),
    ("check", "checks", "{}"),
    ("same", "same as 1", "{}"),
)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", default="200000", help="positions, comma separated (default 200000)")
    parser.add_argument(
        "--configs", default="1,4x1,4x2,8x2", help="N or NxP (N ranges, P processes), comma separated"
    )
    parser.add_argument("--repeat", type=int, default=3, help="timed hours per configuration; medians")
    parser.add_argument("--poll-ms", type=float, default=5, help="the helpers' poll interval when idle")
    args = parser.parse_args()
    sizes = [int(s.replace("_", "")) for s in args.sizes.split(",") if s]
    try:
        configs = [Config.parse(c) for c in args.configs.split(",") if c.strip()]
    except ValueError as error:
        parser.error(str(error))
    if len({c.name for c in configs}) != len(configs):
        parser.error("a configuration is given twice")
    tables = []
    for size in sizes:
        results = bench(size, configs, args.repeat, args.poll_ms / 1000)
        for result in results:
            print(json.dumps(result), flush=True)
        shown = [
            {key: "-" if r[key] is None else fmt.format(r[key]) for key, _, fmt in COLUMNS} for r in results
        ]
        tables.append(table(shown, tuple((key, title, "{}") for key, title, _ in COLUMNS)))
    print()
    print("\n\n".join(tables))


if __name__ == "__main__":
    main()
