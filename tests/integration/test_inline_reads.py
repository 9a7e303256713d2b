"""On a SQLite file, a façade's read runs on the event loop (`db.inline`, `api/facade._Endpoint._inline`):
its one-statement reads on the loop's own connection, its signature's claim there too unless another
writer holds SQLite's write lock — then in a database slot, waiting for it. Whatever would wait (a
unit of work, a write behind a lock) refuses with `NotInline` before it has done anything."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import sqlite3
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import sqlalchemy as sa

from flexearn.adapters import db
from flexearn.adapters import tables as t
from flexearn.adapters.secrets import SecretBox, generate_master_key
from flexearn.api import claims
from flexearn.api.auth import DatabaseReplayMemory
from flexearn.bootstrap import Flexearn
from flexearn.domain.money import D
from flexearn.services import accounts, clock, keys, replays, savings
from tests.contract.okx_http import signed_headers
from tests.helpers import T0, market_world, saver, writing_in_a_slot
from tests.server import running_server

BALANCE = "/api/v5/finance/savings/balance?ccy=USDT"


@pytest.fixture
def holder(app: Flexearn) -> int:
    return saver(app, D("12.5"))


@pytest.fixture
def on_sqlite(tmp_path: Path) -> Iterator[Flexearn]:
    """Inline work is SQLite's (PostgreSQL answers over the network): a SQLite file's app."""
    instance = Flexearn(f"sqlite:///{tmp_path / 'inline.db'}")
    yield instance
    instance.close()


SENT_MS = 1_764_000_000_000  # when the signatures of these tests were signed


def _claim(app: Flexearn, signature: str) -> replays.Claim:
    now = int(time.time() * 1000)
    return replays.Claim(app.engine, signature, SENT_MS, now, now + 60_000)


def _claimed(app: Flexearn) -> set[str]:
    """The digests in the database's replay window."""
    with app.engine.connect() as conn:
        return set(conn.execute(sa.select(t.seen_signature.c.digest)).scalars())


def test_inline_reads_read_what_a_slot_reads_and_postgresql_refuses_them(app: Flexearn, holder: int) -> None:
    expected = savings.positions(app.read_uow(), holder, "USDT")
    if app.engine.dialect.name != "sqlite":
        with db.inline(), pytest.raises(db.NotInline):
            savings.positions(app.read_uow(), holder, "USDT")
        return
    with db.inline():
        assert savings.positions(app.read_uow(), holder, "USDT") == expected
        assert savings.positions(app.read_uow(), holder) == expected


def test_a_unit_of_work_refuses_to_run_inline_and_writes_nothing(app: Flexearn, holder: int) -> None:
    with db.inline(), pytest.raises(db.NotInline):
        accounts.deposit(app.uow(), holder, "USDT", D(5))
    with db.inline(), pytest.raises(db.NotInline):
        savings.purchase(app.uow(), holder, "USDT", D(1), None)
    (position,) = savings.positions(app.read_uow(), holder, "USDT")
    assert position.amt == D("12.5")
    (funding,) = accounts.funding_balances(app.read_uow(), holder)
    assert funding.available == D("87.5")


def test_an_inline_read_cannot_write(on_sqlite: Flexearn) -> None:
    with db.inline(), pytest.raises(sqlite3.OperationalError, match="readonly"):
        db.alone(on_sqlite.engine, "DELETE FROM seen_signature", {}, read_only=True)


def test_an_inline_claim_is_made_once_and_waits_for_no_writer(on_sqlite: Flexearn) -> None:
    app, path = on_sqlite, str(on_sqlite.engine.url.database)
    with db.inline():
        assert _claim(app, "sig-1").alone() is True
        assert _claim(app, "sig-1").alone() is False  # a replay
    # a writer of this process holds the lock: refused at once, nothing written
    with app.uow() as uow:
        uow.conn.execute(sa.text("SELECT 1"))
        with db.inline(), pytest.raises(db.NotInline):
            _claim(app, "sig-2").alone()
    # another process's writer holds it: the same, without waiting for its busy timeout
    other = sqlite3.connect(path, isolation_level=None)
    other.execute("BEGIN IMMEDIATE")
    started = time.monotonic()
    with db.inline(), pytest.raises(db.NotInline):
        _claim(app, "sig-2").alone()
    assert time.monotonic() - started < 0.5
    other.execute("ROLLBACK")
    other.close()
    assert _claimed(app) == {replays.digest("sig-1", SENT_MS)}
    with db.inline():
        assert _claim(app, "sig-2").alone() is True  # the lock is free again



