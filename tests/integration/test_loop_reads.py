"""On PostgreSQL, a façade's read runs on the event loop (`api/facade._Endpoint._awaited`,
`adapters/loop_postgres.py`): its statement and its signature's claim go as one query on one of the
loop's own connections, awaited — no pooled connection, no thread. A handler that needs a unit of
work runs in a slot; a connection that died while idle is replaced; a claim that waits past the
request's budget is answered "unavailable" within it, and its connection is not reused."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from typing import Any

import httpx
import psycopg
import pytest
import sqlalchemy as sa
from sqlalchemy import event

from flexearn.adapters import db, loop_postgres
from flexearn.adapters import tables as t
from flexearn.adapters.secrets import SecretBox, generate_master_key
from flexearn.api.app import create_app
from flexearn.api.okx.auth import parse_timestamp
from flexearn.bootstrap import Flexearn
from flexearn.config import Settings
from flexearn.domain.money import D
from flexearn.services import keys, replays
from tests.contract.okx_http import signed_headers
from tests.helpers import saver

pytestmark = pytest.mark.postgres

BALANCE = "/api/v5/finance/savings/balance"
HISTORY = "/api/v5/finance/savings/lending-history"


@pytest.fixture
def on_postgres(postgres_url: str) -> Iterator[Flexearn]:
    instance = Flexearn(postgres_url)
    yield instance
    instance.close()


def _served(app: Flexearn, **settings: Any) -> tuple[Any, keys.NewKey]:
    user = saver(app, D("12.5"))
    master = generate_master_key()
    key = keys.create_key(app.uow(), SecretBox(master), user, "read")
    return create_app(Settings(master_key=master, demo=True, **settings), app), key


def _loop_pids() -> list[int]:
    """The backends of the running loop's idle connections."""
    (connections,) = loop_postgres._LOOPS[asyncio.get_running_loop()].values()
    return [connection.info.backend_pid for connection, _ in connections._idle]


@contextmanager
def _checkouts(app: Flexearn) -> Iterator[list[object]]:
    """What the engine's pool hands out meanwhile."""
    seen: list[object] = []

    def checkout(*args: object) -> None:
        seen.append(args)

    event.listen(app.engine, "checkout", checkout)
    try:
        yield seen
    finally:
        event.remove(app.engine, "checkout", checkout)


def _claims(app: Flexearn) -> int:
    with app.engine.connect() as conn:
        return int(conn.execute(sa.select(sa.func.count()).select_from(t.seen_signature)).scalar_one())


def test_a_signed_read_is_answered_on_the_loop_its_claim_in_the_same_query(on_postgres: Flexearn) -> None:
    app = on_postgres
    served, key = _served(app)

    async def scenario() -> tuple[list[httpx.Response], list[object], list[int], str, int]:
        transport = httpx.ASGITransport(app=served)
        async with httpx.AsyncClient(transport=transport, base_url="http://flexearn") as client:
            # the key and the clock are loaded (in a slot) and the loop's connection opened now
            warm = await client.get(BALANCE, headers=signed_headers(key, "GET", BALANCE))
            claims = _claims(app)
            signed = signed_headers(key, "GET", BALANCE)
            with _checkouts(app) as checkouts:
                read = await client.get(BALANCE, headers=signed)
            claimed = _claims(app) - claims
            pids = _loop_pids()
            with app.engine.connect() as conn:
                last = conn.execute(
                    sa.text("SELECT query FROM pg_stat_activity WHERE pid = :pid"), {"pid": pids[0]}
                ).scalar_one()
            replayed = await client.get(BALANCE, headers=signed)
            await loop_postgres.close()
            return [warm, read, replayed], checkouts, pids, last, claimed

    (warm, read, replayed), checkouts, pids, last, claimed = asyncio.run(scenario())
    assert warm.json()["code"] == "0"
    assert (read.status_code, read.json()["code"]) == (200, "0")
    (position,) = read.json()["data"]
    assert (position["ccy"], position["amt"]) == ("USDT", "12.5")
    assert checkouts == []  # no pooled connection: the loop's own
    assert len(pids) == 1  # one connection, kept for the next request
    assert last.startswith("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")  # the read, then
    assert "INSERT INTO seen_signature" in last  # the claim, in the same query
    assert claimed == 1
    assert (replayed.status_code, replayed.json()["code"]) == (401, "50113")


