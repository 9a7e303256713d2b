"""The flexearn command in process (click's CliRunner) on a fresh SQLite file."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from flexearn.adapters.secrets import generate_master_key
from flexearn.cli import main


class Cli:
    """`flexearn ARGS --db URL` run in process, with a master key and a clean environment."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.env = {"FLEXEARN_MASTER_KEY": generate_master_key(), "FLEXEARN_DATABASE_URL": None}

    def __call__(self, *args: str, env: dict[str, str] | None = None) -> Result:
        return CliRunner().invoke(main, [*args, "--db", self.url], env={**self.env, **(env or {})})

    def ok(self, *args: str) -> str:
        result = self(*args)
        assert result.exit_code == 0, result.output
        return result.stdout


def refused(result: Result) -> str:
    """The one line a refusal prints (on stderr), after checking it exited 2 without a traceback."""
    assert result.exit_code == 2, (result.exit_code, result.output)
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    assert "Traceback" not in result.output
    lines = result.stderr.strip().splitlines()
    assert lines, result.output
    return lines[-1]


@pytest.fixture
def cli(tmp_path: Path) -> Cli:
    """A migrated database with USDT (a market) and BTC (no market), and a user alice."""
    cli = Cli(f"sqlite:///{tmp_path / 'flexearn.db'}")
    cli.ok("migrate")
    cli.ok("currency", "add", "USDT")
    cli.ok("market", "set", "USDT")
    cli.ok("currency", "add", "BTC")
    cli.ok("user", "create", "alice")
    cli.ok("deposit", "alice", "USDT", "100")
    return cli
