"""On a SQLite file, a façade's write runs on the event loop (`db.inline(units=True)`,
`api/facade._Endpoint._inline_write`): its one unit of work on the loop's own writer, with its
signature's claim in the same COMMIT, when SQLite's write lock is free at once. When another writer
holds it (`WriterBusy`) nothing was done and the loop waits — for a slot of this process, until it
leaves; for another process, a pause — and tries again itself; while the market's hour is being
settled the request runs in a database slot, where it may wait. After a COMMIT on the loop nothing
may move to a slot (a second unit of work is refused loudly)."""

from __future__ import annotations

import asyncio
import json
import sqlite3
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal
from pathlib import Path

import httpx
import pytest
import sqlalchemy as sa

from flexearn.adapters import db
from flexearn.adapters import tables as t
from flexearn.adapters.secrets import SecretBox, generate_master_key
from flexearn.api.app import create_app
from flexearn.bootstrap import Flexearn
from flexearn.config import Settings
from flexearn.domain.errors import InsufficientBalance
from flexearn.domain.money import D
from flexearn.services import gate, keys, ledger_check, savings
from tests.contract.okx_http import signed_headers
from tests.helpers import saver, writing_in_a_slot
from tests.server import running_server

PURCHASE = "/api/v5/finance/savings/purchase-redempt"


@pytest.fixture
def on_sqlite(tmp_path: Path) -> Iterator[Flexearn]:
    instance = Flexearn(f"sqlite:///{tmp_path / 'inline.db'}")
    yield instance
    instance.close()


def _held(app: Flexearn, user: int) -> Decimal:
    (position,) = savings.positions(app.read_uow(), user, "USDT")
    return position.amt


def _body(amt: str) -> str:
    return json.dumps({"ccy": "USDT", "amt": amt, "side": "purchase"})


def test_a_purchase_commits_on_the_loops_writer_with_its_claim_in_one_transaction(
    on_sqlite: Flexearn,
) -> None:
    app = on_sqlite
    user = saver(app, D("12.5"))
    master = generate_master_key()
    key = keys.create_key(app.uow(), SecretBox(master), user, "read,trade")
    served = create_app(Settings(master_key=master, demo=True), app)
    sent: list[str] = []

    async def scenario() -> tuple[httpx.Response, httpx.Response]:
        transport = httpx.ASGITransport(app=served)
        async with httpx.AsyncClient(transport=transport, base_url="http://flexearn") as client:
            warm = _body("0.25")  # the loop's connections and its writer's engine are set up now
            warm_headers = signed_headers(key, "POST", PURCHASE, warm)
            answer = await client.post(PURCHASE, content=warm, headers=warm_headers)
            assert answer.json()["code"] == "0"
            writer, _reader = db._LOOP.connections[app.engine]  # this thread runs the loop
            writer.set_trace_callback(sent.append)
            body = _body("1.25")
            signed = signed_headers(key, "POST", PURCHASE, body)
            bought = await client.post(PURCHASE, content=body, headers=signed)
            writer.set_trace_callback(None)
            return bought, await client.post(PURCHASE, content=body, headers=signed)

    bought, replayed = asyncio.run(scenario())
    assert (bought.status_code, bought.json()["code"]) == (200, "0")
    assert (replayed.status_code, replayed.json()["code"]) == (401, "50113")  # refused: one purchase
    assert _held(app, user) == D(14)
    assert sent[0] == "BEGIN IMMEDIATE"
    assert sent[-1] == "COMMIT"
    assert [s for s in sent if s in ("BEGIN IMMEDIATE", "COMMIT")] == ["BEGIN IMMEDIATE", "COMMIT"]
    assert any(s.startswith("INSERT INTO seen_signature") for s in sent)  # the claim, joined
    assert ledger_check.check(app.uow()) == []


def test_on_the_loop_a_write_behind_a_lock_or_an_open_hour_refuses_at_once_and_writes_nothing(
    on_sqlite: Flexearn,
) -> None:
    app = on_sqlite
    user = saver(app, D(10))
    path = str(app.engine.url.database)
    other = sqlite3.connect(path, isolation_level=None)
    other.execute("BEGIN IMMEDIATE")  # another process's writer
    started = time.monotonic()
    with db.inline(units=True), pytest.raises(db.WriterElsewhere):  # the loop tries again after a pause
        savings.purchase(app.uow(), user, "USDT", D(1))
    other.execute("ROLLBACK")
    with app.uow() as uow:  # a writer of this process
        uow.conn.execute(sa.text("SELECT 1"))
        with db.inline(units=True), pytest.raises(db.WriterBusy) as refused:
            savings.purchase(app.uow(), user, "USDT", D(1))
        assert refused.value.here  # the loop awaits its leaving
    with app.engine.begin() as conn:  # the market's hour is being settled in ranges
        opened = {"kind": gate.HOUR, "key": "USDT", "period": 1, "plan": "{}", "opened_at": 0}
        conn.execute(sa.insert(t.settlement_open).values(opened))
    with db.inline(units=True), pytest.raises(db.WouldWait) as refused:
        savings.purchase(app.uow(), user, "USDT", D(1))  # not slept on: gate.WAIT_S is 30 s
    assert not isinstance(refused.value, db.WriterBusy)  # a slot waits for the period
    assert time.monotonic() - started < 2
    other.close()
    assert _held(app, user) == D(10)