def test_a_read_that_needs_a_unit_of_work_runs_in_a_slot_from_then_on(on_postgres: Flexearn) -> None:
    app = on_postgres
    served, key = _served(app)

    async def scenario() -> tuple[list[httpx.Response], list[object], int]:
        transport = httpx.ASGITransport(app=served)
        async with httpx.AsyncClient(transport=transport, base_url="http://flexearn") as client:
            first = await client.get(HISTORY, headers=signed_headers(key, "GET", HISTORY))
            claims = _claims(app)
            with _checkouts(app) as checkouts:
                second = await client.get(HISTORY, headers=signed_headers(key, "GET", HISTORY))
            claimed = _claims(app) - claims
            await loop_postgres.close()
            return [first, second], checkouts, claimed

    answers, checkouts, claimed = asyncio.run(scenario())
    for answer in answers:
        assert (answer.status_code, answer.json()["code"]) == (200, "0")
        assert answer.json()["data"] == []  # nothing lent yet
    assert checkouts  # the second went to a slot at once, its unit of work on a pooled connection
    assert claimed == 1  # and its signature was claimed there, once


def test_a_loop_connection_that_died_while_idle_is_replaced(
    on_postgres: Flexearn, monkeypatch: pytest.MonkeyPatch
) -> None:
    app = on_postgres
    served, key = _served(app)
    monkeypatch.setattr(db, "PING_IDLE_S", 0.0)  # every idle connection is pinged before use

    async def scenario() -> tuple[list[httpx.Response], list[int], list[int]]:
        transport = httpx.ASGITransport(app=served)
        async with httpx.AsyncClient(transport=transport, base_url="http://flexearn") as client:
            first = await client.get(BALANCE, headers=signed_headers(key, "GET", BALANCE))
            before = _loop_pids()
            with app.engine.connect() as conn:  # as a server restart does to it
                conn.execute(sa.text("SELECT pg_terminate_backend(:pid)"), {"pid": before[0]})
            time.sleep(0.1)  # the backend is gone
            second = await client.get(BALANCE, headers=signed_headers(key, "GET", BALANCE))
            after = _loop_pids()
            await loop_postgres.close()
            return [first, second], before, after

    answers, before, after = asyncio.run(scenario())
    assert [(a.status_code, a.json()["code"]) for a in answers] == [(200, "0"), (200, "0")]
    assert len(after) == 1
    assert after != before


def test_a_claim_that_waits_past_the_budget_is_answered_unavailable_in_time(on_postgres: Flexearn) -> None:
    """Another transaction holds the signature's row (uncommitted): the read's claim waits for it
    until the request's budget runs out (the lock timeout in the query), then the request is
    answered "unavailable". The database ended the wait itself: its connection, rolled back, serves
    the next read."""
    app = on_postgres
    served, key = _served(app, api_timeout=0.5)

    async def scenario() -> tuple[httpx.Response, float, list[int], list[int], httpx.Response]:
        transport = httpx.ASGITransport(app=served)
        async with httpx.AsyncClient(transport=transport, base_url="http://flexearn") as client:
            await client.get(BALANCE, headers=signed_headers(key, "GET", BALANCE))
            kept = _loop_pids()
            signed = signed_headers(key, "GET", BALANCE)
            holder = app.engine.connect()
            holder.begin()
            sent = parse_timestamp(signed["OK-ACCESS-TIMESTAMP"])
            row = {"digest": replays.digest(signed["OK-ACCESS-SIGN"], sent), "expires_at": 2**62}
            holder.execute(sa.insert(t.seen_signature).values(row))
            started = time.monotonic()
            held = await client.get(BALANCE, headers=signed)
            waited = time.monotonic() - started
            holder.rollback()
            holder.close()
            left = _loop_pids()
            after = await client.get(BALANCE, headers=signed_headers(key, "GET", BALANCE))
            await loop_postgres.close()
            return held, waited, kept, left, after

    held, waited, kept, left, after = asyncio.run(scenario())
    assert (held.status_code, held.json()["code"]) == (503, "50001")
    assert 0.4 < waited < 1.5  # the budget (0.5 s), not the lock's holder
    assert len(kept) == 1
    assert left == kept  # the connection that waited, rolled back
    assert (after.status_code, after.json()["code"]) == (200, "0")


