"""Fault soak: kill -9 of API processes and settling workers at random moments, under traffic.

    python bench/fault_soak.py [--kills 100] [--seed N] [--traders 16] [--speed 7200]
                               [--lease 2] [--gap 0.3,3.0] [--ranges 1] [--claims redis|database]

A production-shaped flexearn on loopback (`tests/deployment/cluster.py`): a private PostgreSQL
and Redis (signatures claimed there; with `--claims database`, no Redis: claimed in the database,
the API processes' reads and claims then go on their event loops, a turn's together),
2 `flexearn serve --no-scheduler` API processes and 2 `flexearn worker` settling workers (one
settles, one stands by; `--lease` seconds of lease), the business clock running `--speed`
business seconds per real second (7200: an hour every half second, a day every 12 s),
and `--traders` users trading on both façades through both API processes
(`tests/deployment/traffic.py`: purchases, redemptions, rate changes, subscriptions, redemptions
and reads; every write has an amount of its own, so the journal tells which were applied).

Then `--kills` times: wait a random moment (`--gap` seconds, uniform), SIGKILL the whole process
group of one of the four processes chosen at random, and start it again (as a supervisor would;
an API process counts as back once it answers). A worker killed while holding the settler lease
leaves the standby to take over when the lease runs out; the run waits for that takeover, and
times it, before the next kill.

At the end the traders stop, the clock stops, the workers catch up, and the run reports, from
the database:

* acknowledged writes lost (not in the journal; goal 0) and doubled (in it twice; goal 0), and
  refused or unsent writes applied (goal 0); writes whose answer was lost with a killed process
  are counted, and may or may not have been applied (once at most);
* periods settled more than once (goal 0): a market hour or catalog day booked twice in the
  journal (the same `hour:…` / `product:…:day:…` reference twice), or a position with two lending
  history rows for one hour;
* periods left open (goal 0): opened in ranges and never closed, or due and not settled after
  the catch-up, or missing between the first period and now;
* `flexearn ledger check --full`.

Exit status 1 when a goal is missed. It runs on PostgreSQL only (the deployment tests' private
servers: `initdb`, `pg_ctl` and `redis-server` must be installed).
"""

from __future__ import annotations

import argparse
import random
import signal
import sys
import threading
import time
from collections import Counter
from contextlib import suppress
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the tests package, run as a script

import sqlalchemy as sa
from tests.deployment.cluster import Cluster, Process, cluster
from tests.deployment.traffic import (
    LOAD_MIX,
    Outcome,
    Tally,
    WriteCheck,
    check_writes,
    report,
    run_traders,
)
from tests.server import full_ledger_check

from flexearn.adapters import tables as t
from flexearn.adapters.clock import HOUR_MS, floor_hour
from flexearn.domain.catalog import DAY_MS, day_start
from flexearn.domain.money import D
from flexearn.services.leader import current_holder
from flexearn.services.settlement import due_days, due_hours


@dataclass
class Kill:
    at: float  # seconds into the run
    victim: str
    role: str  # api, settler, standby (a worker: whether it held the lease)
    periods_due: int  # market hours and catalog days due and unsettled at the kill
    back: float = 0.0  # seconds until it answered again (API) or a live worker held the lease


def settler_pid(engine: sa.Engine) -> int | None:
    holder = current_holder(engine, "settler")  # host:pid:random
    return None if holder is None else int(holder.rsplit(":", 2)[1])


def periods_due(c: Cluster) -> int:
    hours = sum(len(h) for h in due_hours(c.app.uow()).values())
    return hours + sum(len(d) for d in due_days(c.app.uow()).values())


def wait_for(condition: object, timeout: float) -> float | None:
    """Seconds until `condition()` held, or None after `timeout`."""
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        if condition():  # type: ignore[operator]
            return time.monotonic() - started
        time.sleep(0.05)
    return None


