"""The settling worker: exactly one settler through the database lease, a standby taking over when
it dies, missed periods caught up in order — and kill -9 at random moments of a settlement.

The workers are real `flexearn worker` subprocesses on a real database; a settler is killed with
SIGKILL (no chance to clean up) or stopped with SIGTERM (hands over at once). The world is the
settlement benchmark's (bench/settlement.py `fill`): positions in 10 currencies, bulk-loaded and
booked, markets whose static demand exceeds supply, a simulated clock standing still hours ahead
of the last settled hour, so each pass has hours to catch up.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import pytest
import sqlalchemy as sa
from bench.settlement import HOUR1, fill

from flexearn.adapters import clock as clocks
from flexearn.adapters import tables as t
from flexearn.adapters.db import make_engine, migrate
from flexearn.domain.money import D
from flexearn.services import ledger_check, scheduler
from flexearn.services.leader import Lease, current_holder, release, try_acquire
from flexearn.services.unit_of_work import UnitOfWork
from tests.conftest import postgres_database
from tests.deployment.services import private_postgres
from tests.server import FLEXEARN

HOUR = clocks.HOUR_MS
CURRENCIES = 10  # bench fill: one market per currency
T = TypeVar("T")


def seeded(url: str, positions: int, hours_due: int) -> sa.Engine:
    """The benchmark's world with `hours_due` hours per currency due (HOUR1 onwards), none settled."""
    engine = make_engine(url)
    migrate(engine)
    fill(engine, positions)
    with engine.begin() as conn:
        clocks.set_simulated(conn, D(0), HOUR1 + (hours_due - 1) * HOUR)
    return engine


def advance(engine: sa.Engine, hours: int) -> None:
    with engine.begin() as conn:
        clocks.advance(conn, hours * HOUR)


def settled(engine: sa.Engine) -> int:
    with engine.connect() as conn:
        return int(conn.execute(sa.select(sa.func.count()).select_from(t.market_hour)).scalar_one())


def holder_pid(engine: sa.Engine) -> int | None:
    holder = current_holder(engine, "settler")
    return None if holder is None else int(holder.rsplit(":", 2)[1])


def wait_for(probe: Callable[[], T | None], timeout: float, what: str) -> T:
    deadline = time.monotonic() + timeout
    while True:
        value = probe()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {timeout} s: {what}")
        time.sleep(0.02)


class Workers:
    """`flexearn worker` subprocesses on one database, each logging to its own file."""

    def __init__(self, url: str, lease_seconds: float, log_dir: Path, ranges: int = 1) -> None:
        self.url, self.lease_seconds, self.log_dir = url, lease_seconds, log_dir
        self.env = {**os.environ, "FLEXEARN_SETTLEMENT_RANGES": str(ranges)}
        self.procs: dict[int, subprocess.Popen[bytes]] = {}

    def spawn(self) -> subprocess.Popen[bytes]:
        log = self.log_dir / f"worker-{len(self.procs)}.log"
        with log.open("wb") as out:
            proc = subprocess.Popen(
                [FLEXEARN, "worker", "--db", self.url, "--lease-seconds", str(self.lease_seconds)],
                stdout=out,
                stderr=subprocess.STDOUT,
                env=self.env,
            )
        self.procs[proc.pid] = proc
        return proc

    def started(self, proc: subprocess.Popen[bytes]) -> bool:
        """Its log says it is running (past imports and migrations): its lease thread polls now."""
        log = self.log_dir / f"worker-{list(self.procs).index(proc.pid)}.log"
        return "flexearn worker started" in log.read_text(errors="replace")

    def kill9(self, pid: int) -> None:
        os.kill(pid, signal.SIGKILL)
        self.procs[pid].wait(timeout=10)

    def alive(self) -> list[int]:
        return [pid for pid, proc in self.procs.items() if proc.poll() is None]

    def stop_all(self) -> None:
        for proc in self.procs.values():
            if proc.poll() is None:
                proc.terminate()
        for proc in self.procs.values():
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()

    def story(self) -> str:
        """Each worker's lease events, for a failure message."""
        lines = []
        for pid, proc in self.procs.items():
            text = (self.log_dir / f"worker-{list(self.procs).index(pid)}.log").read_text(errors="replace")
            events = [
                line[:200]
                for line in text.splitlines()
                if "lease" in line or "started" in line or "Trace" in line
            ]
            lines.append(f"worker {pid} (exit {proc.poll()}): " + " | ".join(events))
        return "\n".join(lines)

    def tracebacks(self) -> list[str]:
        return [
            log.name
            for log in self.log_dir.glob("worker-*.log")
            if "Traceback" in log.read_text(errors="replace")
        ]