def test_the_loops_writer_keeps_its_connection_fit_after_a_failed_unit_a_refused_begin_and_a_commit(
    on_sqlite: Flexearn,
) -> None:
    """`db.unit` keeps the loop's SQLAlchemy connection open between units of work (taking it from
    its pool and back, with the pool's reset, cost a SQLite trade about 40 µs of its ~430): whatever
    a unit ended with — an error after it wrote, a refused BEGIN, a COMMIT — the next one begins on
    a connection fit for it, and nothing of a failed one is committed with a later one."""
    app = on_sqlite
    user = saver(app, D(10))  # 90 USDT left in funding

    def unit_connection() -> sa.Connection:
        with db.inline(units=True), app.uow() as uow:
            return uow.conn  # rolled back, nothing written

    def entries() -> int:
        with app.engine.connect() as conn:
            return int(conn.execute(sa.select(sa.func.count()).select_from(t.journal_entry)).scalar_one())

    kept = unit_connection()
    assert unit_connection() is kept  # not taken from the pool anew
    before = entries()
    with db.inline(units=True), pytest.raises(InsufficientBalance):
        savings.purchase(app.uow(), user, "USDT", D(1000))  # refused after its journal entry's INSERT
    with db.inline(units=True):
        savings.purchase(app.uow(), user, "USDT", D(1))  # committed on the same connection
    assert unit_connection() is kept
    assert entries() == before + 1  # the refused purchase's entry went with its rollback
    other = sqlite3.connect(str(app.engine.url.database), isolation_level=None)
    other.execute("BEGIN IMMEDIATE")  # another process's writer: the loop's BEGIN is refused
    with db.inline(units=True), pytest.raises(db.WriterElsewhere):
        savings.purchase(app.uow(), user, "USDT", D(1))
    other.execute("ROLLBACK")
    other.close()
    with db.inline(units=True):
        savings.purchase(app.uow(), user, "USDT", D(2))
    assert unit_connection() is not kept  # the refused BEGIN's connection was let go, a fresh one taken
    assert _held(app, user) == D(13)
    assert ledger_check.check(app.uow()) == []


async def _purchase(client: httpx.AsyncClient, key: keys.NewKey, amt: str) -> httpx.Response:
    body = _body(amt)
    return await client.post(PURCHASE, content=body, headers=signed_headers(key, "POST", PURCHASE, body))


def test_the_loop_is_told_when_a_writer_of_this_process_leaves_and_tries_another_after_a_pause(
    on_sqlite: Flexearn,
) -> None:
    app = on_sqlite
    saver(app, D(1))

    async def scenario() -> tuple[bool, bool, bool, list[bool]]:
        free_now = db.writable(app.engine, db.WriterBusy(), 0).done()  # nobody writes: at once
        with writing_in_a_slot(app) as leave:
            left = db.writable(app.engine, db.WriterBusy(), 0)
            await asyncio.sleep(0.05)
            waited = not left.done()
            leave.set()
            await asyncio.wait_for(left, 5)
        pauses = [db.writable(app.engine, db.WriterElsewhere(), tries) for tries in (0, 9)]
        first_after = [pause.done() for pause in pauses]  # none at once
        await asyncio.wait_for(pauses[0], 1)
        return free_now, waited, left.done(), [*first_after, pauses[1].done()]

    assert asyncio.run(scenario()) == (True, True, True, [False, False, False])  # the 9th: 20 ms


def test_a_purchase_behind_a_slots_write_waits_on_the_loop_and_commits_there(on_sqlite: Flexearn) -> None:
    """The loop does not hand a purchase to a slot because a slot of its own process writes: it
    awaits that write's end and commits the purchase on its own writer (before, the purchase went
    to a slot, and under load the next ones found the lock held by it, and so on: 10,000 purchases
    in, every one ran in a slot, at 3× the CPU)."""
    app = on_sqlite
    user = saver(app, D(10))
    master = generate_master_key()
    key = keys.create_key(app.uow(), SecretBox(master), user, "read,trade")
    served = create_app(Settings(master_key=master, demo=True), app)
    sent: list[str] = []

    async def scenario() -> tuple[httpx.Response, float]:
        transport = httpx.ASGITransport(app=served)
        async with httpx.AsyncClient(transport=transport, base_url="http://flexearn") as client:
            assert (await _purchase(client, key, "0.25")).json()["code"] == "0"  # sets the loop's writer up
            writer, _reader = db._LOOP.connections[app.engine]
            with writing_in_a_slot(app) as leave:
                writer.set_trace_callback(sent.append)
                buying = asyncio.ensure_future(_purchase(client, key, "1.25"))
                await asyncio.sleep(0.2)
                assert not buying.done()  # it waits for the slot's write
                released = time.monotonic()
                leave.set()
                bought = await buying
            writer.set_trace_callback(None)
            return bought, time.monotonic() - released

    bought, after = asyncio.run(scenario())
    assert (bought.status_code, bought.json()["code"]) == (200, "0")
    assert after < 2
    sent = [s for s in sent if not s.startswith("DELETE FROM seen_signature")]  # the window's prune
    assert sent[0] == "BEGIN IMMEDIATE"  # on the loop's writer, once the slot's write ended
    assert sent[-1] == "COMMIT"
    assert any(s.startswith("INSERT INTO seen_signature") for s in sent)
    assert _held(app, user) == D("11.5")
    assert ledger_check.check(app.uow()) == []