def storm(c: Cluster, workers: list[Process], args: argparse.Namespace, rng: random.Random) -> list[Kill]:
    """`args.kills` kill -9s of random processes at random moments, each restarted."""
    low, high = args.gap
    processes = [*c.apis, *workers]
    kills: list[Kill] = []
    started = time.monotonic()
    for i in range(args.kills):
        time.sleep(rng.uniform(low, high))
        victim = rng.choice(processes)
        assert victim.proc is not None
        role = "api"
        if victim in workers:
            role = "settler" if settler_pid(c.app.engine) == victim.proc.pid else "standby"
        kill = Kill(time.monotonic() - started, victim.name, role, periods_due(c))
        dead = victim.proc.pid
        victim.kill9()
        restarted = time.monotonic()
        victim.start(timeout=120)  # an API process: returns once it answers
        if role == "settler":  # the standby (or the restarted worker) takes over when the lease expires

            def taken(dead: int = dead) -> bool:
                pid = settler_pid(c.app.engine)
                return pid is not None and pid != dead

            waited = wait_for(taken, args.lease + 30)
            kill.back = -1.0 if waited is None else time.monotonic() - restarted
        elif role == "api":
            kill.back = time.monotonic() - restarted
        kills.append(kill)
        if (i + 1) % 10 == 0:
            print(
                f"  {time.monotonic() - started:6.0f} s: {i + 1} kills "
                f"({dict(Counter(k.role for k in kills))}), periods due now {periods_due(c)}",
                flush=True,
            )
    return kills


@dataclass
class Settled:
    hours: int  # market hours settled
    days: int  # catalog days settled
    booked_twice: list[tuple[str, str]]  # (ccy, ref) of interest entries booked more than once
    history_twice: int  # (position, hour) with more than one lending-history row
    rows_twice: int  # market_hour / product_day rows for one period (their primary keys forbid it)
    left_open: int  # settlement_open rows: opened in ranges, never closed
    due: int  # due and not settled after the catch-up
    missing: list[str]  # periods missing between the first one and now


def settled(c: Cluster) -> Settled:
    """What the database says about every period, after the catch-up."""
    now = c.now()
    with c.app.engine.connect() as conn:
        e = t.journal_entry.c
        booked_twice = conn.execute(
            sa.select(e.ccy, e.ref)
            .where(sa.or_(e.ref.like("hour:%"), e.ref.like("product:%:day:%")))
            .group_by(e.ccy, e.ref)
            .having(sa.func.count() > 1)
        ).all()
        h = t.lending_history.c
        twice = sa.select(h.position_id).group_by(h.position_id, h.ts).having(sa.func.count() > 1).subquery()
        history_twice = conn.execute(sa.select(sa.func.count()).select_from(twice)).scalar_one()
        rows_twice = 0
        for table, keys in ((t.market_hour, ("ccy", "hour")), (t.product_day, ("product_id", "day"))):
            dup = (
                sa.select(*(table.c[k] for k in keys))
                .group_by(*(table.c[k] for k in keys))
                .having(sa.func.count() > 1)
                .subquery()
            )
            rows_twice += conn.execute(sa.select(sa.func.count()).select_from(dup)).scalar_one()
        left_open = conn.execute(sa.select(sa.func.count()).select_from(t.settlement_open)).scalar_one()
        missing: list[str] = []
        hours = days = 0
        mh, pd = t.market_hour.c, t.product_day.c
        for ccy, first in conn.execute(sa.select(t.market.c.ccy, t.market.c.first_hour)).all():
            have = set(conn.execute(sa.select(mh.hour).where(mh.ccy == ccy)).scalars())
            hours += len(have)
            want = set(range(first, floor_hour(now) + 1, HOUR_MS))
            missing += [f"{ccy} hour {x}" for x in sorted(want - have)]
        for product, first in conn.execute(sa.select(t.product.c.id, t.product.c.first_day)).all():
            have = set(conn.execute(sa.select(pd.day).where(pd.product_id == product)).scalars())
            days += len(have)
            want = set(range(first, day_start(now) + 1, DAY_MS))
            missing += [f"product {product} day {x}" for x in sorted(want - have)]
    return Settled(
        hours,
        days,
        [tuple(r) for r in booked_twice],
        history_twice,
        rows_twice,
        left_open,
        periods_due(c),
        missing,
    )


def tracebacks(processes: list[Process]) -> dict[str, int]:
    return {p.name: n for p in processes if (n := p.output().count("Traceback"))}