def test_claims_waiting_for_another_writer_are_each_refused_at_their_own_deadline_and_made_after(
    on_sqlite: Flexearn,
) -> None:
    """Another process holds SQLite's write lock: a turn's claims wait on the loop for it together
    (`claims.first`). The request whose budget runs out first is refused then ("unavailable"), the
    other waits on; once the lock is let go both claims are made, in one statement."""
    app, path = on_sqlite, str(on_sqlite.engine.url.database)
    other = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    other.execute("BEGIN IMMEDIATE")

    async def scenario() -> tuple[BaseException | bool | None, float, BaseException | bool | None, float]:
        started = time.monotonic()

        async def claimed(signature: str, budget: float) -> tuple[BaseException | bool | None, float]:
            try:
                found: BaseException | bool | None = await claims.first(
                    _claim(app, signature), db.Deadline(started + budget)
                )
            except db.DatabaseBusy as busy:
                found = busy
            return found, time.monotonic() - started

        asyncio.get_running_loop().call_later(0.6, other.execute, "COMMIT")
        (short, short_s), (long, long_s) = await asyncio.gather(claimed("sig-s", 0.3), claimed("sig-l", 5))
        return short, short_s, long, long_s

    short, short_s, long, long_s = asyncio.run(scenario())
    other.close()
    assert isinstance(short, db.DatabaseBusy)
    assert 0.25 < short_s < 0.55  # its own budget, not the lock's holder
    assert long is True
    assert 0.6 <= long_s < 1.5  # made once the lock was let go
    assert _claimed(app) == {replays.digest("sig-s", SENT_MS), replays.digest("sig-l", SENT_MS)}  # both made


def test_a_claim_joining_a_group_that_waits_for_a_writer_of_this_process_is_refused_at_its_deadline(
    on_sqlite: Flexearn,
) -> None:
    """A slot of this process holds SQLite's write lock: the group waits until it leaves (`db.writable`,
    told, not polled). A claim that joins the waiting group later is bounded by its own budget too."""
    app = on_sqlite

    async def scenario(leave: threading.Event) -> tuple[bool | None, float, BaseException | None, float]:
        started = time.monotonic()
        first = asyncio.ensure_future(claims.first(_claim(app, "sig-a"), db.Deadline(started + 5)))
        await asyncio.sleep(0.1)  # the group has met the writer and waits for it
        late_error: BaseException | None = None
        try:
            await claims.first(_claim(app, "sig-b"), db.Deadline(time.monotonic() + 0.3))
        except db.DatabaseBusy as busy:
            late_error = busy
        late_s = time.monotonic() - started
        await asyncio.get_running_loop().run_in_executor(None, time.sleep, 0.5)
        leave.set()  # the slot commits and leaves: the group is made
        made = await first
        return made, late_s, late_error, time.monotonic() - started

    with writing_in_a_slot(app) as leave:
        made, late_s, late_error, first_s = asyncio.run(scenario(leave))
    assert isinstance(late_error, db.DatabaseBusy)
    assert 0.35 < late_s < 0.75  # 0.1 s in, then its own 0.3 s: not the writer's ~0.9 s
    assert made is True
    assert first_s >= 0.9
    assert _claimed(app) == {replays.digest("sig-a", SENT_MS), replays.digest("sig-b", SENT_MS)}  # both made


