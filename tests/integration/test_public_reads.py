"""Public reads do not scan every position per request: the figures that need every position (the
supply curve, the next match's rate, what is lent and pending) are read once per change and kept
in memory, and move when a purchase or a settlement moves them.

Every statement sent to the database is recorded at the driver (SQLite's trace callback,
psycopg's cursors), so reads through a raw cursor count too.
"""

from __future__ import annotations

import random
import statistics
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
from sqlalchemy import event

from flexearn.adapters import tables as t
from flexearn.adapters.secrets import SecretBox, generate_master_key
from flexearn.api.app import create_app
from flexearn.bootstrap import Flexearn
from flexearn.config import Settings
from flexearn.domain.money import D, plain
from flexearn.services import keys, market_data, savings, stats
from tests.contract.okx_http import OkxHttp
from tests.helpers import T0, advance, lender, market_world
from tests.server import running_server

POSITIONS = 3_000  # more than FigureCache.exact_below: the slow path, recomputed at most 10× its cost
SUMMARY = "/api/v5/finance/savings/lending-rate-summary?ccy=USDT"
pytestmark = pytest.mark.filterwarnings("ignore:Using `httpx` with `starlette.testclient`")


@contextmanager
def statements(engine: sa.Engine) -> Iterator[list[str]]:
    """The text of every statement the engine's connections send while the block runs."""
    sent: list[str] = []

    def record(dbapi_connection: Any, _record: Any) -> None:
        if engine.dialect.name == "sqlite":
            dbapi_connection.set_trace_callback(sent.append)
            return
        for attr in ("cursor_factory", "server_cursor_factory"):
            base = getattr(dbapi_connection, attr)

            def execute(self: Any, query: Any, *args: Any, _base: Any = base, **kwargs: Any) -> Any:
                sent.append(str(query))
                return _base.execute(self, query, *args, **kwargs)

            setattr(dbapi_connection, attr, type("Recording", (base,), {"execute": execute}))

    engine.dispose()  # every connection from now on is a new one, recorded
    event.listen(engine, "connect", record)
    try:
        yield sent
    finally:
        event.remove(engine, "connect", record)
        engine.dispose()


def position_scans(sent: list[str]) -> int:
    return sum("from savings_position" in sql.lower() for sql in sent)


def many_lenders(app: Flexearn, n: int) -> None:
    """`n` positions in USDT at 1%–20%, written directly (the reads, not the purchases, are tested)."""
    rng = random.Random(11)
    with app.uow() as uow:
        users = [{"name": f"bulk{i}", "level": "normal", "created_at": T0} for i in range(n)]
        ids = uow.conn.execute(sa.insert(t.user).returning(t.user.c.id), users).scalars().all()
        uow.conn.execute(
            sa.insert(t.position),
            [
                {
                    "user_id": user_id,
                    "ccy": "USDT",
                    "amt": D(rng.randrange(10, 10_000)),
                    "loan": D(0),
                    "earnings": D(0),
                    "rate": Decimal(rng.randrange(10, 201)).scaleb(-3),
                    "rate_seq": 10**6 + i,
                    "rate_set_at": T0,
                }
                for i, user_id in enumerate(ids)
            ],
        )
        uow.commit()


@pytest.fixture
def crowded(database_url: str) -> Iterator[Flexearn]:
    app = Flexearn(database_url)
    market_world(app, "USDT", demand=D(2_000_000))
    many_lenders(app, POSITIONS)
    lender(app, "trader", "USDT", D(10), D("0.01"), deposit=D(10_000_000))
    advance(app)  # the first hour: matched, nothing earned yet
    yield app
    app.close()


def client(app: Flexearn) -> Any:
    from starlette.testclient import TestClient  # imported here: it warns on import, filtered above

    return TestClient(create_app(Settings(master_key=generate_master_key(), demo=True), app))


def until(read: Callable[[], Any], changed_from: Any, seconds: float = 10) -> Any:
    """`read()` once it differs from `changed_from` (a large figure may lag ~10× its cost)."""
    deadline = time.monotonic() + seconds
    while (value := read()) == changed_from and time.monotonic() < deadline:
        time.sleep(0.2)  # within the public limit (6 requests/s per IP)
    return value