def run(args: argparse.Namespace) -> int:
    rng = random.Random(args.seed)
    print(
        f"FAULT SOAK: {args.kills} kills, seed {args.seed}, {args.traders} traders, speed {args.speed}, "
        f"lease {args.lease} s, gap {args.gap[0]}-{args.gap[1]} s, ranges {args.ranges}, "
        f"claims {args.claims}",
        flush=True,
    )
    started = time.monotonic()
    with cluster(apis=2, ranges=args.ranges, redis=args.claims == "redis") as c:
        # The cluster's one worker, again with a short lease, and a second one standing by.
        c.worker.stop()
        c.worker.argv += ["--lease-seconds", str(args.lease)]
        c.worker.name = "worker0"
        second = Process("worker1", list(c.worker.argv), c.worker.env, c.root / "worker1.log", None)
        workers = [c.worker, second]
        try:
            for worker in workers:
                worker.start()
            product_id = c.seed(D(args.speed))
            members = c.members(args.traders)
            tally, stop = Tally(), threading.Event()
            threads = run_traders(members, c.urls, product_id, tally, LOAD_MIX, stop, seed=args.seed)
            warm = wait_for(lambda: tally.outcomes()[Outcome.ACKNOWLEDGED] >= 2 * args.traders, 60)
            setup = time.monotonic() - started
            print(f"  cluster up and trading after {setup:.1f} s (warm-up {warm or 0:.1f} s)", flush=True)
            storm_started = time.monotonic()
            kills = storm(c, workers, args, rng)
            storm_seconds = time.monotonic() - storm_started
            time.sleep(2)  # traffic on the last restarted process
            stop.set()
            for thread in threads:
                thread.join(timeout=30)
            traffic_seconds = time.monotonic() - storm_started
            caught_up = True
            try:
                c.wait_settled(timeout=args.catch_up)  # stops the clock
            except AssertionError as error:
                caught_up = False
                print(f"  the workers did not catch up: {str(error)[:500]}", flush=True)
            writes = check_writes(c.app.engine, tally.writes, [m.user_id for m in members])
            periods = settled(c)
            code, ledger_output, ledger_seconds = full_ledger_check(c.url)
            alive = {p.name: p.alive() for p in [*c.apis, *workers]}
            starts = {p.name: p.starts for p in [*c.apis, *workers]}
            logged = tracebacks([*c.apis, *workers])
        finally:
            second.stop()
    total = time.monotonic() - started

    result = Result(
        kills,
        storm_seconds,
        total,
        setup,
        tally,
        traffic_seconds,
        writes,
        periods,
        caught_up,
        code,
        ledger_output,
        ledger_seconds,
        alive,
        starts,
        logged,
    )
    lines, missed = render(args, result)
    print("\n".join(lines), flush=True)
    return 1 if missed else 0


@dataclass
class Result:
    kills: list[Kill]
    storm_seconds: float
    total: float
    setup: float
    tally: Tally
    traffic_seconds: float
    writes: WriteCheck
    periods: Settled
    caught_up: bool
    ledger_code: int
    ledger_output: str
    ledger_seconds: float
    alive: dict[str, bool]
    starts: dict[str, int]
    tracebacks: dict[str, int]