def test_inline_reads_and_claims_never_switch_a_connections_query_only(on_sqlite: Flexearn) -> None:
    """Setting `query_only` expires every statement its connection prepared: a read and a claim
    sharing one connection re-parsed both on every request. Each has its own, set once."""
    app = on_sqlite
    holder = saver(app, D(3))
    with db.inline():
        savings.positions(app.read_uow(), holder, "USDT")
        assert _claim(app, "sig-0").alone() is True
    loop_connections = db._LOOP.connections[app.engine]
    sent: dict[int, list[str]] = {}
    for n, connection in enumerate(loop_connections):
        sent[n] = []
        connection.set_trace_callback(sent[n].append)
    with db.inline():
        for i in range(20):
            assert [p.amt for p in savings.positions(app.read_uow(), holder, "USDT")] == [D(3)]
            assert _claim(app, f"sig-{i + 1}").alone() is True
    for connection in loop_connections:
        connection.set_trace_callback(None)
    statements = [sql for each in sent.values() for sql in each]
    assert not [sql for sql in statements if "query_only" in sql.lower()]
    writes = {n for n, each in sent.items() if any("INSERT" in sql.upper() for sql in each)}
    reads = {n for n, each in sent.items() if any("SELECT" in sql.upper() for sql in each)}
    (writer,), (reader,) = writes, reads
    assert writer != reader  # each on its own connection
    assert loop_connections[reader].execute("PRAGMA query_only").fetchone() == (1,)


@pytest.mark.parametrize("inline", [True, False], ids=["inline", "awaited"])
def test_on_the_loop_the_replay_window_is_pruned_in_a_thread_of_its_own(app: Flexearn, inline: bool) -> None:
    """Without a prune of the loop's own (PostgreSQL's awaited reads), on an event loop's thread the
    prune goes to a thread of its own: under `db.inline` and outside it (the signatures are claimed
    before the handler, on the loop, where the prune's DELETEs held up every request of the loop).
    Off the loop (a database slot) it runs where it is asked; only the thread of its own pauses
    between its transactions (for the loop's writers)."""
    pruned_in: list[tuple[str, float]] = []

    def prune(now_ms: int, pause_s: float) -> None:
        pruned_in.append((threading.current_thread().name, pause_s))
        replays.prune(app.engine, now_ms, pause_s=pause_s)

    memory = DatabaseReplayMemory(
        lambda s, sent, now, ttl: replays.Claim(app.engine, s, sent, now, now + ttl), prune
    )
    now = int(time.time() * 1000)

    async def on_the_loop() -> tuple[bool, replays.Claim | None]:
        with db.inline() if inline else contextlib.nullcontext():
            return memory.deferred("sig-a", now, 60_000, sent_ms=now)

    first, claim = asyncio.run(on_the_loop())
    assert first
    assert claim is not None
    for _ in range(100):
        if pruned_in:
            break
        time.sleep(0.02)
    assert pruned_in == [("flexearn-prune", DatabaseReplayMemory.PRUNE_PAUSE_S)]
    later = now + DatabaseReplayMemory.PRUNE_MS + 1
    memory.deferred("sig-b", later, 60_000, sent_ms=later)  # off the loop: here
    assert pruned_in[1:] == [(threading.current_thread().name, 0.0)]