@pytest.fixture
def workers(database_url: str, tmp_path: Path) -> Iterator[Workers]:
    group = Workers(database_url, 6.0, tmp_path)
    yield group
    group.stop_all()


# --- the lease itself --------------------------------------------------------------------------


def test_the_lease_has_one_holder_until_it_expires_or_is_released(database_url: str) -> None:
    engine = make_engine(database_url)
    migrate(engine)
    assert try_acquire(engine, "settler", "a", 800)
    assert not try_acquire(engine, "settler", "b", 800)
    assert try_acquire(engine, "settler", "a", 800)  # a renewal
    assert current_holder(engine, "settler") == "a"
    time.sleep(0.9)
    assert current_holder(engine, "settler") is None  # expired, nobody renewed
    assert try_acquire(engine, "settler", "b", 800)  # so b takes it
    assert not try_acquire(engine, "settler", "a", 800)  # and a's renewal is refused
    assert not release(engine, "settler", "a")  # a cannot release what b holds
    assert release(engine, "settler", "b")
    assert try_acquire(engine, "settler", "a", 800)  # free at once after a release
    engine.dispose()


def test_racing_processes_never_both_take_a_free_lease(database_url: str) -> None:
    engine = make_engine(database_url)
    migrate(engine)
    for round_ in range(15):
        gate = threading.Barrier(6)
        won: list[str] = []

        def race(name: str, gate: threading.Barrier, won: list[str]) -> None:
            gate.wait()
            if try_acquire(engine, "race", name, 60_000):
                won.append(name)

        threads = [threading.Thread(target=race, args=(f"{round_}-{i}", gate, won)) for i in range(6)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert len(won) == 1, won
        assert current_holder(engine, "race") == won[0]
        assert release(engine, "race", won[0])
    engine.dispose()


def test_a_held_lease_outlives_its_ttl_while_renewed_and_is_dropped_when_taken(database_url: str) -> None:
    engine = make_engine(database_url)
    migrate(engine)
    changes: list[bool] = []
    lease = Lease(engine, "settler", 1.0, on_change=changes.append).start()
    try:
        assert lease.wait(5)
        time.sleep(2.5)  # a settlement longer than the TTL: the heartbeat keeps the lease
        assert lease.held()
        assert not try_acquire(engine, "settler", "standby", 1000)
        with engine.begin() as conn:  # another process took it over (as after a long stall)
            conn.execute(
                sa.update(t.worker_lease).values(
                    holder="standby", expires_at=t.worker_lease.c.expires_at + 60_000
                )
            )
        wait_for(lambda: not lease.held(), 1.0, "the holder notices its renewal is refused")
    finally:
        lease.close()
    assert changes == [True, False]
    assert current_holder(engine, "settler") == "standby"  # closing never releases another's lease
    engine.dispose()


def test_a_settler_that_loses_its_lease_stops_after_the_current_period(database_url: str) -> None:
    engine = seeded(database_url, 100, hours_due=3)
    asked = 0

    def keep_going() -> bool:
        nonlocal asked
        asked += 1
        return asked <= 4  # the lease is lost while the fourth period is being settled

    assert len(scheduler.settle_all_due(engine, keep_going).hours) == 4
    rest = scheduler.settle_all_due(engine).hours  # the next settler catches up, oldest first
    assert [(h.hour, h.ccy) for h in rest] == sorted((h.hour, h.ccy) for h in rest)
    assert len(rest) == 3 * CURRENCIES - 4
    assert settled(engine) == 3 * CURRENCIES
    engine.dispose()


# --- worker processes ----------------------------------------------------------------------------


@pytest.mark.slow
def test_one_worker_settles_a_standby_takes_over_on_kill_9_and_at_once_on_sigterm(
    database_url: str, workers: Workers
) -> None:
    lease = workers.lease_seconds
    engine = seeded(database_url, 100, hours_due=1)
    first, second = workers.spawn(), workers.spawn()
    holder = wait_for(lambda: holder_pid(engine), 30, "a worker takes the lease")
    assert holder in (first.pid, second.pid)
    wait_for(lambda: settled(engine) == CURRENCIES, 15, "the due hour is settled")
    standby = second if holder == first.pid else first
    for _ in range(10):  # over several renewals: the same holder, the standby waiting
        assert holder_pid(engine) == holder
        assert standby.poll() is None
        time.sleep(0.2)

    # kill -9 the settler; an hour falls due: the standby settles it once the lease expires
    advance(engine, 1)
    killed = time.monotonic()
    workers.kill9(holder)
    wait_for(lambda: settled(engine) == 2 * CURRENCIES, lease + 3, "the standby settles the new hour")
    took = time.monotonic() - killed
    assert holder_pid(engine) == standby.pid
    assert took >= 0.7 * lease  # the standby waited for the dead settler's lease to run out

    # SIGTERM: the settler releases the lease, a fresh standby takes it well before any expiry
    third = workers.spawn()
    wait_for(lambda: workers.started(third), 30, "the third worker starts")
    advance(engine, 1)
    stopped = time.monotonic()
    standby.terminate()
    assert standby.wait(timeout=10) == 0
    wait_for(lambda: holder_pid(engine) == third.pid, lease, "the third worker takes over")
    handover = time.monotonic() - stopped
    # a lease renewed every lease / 5 expires no sooner than 0.8 lease after its holder stops
    assert handover < 4.0 < 0.8 * lease
    wait_for(lambda: settled(engine) == 3 * CURRENCIES, 15, "the third hour is settled")
    assert ledger_check.check(UnitOfWork(engine)) == []
    assert workers.tracebacks() == []
    print(f"kill -9 takeover {took:.2f} s (lease {lease} s); SIGTERM handover {handover:.2f} s")
    engine.dispose()


@pytest.mark.postgres
@pytest.mark.slow
def test_a_worker_rides_out_a_postgres_outage_and_settles_when_it_returns(tmp_path: Path) -> None:
    with private_postgres() as server:
        engine = seeded(server.url, 100, hours_due=1)
        workers = Workers(server.url, 2.0, tmp_path)
        worker = workers.spawn()
        try:
            wait_for(lambda: settled(engine) == CURRENCIES, 30, "the due hour is settled")
            engine.dispose()  # no pooled connection of ours outlives the server
            server.stop()
            time.sleep(3.0)  # longer than the lease: the worker must stop counting on it
            server.start()
            advance(engine, 1)
            wait_for(lambda: settled(engine) == 2 * CURRENCIES, 20, "the worker settles after the outage")
            assert holder_pid(engine) == worker.pid
            assert worker.poll() is None
            log = (tmp_path / "worker-0.log").read_text()
            assert "could not renew the settler lease" in log
            assert "lost the settler lease" in log  # it stopped believing it held the role
            assert log.count("acquired the settler lease") == 2  # and took it again by itself
        finally:
            workers.stop_all()
            engine.dispose()


# --- kill -9 at random moments of a long settlement ----------------------------------------------

STORM_POSITIONS = 20_000  # an hour of 10 currencies takes ~1-2 s here on PostgreSQL
STORM_LEASE = 2.0
STORM_KILLS = 12
STORM_SECONDS = 50  # the kills stop by then, however many there were


@dataclass
class Kill:
    pid: int
    settled_before: int  # currency-hours settled when the kill landed
    due: int  # currency-hours due then
    open_transactions: int  # the workers' transactions open on the server at the kill
    takeover: float = 0.0  # seconds until another worker held the lease
    left_open: int = 0  # periods settled in ranges that the kill left open (opened, not closed)


def open_transactions(engine: sa.Engine) -> int:
    with engine.connect() as conn:
        return int(
            conn.execute(
                sa.text(
                    "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                    "AND pid <> pg_backend_pid() AND xact_start IS NOT NULL"
                )
            ).scalar_one()
        )


def periods_open(engine: sa.Engine) -> int:
    with engine.connect() as conn:
        return int(conn.execute(sa.select(sa.func.count()).select_from(t.settlement_open)).scalar_one())


@pytest.fixture
def reference_url() -> Iterator[str]:
    """A second fresh PostgreSQL database."""
    yield from postgres_database()


AHEAD = 5  # hours kept due ahead of the settler during the storm


@pytest.mark.postgres
@pytest.mark.slow
@pytest.mark.timeout(300)
@pytest.mark.parametrize("ranges", [1, 4], ids=["one-transaction", "4-ranges"])
def test_kill_9_at_random_moments_of_settlement_settles_every_hour_once_in_order(
    postgres_url: str, reference_url: str, tmp_path: Path, ranges: int
) -> None:
    """With 4 ranges, the kills land in the middle of ranged hours too (opened, some ranges
    applied — by the settler or by the standbys helping it): the next settler finishes them. The
    reference settles each hour in one transaction: the outcome must be the same."""
    hours_due = AHEAD + 3
    engine = seeded(postgres_url, STORM_POSITIONS, hours_due)
    reference = seeded(reference_url, STORM_POSITIONS, hours_due)
    # The reference: the same world settled by one worker nobody disturbs, its clock kept in step
    calm = Workers(reference_url, STORM_LEASE, tmp_path / "reference")
    calm.log_dir.mkdir()
    calm.spawn()
    seed = int.from_bytes(os.urandom(4), "big")
    rng = random.Random(seed)
    workers = Workers(postgres_url, STORM_LEASE, tmp_path, ranges)
    kills: list[Kill] = []

    def new_settler() -> int:
        """The pid of the live worker that holds the lease next (timing the takeover)."""
        dead = {k.pid for k in kills}

        def live_holder() -> int | None:
            pid = holder_pid(engine)
            return pid if pid is not None and pid not in dead else None

        try:
            pid = wait_for(live_holder, STORM_LEASE + 3 if kills else 60, "a live worker holds the lease")
        except AssertionError as error:
            raise AssertionError(f"{error}\n{workers.story()}") from None
        if kills:
            kills[-1].takeover = time.monotonic() - killed_at
        return pid

    started = time.monotonic()
    try:
        for _ in range(3):
            workers.spawn()
        end = time.monotonic() + STORM_SECONDS
        killed_at = 0.0
        while len(kills) < STORM_KILLS and time.monotonic() < end:
            pid = new_settler()
            wait_for(  # a warm standby (two are kept: a restarted one may still be starting)
                lambda pid=pid: any(p != pid and workers.started(workers.procs[p]) for p in workers.alive()),
                60,
                "a standby runs",
            )
            # Keep hours to catch up ahead: enough for the sleep below and a takeover on a quiet
            # machine, where a pass settles ~0.5 hour (of every currency) per second.
            if settled(engine) >= CURRENCIES * (hours_due - AHEAD):
                for db in (engine, reference):
                    advance(db, AHEAD)
                hours_due += AHEAD
            time.sleep(rng.uniform(0.05, 1.2))  # a random moment of the new settler's pass
            kill = Kill(pid, settled(engine), CURRENCIES * hours_due, open_transactions(engine))
            workers.kill9(pid)
            killed_at = time.monotonic()
            kill.left_open = periods_open(engine)
            kills.append(kill)
            workers.spawn()  # a fresh standby, as a supervisor would restart it
        new_settler()
        kill_phase = time.monotonic() - started
        total = CURRENCIES * hours_due
        wait_for(lambda: settled(engine) == total, 120, "every due hour settled after the kills")
        wait_for(lambda: settled(reference) == total, 120, "the reference settles every due hour")
        done = time.monotonic() - started
    finally:
        workers.stop_all()
        calm.stop_all()

    report = (
        f"{ranges} range(s), seed {seed}: {len(kills)} kill -9 injected, "
        f"{sum(k.settled_before < k.due for k in kills)} with hours still to settle, "
        f"{sum(k.open_transactions > 0 for k in kills)} with a transaction open, "
        f"{sum(k.left_open > 0 for k in kills)} leaving a ranged hour open; "
        f"takeover max {max(k.takeover for k in kills):.2f} s; {total} currency-hours settled; "
        f"kills over {kill_phase:.1f} s, all settled after {done:.1f} s"
    )
    print(report)
    assert len(kills) >= 10, report
    assert all(k.settled_before < k.due for k in kills), report  # every kill landed mid-settlement
    assert max(k.takeover for k in kills) <= STORM_LEASE + 3, report
    if ranges > 1:  # some kills landed between an hour's opening and its close
        assert any(k.left_open for k in kills), report
    assert workers.tracebacks() == []
    assert calm.tracebacks() == []

    # Every hour once, in order, from the first: a contiguous run per currency, settled in hour order
    with engine.connect() as conn:
        rows = conn.execute(
            sa.select(t.market_hour.c.ccy, t.market_hour.c.hour).order_by(
                t.market_hour.c.created_at, t.market_hour.c.hour
            )
        ).all()
        per_ccy: dict[str, list[int]] = {}
        for ccy, hour in rows:
            per_ccy.setdefault(ccy, []).append(hour)
        assert len(per_ccy) == CURRENCIES
        for hours in per_ccy.values():
            assert hours == [HOUR1 + i * HOUR for i in range(hours_due)]
        booked_twice = conn.execute(
            sa.select(t.journal_entry.c.ccy, t.journal_entry.c.ref)
            .where(t.journal_entry.c.ref.like("hour:%"))
            .group_by(t.journal_entry.c.ccy, t.journal_entry.c.ref)
            .having(sa.func.count() > 1)
        ).all()
        assert booked_twice == []
        assert conn.execute(sa.select(sa.func.count()).select_from(t.settlement_open)).scalar() == 0
    assert ledger_check.check(UnitOfWork(engine)) == []
    state, expected = _state(engine), _state(reference)
    if ranges > 1:  # the hours' interest is booked per range and at close, not in one entry
        del state["interest"], expected["interest"]
    assert state == expected
    engine.dispose()
    reference.dispose()


def _state(engine: sa.Engine) -> dict[str, list[tuple[object, ...]]]:
    """What settlement decides: every hour's figures, every position, history and interest entries."""
    mh, pos, hist, leg, entry = (
        t.market_hour.c,
        t.position.c,
        t.lending_history.c,
        t.journal_leg.c,
        t.journal_entry.c,
    )
    with engine.connect() as conn:
        return {
            "hours": conn.execute(
                sa.select(*(c for c in t.market_hour.c if c.name not in ("created_at", "entry_id"))).order_by(
                    mh.ccy, mh.hour
                )
            ).all(),
            "positions": conn.execute(
                sa.select(pos.id, pos.amt, pos.earnings, pos.loan).order_by(pos.id)
            ).all(),
            "history": conn.execute(
                sa.select(hist.position_id, hist.ts, hist.amt, hist.earnings, hist.rate).order_by(
                    hist.position_id, hist.ts
                )
            ).all(),
            "interest": conn.execute(
                sa.select(entry.ccy, entry.ref, sa.func.count(leg.id), sa.func.sum(sa.func.abs(leg.amount)))
                .join(t.journal_leg, leg.entry_id == entry.id)
                .where(entry.ref.like("hour:%"))
                .group_by(entry.ccy, entry.ref)
                .order_by(entry.ccy, entry.ref)
            ).all(),
        }
