"""On PostgreSQL, a façade's trade runs on the event loop (`api/facade._Endpoint._awaited` with
`units`, `adapters/loop_postgres.units_engine`): its one unit of work on a connection of the loop's
own, SQLAlchemy's asynchronous psycopg dialect awaited in a greenlet — no thread, no pooled
connection of the engine — with its signature's claim as its first statement. Past its budget it is
answered as a slot's thread is (`Admission._within`): "unavailable" with nothing written, its slot
held until the database lets go of it. While its market's hour is being settled it runs in a slot,
where it may wait."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import threading
import time
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import httpx
import psycopg
import pytest
import sqlalchemy as sa
from sqlalchemy import event

from flexearn.adapters import loop_postgres
from flexearn.adapters import repository as repo
from flexearn.adapters import tables as t
from flexearn.adapters.secrets import SecretBox, generate_master_key
from flexearn.api.app import create_app
from flexearn.bootstrap import Flexearn
from flexearn.config import Settings
from flexearn.domain.money import D
from flexearn.services import gate, keys, ledger_check, savings
from tests.contract.okx_http import signed_headers
from tests.helpers import saver

pytestmark = pytest.mark.postgres

PURCHASE = "/api/v5/finance/savings/purchase-redempt"
MASTER = generate_master_key()


@pytest.fixture
def on_postgres(postgres_url: str) -> Iterator[Flexearn]:
    instance = Flexearn(postgres_url)
    yield instance
    instance.close()


def _served(app: Flexearn, **settings: Any) -> tuple[Any, keys.NewKey, int]:
    user = saver(app, D("12.5"))
    key = keys.create_key(app.uow(), SecretBox(MASTER), user, "read,trade")
    return create_app(Settings(master_key=MASTER, demo=True, **settings), app), key, user


def _body(amt: str) -> str:
    return json.dumps({"ccy": "USDT", "amt": amt, "side": "purchase"})


async def _purchase(
    client: httpx.AsyncClient, key: keys.NewKey, amt: str, headers: dict[str, str] | None = None
) -> httpx.Response:
    body = _body(amt)
    signed = headers or signed_headers(key, "POST", PURCHASE, body)
    return await client.post(PURCHASE, content=body, headers=signed)


def _held(app: Flexearn, user: int) -> Decimal:
    (position,) = savings.positions(app.read_uow(), user, "USDT")
    return position.amt


def _entries(app: Flexearn) -> int:
    with app.engine.connect() as conn:
        return int(conn.execute(sa.select(sa.func.count()).select_from(t.journal_entry)).scalar_one())


class _Seen:
    """What a pool hands out meanwhile: the checkouts and the backends of their connections."""

    def __init__(self) -> None:
        self.checkouts: list[int] = []

    def __call__(self, dbapi_connection: Any, *_: Any) -> None:
        driver = getattr(dbapi_connection, "driver_connection", dbapi_connection)  # adapted or not
        self.checkouts.append(driver.info.backend_pid)


def test_a_purchase_commits_on_the_loops_own_connection_its_claim_first_its_writes_with_commit(
    on_postgres: Flexearn, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A purchase on the loop: three queries (its BEGIN, timeouts, claim and reads; its journal
    entry and locked accounts; its held writes and COMMIT), none through the engine's pool. The
    same signature sent to another process (another app: its own replay window in memory) reaches
    the database, where its claim — the first statement of its first query — is refused, and the
    purchase rolls back before it has sent a write."""
    app = on_postgres
    served, key, user = _served(app)
    other = create_app(Settings(master_key=MASTER, demo=True), app)  # another process
    pooled = _Seen()
    sent: list[str] = []
    execute = psycopg.AsyncCursor.execute

    async def spy(cursor: Any, query: Any, *args: Any, **kwargs: Any) -> Any:
        sent.append(query if isinstance(query, str) else bytes(query).decode())
        return await execute(cursor, query, *args, **kwargs)

    async def scenario() -> tuple[httpx.Response, list[str], httpx.Response, list[str], int]:
        async with (
            httpx.AsyncClient(transport=httpx.ASGITransport(app=served), base_url="http://a") as client,
            httpx.AsyncClient(transport=httpx.ASGITransport(app=other), base_url="http://b") as elsewhere,
        ):
            for warm in (client, elsewhere):  # the key, the clock, the loop's engine
                assert (await _purchase(warm, key, "0.25")).json()["code"] == "0"
            body = _body("1.25")
            signed = signed_headers(key, "POST", PURCHASE, body)
            monkeypatch.setattr(psycopg.AsyncCursor, "execute", spy)
            event.listen(app.engine, "checkout", pooled)
            bought = await _purchase(client, key, "1.25", signed)
            event.remove(app.engine, "checkout", pooled)
            bought_sent = sent[:]
            entries = _entries(app)
            sent.clear()
            replayed = await _purchase(elsewhere, key, "1.25", signed)
            monkeypatch.undo()
            written = _entries(app) - entries
            await loop_postgres.close()
            return bought, bought_sent, replayed, sent, written

    bought, bought_sent, replayed, replay_sent, written = asyncio.run(scenario())
    assert (bought.status_code, bought.json()["code"]) == (200, "0")
    assert pooled.checkouts == []  # no connection of the engine's pool: no slot ran it
    assert len(bought_sent) == 3
    first = [statement.strip() for statement in bought_sent[0].split(";")]
    assert first[0] == "BEGIN"
    assert "statement_timeout" in first[1]
    assert first[2].startswith("INSERT INTO seen_signature")  # the claim, first
    assert bought_sent[-1].rstrip().endswith("COMMIT")  # the held writes, with the COMMIT
    assert (replayed.status_code, replayed.json()["code"]) == (401, "50113")  # refused: one purchase
    # its first query, refused there and rolled back; then, as everywhere, the claim alone (refused)
    assert replay_sent[0].split(";")[2].strip().startswith("INSERT INTO seen_signature")
    assert not any("journal" in query for query in replay_sent)
    assert written == 0
    assert _held(app, user) == D("14.25")  # 12.5 + 0.25 + 0.25 + 1.25, once
    assert ledger_check.check(app.uow()) == []