def test_a_purchase_behind_a_slots_write_that_outlasts_its_deadline_is_refused_as_busy(
    on_sqlite: Flexearn,
) -> None:
    app = on_sqlite
    user = saver(app, D(10))
    master = generate_master_key()
    key = keys.create_key(app.uow(), SecretBox(master), user, "read,trade")
    served = create_app(Settings(master_key=master, demo=True, api_timeout=0.5), app)

    async def scenario() -> tuple[httpx.Response, float]:
        transport = httpx.ASGITransport(app=served)
        async with httpx.AsyncClient(transport=transport, base_url="http://flexearn") as client:
            assert (await _purchase(client, key, "0.25")).json()["code"] == "0"
            with writing_in_a_slot(app):
                started = time.monotonic()
                refused = await _purchase(client, key, "1.25")
            return refused, time.monotonic() - started

    refused, took = asyncio.run(scenario())
    assert refused.status_code == 503
    assert took < 3
    assert _held(app, user) == D("10.25")  # the warm-up's only
    assert ledger_check.check(app.uow()) == []


def test_on_the_loop_work_after_a_commit_that_would_need_a_slot_is_refused_loudly(
    on_sqlite: Flexearn,
) -> None:
    app = on_sqlite
    user = saver(app, D(10))
    with db.inline(units=True):
        savings.purchase(app.uow(), user, "USDT", D(1))  # committed on the loop
        with pytest.raises(RuntimeError, match="after its COMMIT"):
            savings.purchase(app.uow(), user, "USDT", D(1))
        with pytest.raises(RuntimeError, match="after its COMMIT"), app.read_uow():
            pass  # a read-only unit of work: a slot's
    assert _held(app, user) == D(11)
    with db.inline(), pytest.raises(db.NotInline):  # without `units`, as before: to a slot
        savings.purchase(app.uow(), user, "USDT", D(1))
    assert _held(app, user) == D(11)


def test_served_purchases_beside_another_processs_writer_are_each_made_once(tmp_path: Path) -> None:
    """A real server; another process takes SQLite's write lock again and again while purchases
    arrive: those that meet it try again on the loop after a pause; every one is made once, the
    replayed ones refused, and the ledger balances."""
    path = str(tmp_path / "served.db")
    database_url = f"sqlite:///{path}"
    app = Flexearn(database_url)
    user = saver(app, D(1))
    master = generate_master_key()
    key = keys.create_key(app.uow(), SecretBox(master), user, "read,trade")
    stop = threading.Event()

    def hold_the_lock() -> None:
        other = sqlite3.connect(path, isolation_level=None, timeout=10)
        while not stop.is_set():
            other.execute("BEGIN IMMEDIATE")
            time.sleep(0.003)
            other.execute("ROLLBACK")
            time.sleep(0.002)
        other.close()

    unlimited = {"FLEXEARN_RATE_LIMIT_SCALE": "1000"}  # one key buys 140 times in a few seconds
    with (
        running_server(database_url, master, env=unlimited) as base,
        httpx.Client(base_url=base, timeout=30) as client,
    ):
        body = _body("0.01")
        signed = [signed_headers(key, "POST", PURCHASE, body) for _ in range(120)]  # each its own ms

        def post(headers: dict[str, str]) -> tuple[int, str]:
            answer = client.post(PURCHASE, content=body, headers=headers)
            return answer.status_code, answer.json()["code"]

        holder = threading.Thread(target=hold_the_lock)
        holder.start()
        try:
            with ThreadPoolExecutor(8) as pool:
                answers = list(pool.map(post, signed + signed[:20]))  # 20 sent twice
        finally:
            stop.set()
            holder.join()
    made = answers.count((200, "0"))
    assert made == 120
    assert answers.count((401, "50113")) == 20
    assert _held(app, user) == D(1) + D("0.01") * 120
    assert ledger_check.check(app.uow()) == []
    app.close()