def test_on_a_sqlite_file_the_loop_prunes_between_its_turns_and_waits_for_another_writer(
    on_sqlite: Flexearn,
) -> None:
    """With a SQLite file the loop prunes the window itself (`api/claims.prune`), on its own writer:
    the request that starts it does not wait for it, one batch runs between two turns of the loop,
    and while another process's writer holds SQLite's write lock nothing is tried in a thread
    (where the prune held the lock while it waited for the GIL the loop held), only retried once
    the lock is let go."""
    app = on_sqlite
    s = t.seen_signature
    start = int(time.time() * 1000)
    expired, later_expired, live = 2 * claims.PRUNE_BATCH + 7, 5, 3
    with app.engine.begin() as conn:
        conn.execute(sa.insert(s), [{"digest": f"old-{i:05d}", "expires_at": 1_000} for i in range(expired)])
        conn.execute(sa.insert(s), [{"digest": f"mid-{i}", "expires_at": start + 5_000} for i in range(5)])
        conn.execute(sa.insert(s), [{"digest": f"live-{i}", "expires_at": 10**15} for i in range(live)])
    memory = DatabaseReplayMemory(
        lambda sig, sent, now, ttl: replays.Claim(app.engine, sig, sent, now, now + ttl),
        lambda now_ms, pause_s: pytest.fail("pruned in a thread"),
        functools.partial(claims.prune, app.engine),
    )
    other = sqlite3.connect(str(app.engine.url.database), isolation_level=None)
    left: list[int] = []

    def count() -> int:
        return int(other.execute("SELECT count(*) FROM seen_signature").fetchone()[0])

    async def on_the_loop() -> None:
        with db.inline():
            assert memory.deferred("sig-a", start, 60_000, sent_ms=start)[0]
        left.append(count())  # the request went on: nothing deleted yet
        for _ in range(3):
            await asyncio.sleep(0)  # one turn of the loop: one batch
            left.append(count())
        other.execute("BEGIN IMMEDIATE")  # another process's writer takes the lock
        later = start + DatabaseReplayMemory.PRUNE_MS + 1
        with db.inline():
            assert memory.deferred("sig-b", later, 60_000, sent_ms=later)[0]
        await asyncio.sleep(0.05)
        left.append(count())
        other.execute("COMMIT")
        for _ in range(100):
            await asyncio.sleep(0.01)
            if count() == live:
                break
        left.append(count())

    threads = threading.active_count()
    asyncio.run(on_the_loop())
    assert threading.active_count() == threads
    rest = later_expired + live
    assert left == [expired + rest, expired + rest - claims.PRUNE_BATCH, rest + 7, rest, rest, live]
    digests = {digest for (digest,) in other.execute("SELECT digest FROM seen_signature")}
    assert digests == {f"live-{i}" for i in range(live)}
    other.close()


def test_a_prune_asked_in_a_slot_goes_to_the_loop_that_serves_it_and_without_one_runs_there(
    on_sqlite: Flexearn,
) -> None:
    """A slot's request may be the one to find the window due for its prune: on a SQLite file it
    is handed to the event loop that last pruned (where its requests come from), not run in the
    slot (which held SQLite's write lock while waiting for the GIL, as the thread of its own did).
    With that loop closed, in the slot, as before."""
    app = on_sqlite
    start = int(time.time() * 1000)
    later = start + DatabaseReplayMemory.PRUNE_MS + 1
    with app.engine.begin() as conn:
        conn.execute(sa.insert(t.seen_signature), [{"digest": "mid", "expires_at": start + 5_000}])
    pruned_in: list[str] = []

    def on_the_loop(now_ms: int) -> None:
        pruned_in.append(f"loop {threading.current_thread().name}")
        claims.prune(app.engine, now_ms)

    def in_the_slot(now_ms: int, pause_s: float) -> None:
        pruned_in.append(f"slot {threading.current_thread().name}")

    memory = DatabaseReplayMemory(
        lambda sig, sent, now, ttl: replays.Claim(app.engine, sig, sent, now, now + ttl),
        in_the_slot,
        on_the_loop,
    )

    def left() -> int:
        with app.engine.connect() as conn:
            return int(conn.execute(sa.select(sa.func.count()).select_from(t.seen_signature)).scalar_one())

    async def scenario() -> int:
        with db.inline():
            memory.deferred("sig-a", start, 60_000, sent_ms=start)  # on the loop
        await asyncio.to_thread(memory.deferred, "sig-b", later, 60_000, sent_ms=later)  # in a slot
        for _ in range(100):
            await asyncio.sleep(0.01)
            if left() == 0:
                break
        return left()

    loop_thread = threading.current_thread().name
    assert asyncio.run(scenario()) == 0  # the row that expired between the two: pruned
    assert pruned_in == [f"loop {loop_thread}", f"loop {loop_thread}"]
    memory.deferred("sig-c", later + DatabaseReplayMemory.PRUNE_MS + 1, 60_000, sent_ms=later)  # no loop
    assert pruned_in[2:] == [f"slot {loop_thread}"]


