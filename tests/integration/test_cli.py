"""The `flexearn` command end to end, as a subprocess on a real database."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from alembic.script import ScriptDirectory

from flexearn.adapters.db import MIGRATIONS
from tests.server import free_port

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
    run(db, "currency", "add", "BTC")
    run(db, "market", "set", "BTC")
    run(db, "user", "create", "dave")
    proc = flexearn(db, "savings", "purchase", "dave", "BTC", "1")
    assert proc.returncode == 2
    assert json.loads(proc.stdout)["error"] == "insufficient_balance"
    proc = flexearn(db, "clock", "advance", "--hours", "1")
    assert proc.returncode == 2
    assert "only a simulated clock" in json.loads(proc.stdout)["message"]


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
    assert len([line for line in proc.stdout.splitlines() if " USDT " in line and "%" in line]) >= 2
    assert run(db, "ledger", "check")["ok"] is True