def render(args: argparse.Namespace, r: Result) -> tuple[list[str], list[str]]:
    """The report's lines, and the goals missed."""
    kills, writes, periods = r.kills, r.writes, r.periods
    by_role = Counter(k.role for k in kills)
    api_back = sorted(k.back for k in kills if k.role == "api")
    takeovers = sorted(k.back for k in kills if k.role == "settler")
    failed_takeovers = sum(1 for x in takeovers if x < 0)
    lost, twice = len(writes.lost), len(writes.twice)
    wrong = len(writes.wrongly_applied) + len(writes.phantom)
    settled_twice = len(periods.booked_twice) + periods.history_twice + periods.rows_twice
    left_open = periods.left_open + periods.due + len(periods.missing)
    missing = ": " + ", ".join(periods.missing[:5]) if periods.missing else ""
    victims = dict(sorted(Counter(k.victim for k in kills).items()))
    out = [
        "",
        f"FAULT SOAK seed={args.seed}: {len(kills)} kill -9 in {r.storm_seconds:.1f} s "
        f"({dict(sorted(by_role.items()))}; victims {victims}); "
        f"{sum(k.periods_due > 0 for k in kills)} landed with periods due; "
        f"total wall time {r.total:.0f} s (setup {r.setup:.0f} s)",
        f"  API process back (answering) after: median {median(api_back):.1f} s, "
        f"max {max(api_back, default=0):.1f} s",
        f"  settler killed → another worker held the lease after: median {median(takeovers):.1f} s, "
        f"max {max(takeovers, default=0):.1f} s (lease {args.lease} s); "
        f"takeovers not seen: {failed_takeovers}",
        f"  process starts: {r.starts}; alive at the end: {r.alive}; "
        f"logs with tracebacks: {r.tracebacks or 'none'}",
        report(r.tally, r.traffic_seconds),
        f"WRITES: {writes.line()}",
        f"ACKNOWLEDGED WRITES LOST (goal 0): {lost}" + (f"  e.g. {writes.lost[:3]}" if lost else ""),
        f"ACKNOWLEDGED WRITES DOUBLED (goal 0): {twice}" + (f"  e.g. {writes.twice[:3]}" if twice else ""),
        f"REFUSED/UNSENT WRITES APPLIED, OR APPLIED NEVER SENT (goal 0): {wrong}",
        f"PERIODS SETTLED: {periods.hours} market hours, {periods.days} catalog days",
        f"PERIODS SETTLED MORE THAN ONCE (goal 0): {settled_twice} (interest booked twice "
        f"{len(periods.booked_twice)}, lending history twice {periods.history_twice}, "
        f"period rows twice {periods.rows_twice})",
        f"PERIODS LEFT OPEN (goal 0): {left_open} (opened and not closed {periods.left_open}, "
        f"due and unsettled {periods.due}, missing {len(periods.missing)}{missing})",
        f"LEDGER CHECK (flexearn ledger check --full, {r.ledger_seconds:.1f} s): "
        f"{'green' if r.ledger_code == 0 else f'RED (exit {r.ledger_code})'}",
        *(f"  {line[:300]}" for line in r.ledger_output.splitlines()[:20]),
    ]
    goals = {
        "kills": len(kills) < args.kills,
        "lost": lost > 0,
        "doubled": twice > 0,
        "wrongly applied": wrong > 0,
        "settled twice": settled_twice > 0,
        "left open": left_open > 0 or not r.caught_up,
        "ledger check": r.ledger_code != 0,
        "takeover": failed_takeovers > 0,
        "processes": not all(r.alive.values()),
    }
    missed = [name for name, bad in goals.items() if bad]
    out.append(f"GOALS: {'met' if not missed else 'MISSED: ' + ', '.join(missed)}")
    return out, missed


def median(values: list[float]) -> float:
    return values[len(values) // 2] if values else 0.0


def gap(text: str) -> tuple[float, float]:
    low, _, high = text.partition(",")
    return float(low), float(high or low)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kills", type=int, default=100)
    parser.add_argument("--seed", type=int, default=None, help="default: random (printed)")
    parser.add_argument("--traders", type=int, default=16)
    parser.add_argument("--speed", type=int, default=7200, help="business seconds per real second")
    parser.add_argument("--lease", type=float, default=2.0, help="the workers' --lease-seconds")
    parser.add_argument("--gap", type=gap, default=(0.3, 3.0), help="seconds between kills: LOW,HIGH")
    parser.add_argument("--ranges", type=int, default=1, help="FLEXEARN_SETTLEMENT_RANGES")
    parser.add_argument("--catch-up", type=float, default=120, help="seconds the workers get to catch up")
    parser.add_argument(
        "--claims", choices=("redis", "database"), default="redis", help="where signatures are claimed"
    )
    args = parser.parse_args(argv)
    if args.seed is None:
        args.seed = random.SystemRandom().randrange(2**32)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # stop the cluster and clean up on TERM
    with suppress(KeyboardInterrupt):
        return run(args)
    return 130


if __name__ == "__main__":
    sys.exit(main())
