"""The `flexearn` command end to end, as a subprocess on a real database."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from alembic.script import ScriptDirectory

from flexearn.adapters import clock as clocks
from flexearn.adapters import tables as t
from flexearn.adapters.db import MIGRATIONS, make_engine
from flexearn.adapters.secrets import generate_master_key
from flexearn.services.leader import current_holder
from tests.server import free_port, running_server

FLEXEARN = shutil.which("flexearn", path=str(Path(sys.executable).parent)) or "flexearn"


def run(db: str, *args: str) -> Any:
    """Run a command that must succeed; its JSON output."""
    proc = flexearn(db, *args)
    assert proc.returncode == 0, proc.stderr + proc.stdout
    return json.loads(proc.stdout)


def flexearn(db: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [FLEXEARN, *args, "--db", db, "--json"], capture_output=True, text=True, timeout=120
    )


def test_a_lender_earns_through_the_cli(database_url: str) -> None:
    db = database_url
    assert run(db, "migrate")["revision"] == ScriptDirectory(str(MIGRATIONS)).get_current_head()
    run(db, "clock", "set-sim", "--speed", "0", "--start", "2026-01-01T00:30:00")
    run(db, "currency", "add", "USDT", "--precision", "8")
    market = run(
        db, "market", "set", "USDT", "--mode", "auction", "--demand", "150", "--insurance-fee", "0.15"
    )
    assert market["mode"] == "auction"
    for name, rate in (("alice", "0.02"), ("bob", "0.05"), ("carol", "0.10")):
        run(db, "user", "create", name)
        run(db, "deposit", name, "USDT", "100")
        run(db, "savings", "purchase", name, "USDT", "100", "--rate", rate)

    advanced = run(db, "clock", "advance", "--hours", "2")
    assert [s["borrow_rate"] for s in advanced["settled"]] == ["0.05", "0.05"]
    assert advanced["clock"]["iso"] == "2026-01-01T02:30:00.000Z"
    alice = run(db, "balance", "alice")["savings"][0]
    assert alice["earnings"] == "0.00048515"  # 8 decimal places, rounded down
    assert alice["loan"] == "100.00048515"

    redeemed = run(db, "savings", "redeem", "alice", "USDT", "50")
    assert redeemed["amt"] == "50.00048515"
    run(db, "withdraw", "alice", "USDT", "50")
    assert run(db, "ledger", "check")["ok"] is True
    assert run(db, "settle")["settled"] == []


def test_refusals_exit_non_zero_with_the_reason(database_url: str) -> None:
    db = database_url
    run(db, "migrate")
    run(db, "currency", "add", "BTC")
    run(db, "market", "set", "BTC")
    run(db, "user", "create", "dave")
    proc = flexearn(db, "savings", "purchase", "dave", "BTC", "1")
    assert proc.returncode == 2
    assert json.loads(proc.stdout)["error"] == "insufficient_balance"
    proc = flexearn(db, "clock", "advance", "--hours", "1")
    assert proc.returncode == 2
    assert "only a simulated clock" in json.loads(proc.stdout)["message"]
    for amount in ("1E-60", " 1", "1_0", "１", "+3"):  # the façades' grammar: refused, not misread
        proc = flexearn(db, "deposit", "dave", "BTC", amount)
        assert proc.returncode == 2, amount
        assert "is not a plain decimal number" in proc.stderr
    assert run(db, "balance", "dave")["funding"] == []
    moved = run(db, "deposit", "dave", "BTC", "0.25", "--account", "trading")
    assert (moved["account"], moved["amount"]) == ("trading", "0.25")
    shown = run(db, "balance", "dave")
    assert (shown["funding"], shown["trading"]) == ([], [{"ccy": "BTC", "balance": "0.25"}])
    proc = flexearn(db, "savings", "purchase", "dave", "BTC", "0.1")  # savings come from funding only
    assert json.loads(proc.stdout)["error"] == "insufficient_balance"


@pytest.mark.slow
def test_demo_runs_a_seeded_world_and_settles_hours(tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path / 'demo.db'}"
    port = str(free_port())
    proc = subprocess.run(
        [FLEXEARN, "demo", "--db", db, "--port", port, "--speed", "36000", "--hours", "2", "--history", "6"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    assert "user       demo (id 41)" in proc.stdout
    assert "building 6 hours of history" in proc.stderr  # the progress bar's label, off a terminal
    assert len([line for line in proc.stdout.splitlines() if " USDT " in line and "%" in line]) >= 2
    assert run(db, "ledger", "check")["ok"] is True


def test_worker_help_documents_the_database_and_the_settler_lease() -> None:
    proc = subprocess.run([FLEXEARN, "worker", "--help"], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    for documented in ("--db", "--lease-seconds", "settler lease", "SIGTERM", "serve --scheduler"):
        assert documented in proc.stdout


@pytest.mark.slow
def test_serve_and_a_worker_take_turns_as_the_one_settler(tmp_path: Path) -> None:
    """`serve --scheduler` stands by while a worker settles, and settles itself once it stops."""
    db = f"sqlite:///{tmp_path / 'flexearn.db'}"
    run(db, "migrate")
    run(db, "clock", "set-sim", "--speed", "0", "--start", "2026-01-01T00:30:00")
    run(db, "currency", "add", "USDT")
    run(db, "market", "set", "USDT", "--demand", "100")
    engine = make_engine(db)

    def holder_pid() -> int | None:
        holder = current_holder(engine, "settler")
        return None if holder is None else int(holder.rsplit(":", 2)[1])

    def hours() -> int:
        with engine.connect() as conn:
            return int(conn.execute(sa.select(sa.func.count()).select_from(t.market_hour)).scalar_one())

    def advance_an_hour() -> None:
        with engine.begin() as conn:
            clocks.advance(conn, clocks.HOUR_MS)

    def eventually(probe: Any, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while not probe():
            assert time.monotonic() < deadline, "timed out"
            time.sleep(0.05)

    def settler_gauge(base: str) -> str:
        with urllib.request.urlopen(f"{base}/metrics", timeout=10) as response:
            return str(response.read().decode())

    metrics_port = free_port()
    with (tmp_path / "worker.log").open("wb") as log:
        worker = subprocess.Popen(
            [FLEXEARN, "worker", "--db", db, "--lease-seconds", "3", "--metrics-port", str(metrics_port)],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    try:
        eventually(lambda: holder_pid() == worker.pid, 30)
        advance_an_hour()  # the market's first hour falls due
        eventually(lambda: hours() == 1, 10)
        worker_url = f"http://127.0.0.1:{metrics_port}"  # the worker's own /metrics
        settled = 'flexearn_settled_periods_total{kind="market_hour"} 1.0'
        # counted once the pass that committed the hour ends (it settles the days after it)
        eventually(lambda: settled in settler_gauge(worker_url), 10)
        assert "flexearn_settler 1.0" in settler_gauge(worker_url)
        with running_server(db, generate_master_key(), "--scheduler", "--lease-seconds", "3") as base:
            advance_an_hour()
            eventually(lambda: hours() == 2, 10)
            time.sleep(1.5)  # the server's settler has polled the lease by now, and stood by
            assert holder_pid() == worker.pid
            assert "flexearn_settler 0.0" in settler_gauge(base)
            worker.send_signal(signal.SIGTERM)
            assert worker.wait(timeout=10) == 0
            eventually(lambda: holder_pid() not in (None, worker.pid), 2.5)  # before the 3 s lease expires
            server_pid = holder_pid()
            assert server_pid != os.getpid()
            advance_an_hour()
            eventually(lambda: hours() == 3, 10)
            assert holder_pid() == server_pid
            assert "flexearn_settler 1.0" in settler_gauge(base)
        assert holder_pid() is None  # the server handed the lease back as it stopped
    finally:
        if worker.poll() is None:
            worker.kill()
        engine.dispose()
    assert run(db, "ledger", "check")["ok"] is True


def test_a_real_time_product_through_the_cli(database_url: str) -> None:
    """Binance's flexible model from the operator's spec: a manual real-time APR set, then changed;
    a spec the engine refuses writes nothing and names its field."""
    db = database_url
    run(db, "migrate")
    run(db, "clock", "set-sim", "--speed", "0", "--start", "2026-01-01T01:00:00")
    run(db, "currency", "add", "BTC", "--precision", "8")
    bands = [{"minStepVal": "0", "maxStepVal": "5", "currentApy": "3"}]
    spec = {"coin": "BTC", "apyList": bands, "aprSource": "manual", "apr": "2"}
    product = run(db, "product", "create", "--spec", json.dumps(spec))
    assert product["apr_source"] == "manual"
    run(db, "clock", "advance", "--hours", "1")
    run(db, "product", "update", str(product["id"]), "--spec", '{"apr": "5"}')
    refused = flexearn(db, "product", "create", "--spec", json.dumps({**spec, "apr": None}))
    assert refused.returncode != 0
    assert "apr" in refused.stderr + refused.stdout
    engine = make_engine(db)
    with engine.connect() as conn:
        a = t.product_apr
        history = conn.execute(sa.select(a.c.ts, a.c.apr).order_by(a.c.ts)).all()
        products = conn.execute(sa.select(sa.func.count()).select_from(t.product)).scalar_one()
    engine.dispose()
    start = 1_767_229_200_000  # 2026-01-01T01:00:00Z
    assert [(ts, str(apr)) for ts, apr in history] == [(start, "2"), (start + 3_600_000, "5")]
    assert products == 1
    assert run(db, "ledger", "check")["ok"] is True