def test_a_purchase_waiting_for_a_lock_past_its_budget_is_unavailable_and_writes_nothing(
    on_postgres: Flexearn,
) -> None:
    """The market's lock is held by another transaction: the purchase's share of it waits until the
    budget runs out (the lock timeout sent with its BEGIN), then the request is answered
    "unavailable"; its connection, rolled back, serves the next purchase."""
    app = on_postgres
    served, key, user = _served(app, api_timeout=0.5)

    async def scenario() -> tuple[httpx.Response, float, httpx.Response]:
        transport = httpx.ASGITransport(app=served)
        async with httpx.AsyncClient(transport=transport, base_url="http://flexearn") as client:
            assert (await _purchase(client, key, "0.25")).json()["code"] == "0"
            holder = app.engine.connect()
            holder.begin()
            repo.lock_market(holder, "USDT", "update")  # as a settlement of the market holds it
            started = time.monotonic()
            held = await _purchase(client, key, "1")
            waited = time.monotonic() - started
            holder.rollback()
            holder.close()
            after = await _purchase(client, key, "0.25")
            await loop_postgres.close()
            return held, waited, after

    held, waited, after = asyncio.run(scenario())
    assert (held.status_code, held.json()["code"]) == (503, "50001")
    assert 0.4 < waited < 1.5  # the budget (0.5 s), not the lock's holder
    assert (after.status_code, after.json()["code"]) == (200, "0")
    assert _held(app, user) == D(13)  # 12.5 + 0.25 + 0.25: the refused one wrote nothing
    assert ledger_check.check(app.uow()) == []


def test_a_purchase_whose_server_stops_answering_is_unavailable_at_its_budget_and_keeps_its_slot(
    on_postgres: Flexearn,
) -> None:
    """The backend of the loop's connection is stopped (SIGSTOP: it neither answers nor times out):
    the request is answered "unavailable" at its budget and grace, while its unit of work stays with
    the database, holding the process's one slot (the next request is refused at once), as a slot's
    thread would. When the backend runs again, the unit may no longer commit: it rolls back, nothing
    is written, and the slot is free again."""
    app = on_postgres
    served, key, user = _served(app, api_timeout=0.5, api_db_slots=1, api_queue_timeout=0.1)
    units = _Seen()

    async def scenario() -> tuple[httpx.Response, float, httpx.Response, float, list[str]]:
        transport = httpx.ASGITransport(app=served)
        async with httpx.AsyncClient(transport=transport, base_url="http://flexearn") as client:
            event.listen(loop_postgres.units_engine(app.engine), "checkout", units)
            assert (await _purchase(client, key, "0.25")).json()["code"] == "0"
            (pid,) = units.checkouts
            os.kill(pid, signal.SIGSTOP)
            resume = threading.Timer(10, os.kill, (pid, signal.SIGCONT))  # whatever happens here
            resume.start()
            try:
                started = time.monotonic()
                stuck = await _purchase(client, key, "1")
                waited = time.monotonic() - started
                started = time.monotonic()
                queued = await _purchase(client, key, "2")
                refused_in = time.monotonic() - started
            finally:
                os.kill(pid, signal.SIGCONT)
                resume.cancel()
            codes = []  # the slot frees once the backend has answered and the unit rolled back
            until = time.monotonic() + 5
            while not codes or (codes[-1] != "0" and time.monotonic() < until):
                codes.append((await _purchase(client, key, "0.25")).json()["code"])
                await asyncio.sleep(0.05)
            await loop_postgres.close()
            return stuck, waited, queued, refused_in, codes

    stuck, waited, queued, refused_in, codes = asyncio.run(scenario())
    assert (stuck.status_code, stuck.json()["code"]) == (503, "50001")
    assert 0.9 < waited < 2.5  # the budget (0.5 s) and its grace (0.5 s)
    assert (queued.status_code, queued.json()["code"]) == (503, "50001")
    assert refused_in < 0.5  # no slot within the queue's 0.1 s: the stuck unit holds it
    assert codes[-1] == "0"
    assert set(codes[:-1]) <= {"50001"}
    assert _held(app, user) == D(13)  # 12.5 + 0.25 + 0.25: the stopped one wrote nothing
    assert ledger_check.check(app.uow()) == []