def test_a_signed_read_behind_another_processs_writer_is_answered_when_it_lets_go(tmp_path: Path) -> None:
    path = str(tmp_path / "served.db")
    database_url = f"sqlite:///{path}"
    app = Flexearn(database_url)
    user = saver(app, D("7.25"))
    master = generate_master_key()
    key = keys.create_key(app.uow(), SecretBox(master), user, "read")
    with running_server(database_url, master) as base, httpx.Client(base_url=base, timeout=10) as client:
        assert client.get(BALANCE, headers=signed_headers(key, "GET", BALANCE)).status_code == 200  # warm
        other = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        other.execute("BEGIN IMMEDIATE")  # another process's writer: the claim cannot be made inline
        threading.Timer(0.5, lambda: other.execute("COMMIT")).start()
        signed = signed_headers(key, "GET", BALANCE)
        started = time.monotonic()
        read = client.get(BALANCE, headers=signed)
        assert (read.status_code, read.json()["code"], read.json()["data"][0]["amt"]) == (200, "0", "7.25")
        assert time.monotonic() - started >= 0.4  # it waited for the lock, in a slot
        replayed = client.get(BALANCE, headers=signed)
        assert (replayed.status_code, replayed.json()["code"]) == (401, "50113")
    other.close()
    app.close()


def test_a_read_that_needs_a_unit_of_work_is_served_from_a_slot(database_url: str) -> None:
    app = Flexearn(database_url)
    market_world(app, "USDT", demand=D(0))
    user = accounts.create_user(app.uow(), "reader")
    accounts.deposit(app.uow(), user, "USDT", D(100))
    master = generate_master_key()
    key = keys.create_key(app.uow(), SecretBox(master), user, "read")
    history = "/api/v5/finance/savings/lending-history"
    with running_server(database_url, master) as base, httpx.Client(base_url=base, timeout=10) as client:
        for _ in range(3):  # the first finds out inline and falls back; the next go to a slot at once
            answered = client.get(history, headers=signed_headers(key, "GET", history))
            assert (answered.status_code, answered.json()["code"]) == (200, "0")
        assert answered.json()["data"] == []
    app.close()


def test_the_loops_writes_keep_the_wal_bounded(on_sqlite: Flexearn) -> None:
    """Its commits checkpoint the WAL as every connection's do, with no other writer between: the
    file is reused from its start (a checkpoint left to another thread never caught up with the
    loop's writes, and the WAL grew by ~15 kB a claim: gigabytes in a minute)."""
    user = saver(on_sqlite, D(1))
    wal = Path(f"{on_sqlite.engine.url.database}-wal")
    with db.inline():
        for i in range(3_000):
            savings.positions(on_sqlite.read_uow(), user, "USDT")
            assert _claim(on_sqlite, f"sig-{i}").alone() is True
    assert wal.stat().st_size < 8_000_000  # 1,000 pages of 4 kB, and room; unbounded: ~45 MB


def test_the_funding_wallet_is_one_read_with_the_clock_and_runs_inline(on_sqlite: Flexearn) -> None:
    """Binance's `/api/v3/account`: every enabled currency's funding balances and the business time,
    one statement (no unit of work), so on SQLite it is answered on the event loop."""
    app = on_sqlite
    empty = accounts.funding_wallet(app.read_uow(), 1)  # no currency yet: no balances, the real clock
    assert empty.balances == []
    assert abs(empty.now - int(time.time() * 1000)) < 5_000
    holder = saver(app, D("12.5"))  # USDT: 87.5 left in funding
    accounts.add_currency(app.uow(), "BTC", 8)
    clock.set_simulated(app.uow(), D(1), start_ms=T0)
    with db.inline():
        wallet = accounts.funding_wallet(app.read_uow(), holder)
    assert wallet.balances == accounts.funding_wallet(app.read_uow(), holder).balances  # as in a slot
    assert wallet.balances == [
        accounts.FundingBalance("BTC", D(0), D(0)),
        accounts.FundingBalance("USDT", D("87.5"), D(0)),
    ]
    assert T0 <= wallet.now < T0 + 60_000  # the simulated clock's time, read with the balances