def test_repeated_public_reads_scan_the_positions_once(crowded: Flexearn) -> None:
    http = client(crowded)
    with statements(crowded.engine) as sent:
        first = [http.get(SUMMARY).content, http.get("/dashboard/api/overview").content]
        assert position_scans(sent) == 1  # one read of the book serves the estimate and the sums
        for _ in range(5):
            assert [http.get(SUMMARY).content, http.get("/dashboard/api/overview").content] == first
            assert http.get("/dashboard/api/markets/USDT").status_code == 200
            assert http.get("/metrics").status_code == 200
        assert position_scans(sent) == 1


def test_a_cached_figure_moves_after_a_purchase_and_a_settlement(crowded: Flexearn) -> None:
    http = client(crowded)

    def est_rate() -> str:
        return str(http.get(SUMMARY).json()["data"][0]["estRate"])

    def pending() -> str:
        return str(http.get("/dashboard/api/overview").json()["markets"][0]["pending"])

    before = est_rate()
    assert before == plain(market_data.rate_summary(crowded.uow(), "USDT")[0].est_rate)
    # Enough at 1% to meet the whole demand: the next match clears at 1%.
    with crowded.read_uow() as uow:
        trader = uow.conn.execute(sa.select(t.user.c.id).where(t.user.c.name == "trader")).scalar_one()

    with statements(crowded.engine) as sent:
        savings.purchase(crowded.uow(), trader, "USDT", D(2_000_000))
        sent.clear()
        after = until(est_rate, before)
        assert (before, after) == (before, "0.01")
        assert position_scans(sent) == 1  # recomputed once, however often it was asked meanwhile
        assert after == plain(market_data.rate_summary(crowded.uow(), "USDT")[0].est_rate)

        pending_before = pending()
        advance(crowded)  # the hour's interest compounds into the positions: more is pending
        sent.clear()
        pending_after = until(pending, pending_before)
        assert D(pending_after) > D(pending_before)
        assert position_scans(sent) == 1
        assert pending_after == plain(stats.snapshot(crowded.uow()).currencies[0].pending)


def test_an_anonymous_poller_does_not_starve_a_trader_on_sqlite(tmp_path: Path) -> None:
    """The issue's finding, on a real server: a client polling the overview as fast as it can (four
    connections) while a signed user trades; on SQLite each poll used to hold the write lock for
    as long as it read every position, and the user's requests answered 503 after their budget."""
    url = f"sqlite:///{tmp_path / 'busy.db'}"
    app = Flexearn(url)
    market_world(app, "USDT", demand=D(2_000_000))
    many_lenders(app, 20_000)
    trader = lender(app, "trader", "USDT", D(10), D("0.01"), deposit=D(1_000_000))
    master = generate_master_key()
    key = keys.create_key(app.uow(), SecretBox(master), trader, "read,trade")
    app.close()
    with running_server(url, master, env={"FLEXEARN_DEMO": "1"}) as base:
        stop, polled = threading.Event(), Counter[int]()

        def poll() -> None:
            with httpx.Client(base_url=base, timeout=30) as http:
                while not stop.is_set():
                    polled[http.get("/dashboard/api/overview").status_code] += 1

        pollers = [threading.Thread(target=poll) for _ in range(4)]
        for thread in pollers:
            thread.start()
        okx, answers, seconds = OkxHttp(base, key), Counter[tuple[int, str]](), []
        try:
            time.sleep(1)  # the pollers are at it
            for i in range(30):  # bounded: 30 purchases and balance reads, within the 6/s limits
                started = time.monotonic()
                if i % 2:
                    answer = okx.get("/api/v5/finance/savings/balance?ccy=USDT")
                else:
                    body = {"ccy": "USDT", "amt": "1", "side": "purchase", "rate": "0.01"}
                    answer = okx.post("/api/v5/finance/savings/purchase-redempt", body)
                seconds.append(time.monotonic() - started)
                answers[answer.status_code, answer.json()["code"]] += 1
                time.sleep(0.2)
        finally:
            stop.set()
            for thread in pollers:
                thread.join(60)
    assert answers == {(200, "0"): 30}, f"the trader got {dict(answers)} while the pollers got {dict(polled)}"
    assert statistics.median(seconds) < 0.5
    assert polled[200] > 0