NOW_MS = 1_764_000_000_000  # when the signatures of `_reads_and_claims` were signed and claimed


def _reads_and_claims(app: Flexearn, reads: list[str], signatures: list[str]) -> list[list[db.Statement]]:
    """For each (read, signature): the read (read-only), then the signature's claim, as
    `unit_of_work.read_alone` joins them."""
    now = NOW_MS
    return [
        [(read, {}, True), (*replays.Claim(app.engine, signature, now, now, now + 60_000).statement(), False)]
        for read, signature in zip(reads, signatures, strict=True)
    ]


def _in_one_turn(
    app: Flexearn,
    calls: list[list[db.Statement]],
    monkeypatch: pytest.MonkeyPatch,
    budgets: list[float] | None = None,
) -> tuple[list[Any], int, list[int]]:
    """Each call's `in_turn` on the loop, all begun in one turn of it (each with its budget in
    seconds, 10 by default): what each returned (or raised), how many queries were sent, and the
    loop's idle connections afterwards."""
    sent = [0]
    run = loop_postgres._Batch.run

    async def counted(connection: Any, batch_calls: Any) -> Any:
        sent[0] += 1
        return await run(connection, batch_calls)

    monkeypatch.setattr(loop_postgres._Batch, "run", staticmethod(counted))

    async def scenario() -> tuple[list[Any], list[int]]:
        connections = loop_postgres._connections(app.engine)
        turns = []
        for statements, budget in zip(calls, budgets or [10.0] * len(calls), strict=True):
            until = time.monotonic() + budget
            turns.append(connections.in_turn(until, db.Deadline(until), statements, []))
        found = await asyncio.gather(*turns, return_exceptions=True)
        pids = _loop_pids()
        await loop_postgres.close()
        return found, pids

    found, pids = asyncio.run(scenario())
    return found, sent[0], pids


def test_the_reads_of_one_turn_go_as_one_query_their_claims_in_one_transaction(
    on_postgres: Flexearn, monkeypatch: pytest.MonkeyPatch
) -> None:
    app = on_postgres
    signatures = [f"signature {i}" for i in range(8)] + ["signature 3"]  # the last, a replay
    reads = [f"SELECT {i} AS n" for i in range(9)]
    claims = _claims(app)
    found, sent, pids = _in_one_turn(app, _reads_and_claims(app, reads, signatures), monkeypatch)
    assert sent == 1
    assert [rows[0] for rows in found] == [[(i,)] for i in range(9)]  # each read's own rows
    assert [bool(rows[1]) for rows in found] == [True] * 8 + [False]  # the replay found the first
    assert _claims(app) - claims == 8
    assert len(pids) == 1  # one connection, kept


def _ms(setting: str) -> int:
    """A timeout as PostgreSQL shows it ("1900ms", "2s") in milliseconds."""
    if setting.endswith("ms"):
        return int(setting.removesuffix("ms"))
    return int(setting.removesuffix("s")) * 1000


def _sent(monkeypatch: pytest.MonkeyPatch, change: Callable[[str], str] = lambda script: script) -> list[str]:
    """The queries `_Batch.run` sends from now on (as `change` makes them)."""
    sent: list[str] = []
    query = loop_postgres._Batch.query

    def kept(quote: Any, calls: Any) -> Any:
        script, owners, places = query(quote, calls)
        sent.append(change(script))
        return sent[-1], owners, places

    monkeypatch.setattr(loop_postgres._Batch, "query", staticmethod(kept))
    return sent


