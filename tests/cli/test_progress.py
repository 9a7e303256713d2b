"""Long work says how far it got: settlement catching up reports each period as (done, total)."""

from __future__ import annotations

from flexearn.adapters import clock as clocks
from flexearn.bootstrap import Flexearn
from flexearn.services import scheduler
from tests.cli.conftest import Cli


def test_settlement_catching_up_reports_each_period_done_of_all_due(cli: Cli) -> None:
    cli.ok("clock", "set-sim", "--speed", "0", "--start", "2030-01-01T20:30")
    cli.ok("currency", "add", "usdc")
    cli.ok("market", "set", "USDC")
    cli.ok("clock", "advance", "--hours", "1")
    app = Flexearn(cli.url, migrate_schema=False)
    with app.uow() as uow:  # move the clock without settling: 5 hours of each market due
        clocks.advance(uow.conn, 5 * clocks.HOUR_MS)
        uow.commit()
    told: list[tuple[int, int]] = []
    settled = scheduler.settle_all_due(app.engine, progress=lambda done, total: told.append((done, total)))
    app.close()
    assert len(settled.hours) == 10  # 5 hours of USDT and USDC
    assert told == [(n, 10) for n in range(1, 11)]


def test_the_command_shows_the_bar_label_off_a_terminal(cli: Cli) -> None:
    cli.ok("clock", "set-sim", "--speed", "0", "--start", "2030-01-01T20:30")
    result = cli("clock", "advance", "--hours", "3")
    assert result.exit_code == 0, result.output
    assert result.stderr.splitlines() == ["settling"]
    assert result.stdout.startswith("clock at 2030-01-01T23:30:00.000Z; settled ")
