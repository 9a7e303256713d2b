"""Every mistake a person can make at the command line: one line naming it, exit status 2."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from flexearn.adapters.db import make_engine, migrate
from flexearn.cli import main
from flexearn.console.errors import head_revision
from tests.cli.conftest import Cli, refused
from tests.server import free_port


def test_a_database_path_without_its_scheme_is_refused_naming_the_option(tmp_path: Path) -> None:
    line = refused(Cli(str(tmp_path / "x.db"))("balance", "alice"))
    assert line.startswith("Error: --db: ")
    assert "is not a database URL (e.g. sqlite:///flexearn.db" in line


def test_a_bad_url_in_the_environment_is_named_as_the_variable() -> None:
    result = CliRunner().invoke(main, ["clock", "show"], env={"FLEXEARN_DATABASE_URL": "flexearn.db"})
    assert refused(result).startswith("Error: FLEXEARN_DATABASE_URL: 'flexearn.db' is not a database URL")


def test_an_unsupported_database_is_refused() -> None:
    line = refused(Cli("mysql://root@localhost/x")("clock", "show"))
    assert "mysql databases are not supported" in line


def test_an_unreachable_database_is_one_line() -> None:
    line = refused(Cli(f"postgresql://nobody@127.0.0.1:{free_port()}/x")("balance", "alice"))
    assert line.startswith("Error: cannot reach the database postgresql+psycopg://nobody@127.0.0.1:")
    assert "Connection refused" in line


def test_a_missing_sqlite_file_is_not_created_but_named(tmp_path: Path) -> None:
    missing = tmp_path / "typo.db"
    line = refused(Cli(f"sqlite:///{missing}")("balance", "alice"))
    assert (
        line == f"Error: no database at {missing}: create it with `flexearn migrate --db sqlite:///{missing}`"
    )
    assert not missing.exists()


@pytest.mark.parametrize(
    ("name", "text", "says"),
    [
        ("FLEXEARN_API_DB_SLOTS", "abc", "FLEXEARN_API_DB_SLOTS: a whole number, not 'abc'"),
        ("FLEXEARN_POLL_SECONDS", "fast", "FLEXEARN_POLL_SECONDS: a number, not 'fast'"),
        ("FLEXEARN_SETTLEMENT_RANGES", "0", "FLEXEARN_SETTLEMENT_RANGES: 1 to 1024, not 0"),
        ("FLEXEARN_MAX_BODY_BYTES", "10", "FLEXEARN_MAX_BODY_BYTES: 1024 to 67108864, not 10"),
    ],
)
def test_a_bad_setting_stops_serve_naming_the_variable(name: str, text: str, says: str) -> None:
    result = CliRunner().invoke(main, ["serve"], env={name: text})
    assert refused(result) == f"Error: bad setting {says}"


def test_a_bad_setting_stops_any_command(cli: Cli) -> None:
    assert "FLEXEARN_API_DB_SLOTS" in refused(cli("balance", "alice", env={"FLEXEARN_API_DB_SLOTS": "x"}))


def test_an_unknown_user_names_the_command_that_creates_it(cli: Cli) -> None:
    line = refused(cli("deposit", "bob", "USDT", "5"))
    assert line == "Error: no user named 'bob': create it with `flexearn user create bob`"
    assert "flexearn user create bob" in refused(cli("balance", "bob"))


@pytest.mark.parametrize(
    ("ccy", "args"),
    [
        ("XYZ", ("deposit", "alice", "XYZ", "100")),
        ("ETH", ("price", "set", "eth", "95000")),
        ("XYZ", ("savings", "purchase", "alice", "XYZ", "1")),
    ],
)
def test_an_unknown_currency_names_the_command_that_adds_it(
    cli: Cli, ccy: str, args: tuple[str, ...]
) -> None:
    line = refused(cli(*args))
    assert line == f"Error: unknown currency {ccy}: add it with `flexearn currency add {ccy}`"
    assert "Savings does not support" not in line


def test_a_currency_without_a_market_names_the_command_that_opens_it(cli: Cli) -> None:
    cli.ok("deposit", "alice", "BTC", "1")
    line = refused(cli("savings", "purchase", "alice", "BTC", "1"))
    assert line == "Error: BTC has no lending market: create one with `flexearn market set BTC`"


def test_with_json_a_refusal_is_a_json_object_with_its_stable_code(cli: Cli) -> None:
    result = cli("deposit", "alice", "xyz", "1", "--json")
    assert result.exit_code == 2
    assert json.loads(result.stdout) == {
        "error": "unsupported_currency",
        "message": "unknown currency XYZ: add it with `flexearn currency add XYZ`",
        "param": "ccy",
    }


@pytest.mark.parametrize("amount", ["-5", "-0.5", "-.5"])
def test_a_negative_amount_is_called_negative_not_an_unknown_option(cli: Cli, amount: str) -> None:
    line = refused(cli("deposit", "alice", "USDT", amount))
    assert line == f"Error: {amount} is negative: amounts, rates and counts are positive numbers"
    assert "No such option" not in line


@pytest.mark.parametrize("amount", ["5,0", "1e3", "five", " 1"])
def test_a_malformed_amount_names_the_argument_and_the_grammar(cli: Cli, amount: str) -> None:
    line = refused(cli("withdraw", "alice", "USDT", amount))
    assert line.startswith(f"Error: Invalid value for 'AMOUNT': {amount!r} is not a plain decimal number")


def test_a_negative_option_value_is_refused_by_its_type(cli: Cli) -> None:
    assert "'-1' is not a plain decimal" in refused(cli("clock", "set-sim", "--speed", "-1"))
    assert "-3 is not in the range x>=1" in refused(cli("clock", "advance", "--hours", "-3"))


def test_redeeming_without_a_position_says_there_is_none(cli: Cli) -> None:
    assert (
        refused(cli("savings", "redeem", "alice", "USDT", "5"))
        == "Error: alice holds no USDT savings to redeem"
    )
    cli.ok("savings", "purchase", "alice", "USDT", "50")
    line = refused(cli("savings", "redeem", "alice", "USDT", "80"))
    assert line == "Error: alice holds 50 USDT in savings: redeem at most that"
    assert "must be equal to or less than" not in line


def test_currency_codes_are_read_in_any_case(cli: Cli) -> None:
    cli.ok("currency", "add", "usdc")
    cli.ok("market", "set", "usdc")
    cli.ok("deposit", "alice", "usdc", "7")
    cli.ok("savings", "purchase", "alice", "Usdc", "5")
    balance = json.loads(cli.ok("balance", "alice", "--json"))
    assert {"ccy": "USDC", "available": "2", "frozen": "0"} in balance["funding"]
    assert "'US-DC' is not a currency code" in refused(cli("currency", "add", "US-DC"))


def test_a_product_spec_that_is_not_a_json_object_is_refused(cli: Cli) -> None:
    assert "Invalid value for --spec: not JSON" in refused(cli("product", "create", "--spec", "{"))
    assert "a JSON object of product fields" in refused(cli("product", "create", "--spec", "[1]"))
    assert "--spec JSON or --spec-file FILE" in refused(cli("product", "create"))


# -- no silent migrations ------------------------------------------------------------------------


def test_a_command_on_an_empty_database_names_migrate_and_changes_nothing(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'empty.db'}"
    engine = make_engine(url)
    with engine.connect():  # the file exists, with no schema
        pass
    line = refused(Cli(url)("balance", "alice"))
    assert line == "Error: the database has no flexearn schema yet: create it with `flexearn migrate`"
    with engine.connect() as conn:
        assert conn.exec_driver_sql("SELECT count(*) FROM sqlite_master").scalar() == 0
    engine.dispose()


def test_an_old_schema_is_refused_by_every_command_but_migrate(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'old.db'}"
    engine = make_engine(url)
    migrate(engine, "0009")
    cli = Cli(url)
    for args in (("balance", "alice"), ("clock", "show"), ("ledger", "check"), ("settle",)):
        line = refused(cli(*args))
        assert line == (
            f"Error: the database schema is at revision 0009, this flexearn needs {head_revision()}: "
            "back the database up, then upgrade it with `flexearn migrate`"
        )
    worker = CliRunner().invoke(main, ["worker", "--db", url], env=cli.env)
    assert "upgrade it with `flexearn migrate`" in refused(worker)
    serve = CliRunner().invoke(
        main, ["serve", "--db", url], env={**cli.env, "FLEXEARN_ADMIN_TOKEN": "t" * 32}
    )
    assert "upgrade it with `flexearn migrate`" in refused(serve)
    with engine.connect() as conn:
        assert conn.exec_driver_sql("SELECT version_num FROM alembic_version").scalar() == "0009"
    assert cli.ok("migrate") == f"schema at revision {head_revision()}\n"
    cli.ok("clock", "show")
    engine.dispose()