def test_the_reads_of_one_turn_share_one_snapshot_each_under_its_own_deadline(
    on_postgres: Flexearn, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The turn's reads go in one read-only transaction (one BEGIN and COMMIT for them all), and
    each request's read is bounded by its own budget's statement timeout (cut down to a multiple
    of `TIMEOUT_STEP_MS`), not another's; calls with the same timeout share its setting."""
    app = on_postgres
    read = (
        "SELECT virtualxid, current_setting('transaction_read_only'), current_setting('statement_timeout')"
        " FROM pg_locks WHERE locktype = 'virtualxid' AND pid = pg_backend_pid()"
    )  # the transaction's virtual id: a new one in each transaction, even a read-only one
    budgets = [2.0, 9.0, 5.0, 9.0]
    calls = _reads_and_claims(app, [read] * 4, [f"snapshot {i}" for i in range(4)])
    sent = _sent(monkeypatch)
    found, _, _ = _in_one_turn(app, calls, monkeypatch, budgets)
    assert len(sent) == 1
    transaction = found[0][0][0][0]
    timeouts = []
    for (rows, _), budget in zip(found, budgets, strict=True):
        (row,) = rows
        assert row[0] == transaction
        assert row[1] == "on"
        timeouts.append(_ms(row[2]))
        assert timeouts[-1] % loop_postgres.TIMEOUT_STEP_MS == 0
        assert budget * 1000 - 1000 < timeouts[-1] < budget * 1000
    distinct = len(set(timeouts))  # 3, or 4 if the two 9 s budgets fell either side of a step
    assert sent[0].count("set_config('statement_timeout'") == distinct + 1  # and the claims' own


def test_a_read_that_fails_where_its_timeouts_were_not_set_again_is_its_request_s_alone(
    on_postgres: Flexearn, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Calls of one budget share one setting of the timeouts: the error of a read after another's
    setting is still its own request's, and the rest are sent again under their own timeouts."""
    app = on_postgres
    budgets = [2.0, 9.0, 5.0, 9.0, 5.0, 2.0]
    reads = [f"SELECT {i} AS n, current_setting('statement_timeout') AS t" for i in range(6)]
    reads[3] = "SELECT 1 / 0 AS n"  # a 9 s call's read
    calls = _reads_and_claims(app, reads, [f"budget {i}" for i in range(6)])
    calls[5] = calls[5][:1]  # a read alone
    claims = _claims(app)
    found, sent, pids = _in_one_turn(app, calls, monkeypatch, budgets)
    assert sent == 2
    assert isinstance(found[3], psycopg.errors.DivisionByZero)
    for i in (0, 1, 2, 4, 5):
        ((n, timeout),) = found[i][0]
        assert n == i
        assert budgets[i] * 1000 - 1000 < _ms(timeout) < budgets[i] * 1000
        assert len(found[i]) == (1 if i == 5 else 2)
    assert _claims(app) - claims == 4
    assert len(pids) == 1


def test_a_failed_commit_of_the_reads_fails_the_writers_and_answers_the_readers(
    on_postgres: Flexearn, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Had the reads' own COMMIT failed (a statement refused in its place here), the requests that
    only read have their rows, and those that write get the error: nothing of theirs is committed."""
    app = on_postgres
    _sent(monkeypatch, lambda script: script.replace("; COMMIT; ", "; SELECT 1 / 0; ", 1))
    calls = _reads_and_claims(app, [f"SELECT {i} AS n" for i in range(3)], [f"commit {i}" for i in range(3)])
    calls[1] = calls[1][:1]  # a read alone
    claims = _claims(app)
    found, sent, pids = _in_one_turn(app, calls, monkeypatch)
    assert sent == 1
    assert found[1] == [[(1,)]]
    assert isinstance(found[0], psycopg.errors.DivisionByZero)
    assert isinstance(found[2], psycopg.errors.DivisionByZero)
    assert _claims(app) == claims
    assert len(pids) == 1


def test_a_statement_that_fails_is_its_requests_alone_the_others_are_sent_again(
    on_postgres: Flexearn, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A read that fails ends the query where it stands: its request gets the error, and the others
    (reads done, claims not committed) are sent again without it; a claim that fails likewise."""
    app = on_postgres
    reads = [f"SELECT {i} AS n" for i in range(6)]
    reads[2] = "SELECT 1 / 0 AS n"  # division by zero, in the third request's read
    calls = _reads_and_claims(app, reads, [f"read {i}" for i in range(6)])
    calls[4][1] = ("SELECT 1 / (:zero - :zero)", {"zero": 7}, False)  # the fifth request's write
    claims = _claims(app)
    found, sent, pids = _in_one_turn(app, calls, monkeypatch)
    assert sent == 3  # all; then without the third; then without the fifth
    assert isinstance(found[2], psycopg.errors.DivisionByZero)
    assert isinstance(found[4], psycopg.errors.DivisionByZero)
    for i in (0, 1, 3, 5):
        assert found[i] == [[(i,)], [(replays.digest(f"read {i}", NOW_MS),)]]  # read once, claimed once
    assert _claims(app) - claims == 4  # the four claims, each committed once
    assert len(pids) == 1  # the connection, rolled back after each failure, kept


def test_two_processes_turns_claiming_the_same_signatures_do_not_deadlock(on_postgres: Flexearn) -> None:
    """Two API processes' turns claim the same two signatures, listed in opposite orders. A third
    transaction holds both rows until both turns wait for it, then lets go: each turn takes the
    rows' locks in one order of the writes' own (`loop_postgres._order`), so one waits for the
    other, which wins both; the other finds them claimed. In the calls' order each would take one
    row and wait for the other's: PostgreSQL would fail one of them as a deadlock after a second."""
    app = on_postgres
    claims = [replays.Claim(app.engine, f"replayed {name}", NOW_MS, NOW_MS, NOW_MS + 60_000) for name in "ab"]
    statements = [(*claim.statement(), False) for claim in claims]

    def turn(order: list[db.Statement]) -> list[list[Any]]:
        async def scenario() -> list[list[Any]]:
            until = time.monotonic() + 20
            connections = loop_postgres._connections(app.engine)
            try:
                return await connections.in_turn(until, db.Deadline(until), order, [])
            finally:
                await loop_postgres.close()

        return asyncio.run(scenario())

    def waiting() -> int:
        with app.engine.connect() as conn:
            return int(
                conn.execute(
                    sa.text(
                        "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock'"
                        " AND query LIKE '%INSERT INTO seen_signature%'"
                    )
                ).scalar_one()
            )

    holder = app.engine.connect()
    holder.begin()
    rows = [{"digest": params["digest"], "expires_at": 2**62} for _, params, _ in statements]
    holder.execute(sa.insert(t.seen_signature), rows)
    with ThreadPoolExecutor(2) as pool:
        turns = [pool.submit(turn, statements), pool.submit(turn, statements[::-1])]
        deadline = time.monotonic() + 10
        while waiting() < 2 and time.monotonic() < deadline:
            time.sleep(0.02)
        both_waited = waiting() == 2
        holder.rollback()
        holder.close()
        found = [future.result(timeout=20) for future in turns]
    assert both_waited  # the case the test is about: both turns at their first row's lock
    first, second = found[0], found[1][::-1]  # each as [claim a, claim b]
    assert sorted([first, second], key=lambda rows: not rows[0]) == [
        [[(replays.digest("replayed a", NOW_MS),)], [(replays.digest("replayed b", NOW_MS),)]],  # won both
        [[], []],  # found both claimed
    ]


def test_a_worker_that_stops_closes_its_loops_connections(on_postgres: Flexearn) -> None:
    """At the ASGI lifespan's shutdown (a granian worker stopping) the loop's idle connections are
    closed by the worker: their backends end then, not when the process is gone."""
    app = on_postgres
    served, key = _served(app)

    def alive(pids: list[int]) -> int:
        with app.engine.connect() as conn:
            found = conn.execute(
                sa.text("SELECT count(*) FROM pg_stat_activity WHERE pid = ANY(:pids)"), {"pids": pids}
            )
            return int(found.scalar_one())

    async def scenario() -> tuple[httpx.Response, list[int], int, list[str], int]:
        events: asyncio.Queue[dict[str, str]] = asyncio.Queue()
        said: list[str] = []

        async def send(message: dict[str, Any]) -> None:
            said.append(message["type"])

        await events.put({"type": "lifespan.startup"})
        scope = {"type": "lifespan", "asgi": {"version": "3.0"}}
        life = asyncio.ensure_future(served(scope, events.get, send))
        transport = httpx.ASGITransport(app=served)
        async with httpx.AsyncClient(transport=transport, base_url="http://flexearn") as client:
            read = await client.get(BALANCE, headers=signed_headers(key, "GET", BALANCE))
        pids = _loop_pids()
        before = alive(pids)
        await events.put({"type": "lifespan.shutdown"})
        await life
        until = time.monotonic() + 5
        while alive(pids) and time.monotonic() < until:  # a backend ends just after its client left
            await asyncio.sleep(0.02)
        return read, pids, before, said, alive(pids)

    read, pids, before, said, after = asyncio.run(scenario())
    assert read.json()["code"] == "0"
    assert len(pids) == 1
    assert before == 1
    assert said == ["lifespan.startup.complete", "lifespan.shutdown.complete"]
    assert after == 0