def test_a_purchase_during_an_open_hour_goes_to_a_slot_that_time_and_waits_there(
    on_postgres: Flexearn,
) -> None:
    """While the market's hour is being settled in ranges, the loop would have to poll: the purchase
    runs in a slot, which waits for the hour to close (here: it stays open, so the budget runs out:
    "unavailable", nothing written); the next purchase is on the loop again."""
    app = on_postgres
    served, key, user = _served(app, api_timeout=0.5)
    pooled, units = _Seen(), _Seen()

    async def scenario() -> tuple[httpx.Response, int, int, httpx.Response, int, int]:
        transport = httpx.ASGITransport(app=served)
        async with httpx.AsyncClient(transport=transport, base_url="http://flexearn") as client:
            assert (await _purchase(client, key, "0.25")).json()["code"] == "0"
            event.listen(app.engine, "checkout", pooled)
            event.listen(loop_postgres.units_engine(app.engine), "checkout", units)
            opened = {"kind": gate.HOUR, "key": "USDT", "period": 1, "plan": "{}", "opened_at": 0}
            with app.engine.begin() as conn:
                conn.execute(sa.insert(t.settlement_open).values(opened))
            refused = await _purchase(client, key, "1")
            in_slot, on_loop = len(pooled.checkouts), len(units.checkouts)
            with app.engine.begin() as conn:
                conn.execute(sa.delete(t.settlement_open))
            pooled.checkouts.clear()
            units.checkouts.clear()
            after = await _purchase(client, key, "0.25")
            event.remove(app.engine, "checkout", pooled)
            await loop_postgres.close()
            return refused, in_slot, on_loop, after, len(pooled.checkouts), len(units.checkouts)

    refused, in_slot, on_loop, after, in_slot_after, on_loop_after = asyncio.run(scenario())
    assert (refused.status_code, refused.json()["code"]) == (503, "50001")
    assert on_loop == 1  # tried on the loop first, refused there before writing anything
    assert in_slot >= 1  # then in a slot, which polled until the budget ran out
    assert (after.status_code, after.json()["code"]) == (200, "0")
    assert (in_slot_after, on_loop_after) == (0, 1)  # on the loop again
    assert _held(app, user) == D(13)
    assert ledger_check.check(app.uow()) == []


def test_a_worker_that_stops_closes_its_loops_trade_connections(on_postgres: Flexearn) -> None:
    app = on_postgres
    served, key, _ = _served(app)
    units = _Seen()

    def alive(pids: list[int]) -> int:
        with app.engine.connect() as conn:
            found = conn.execute(
                sa.text("SELECT count(*) FROM pg_stat_activity WHERE pid = ANY(:pids)"), {"pids": pids}
            )
            return int(found.scalar_one())

    async def scenario() -> tuple[int, int]:
        transport = httpx.ASGITransport(app=served)
        async with httpx.AsyncClient(transport=transport, base_url="http://flexearn") as client:
            event.listen(loop_postgres.units_engine(app.engine), "checkout", units)
            assert (await _purchase(client, key, "0.25")).json()["code"] == "0"
        before = alive(units.checkouts)
        await loop_postgres.close()
        until = time.monotonic() + 5
        while alive(units.checkouts) and time.monotonic() < until:  # it ends just after its client left
            await asyncio.sleep(0.02)
        return before, alive(units.checkouts)

    before, after = asyncio.run(scenario())
    assert (before, after) == (1, 0)
