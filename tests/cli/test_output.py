"""What the command prints: text for a person by default, JSON only with --json, on every
command; help on every command, none cut short."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator

import click
import pytest
from click.testing import CliRunner

from flexearn.cli import main
from tests.cli.conftest import Cli

SPEC = (
    '{"coin":"USDT","periodType":"flexible","apyType":"ladder","apyList":['
    '{"minStepVal":"0","maxStepVal":"200","currentApy":"6"},'
    '{"minStepVal":"200","maxStepVal":"5000","currentApy":"50"}]}'
)


def is_json(text: str) -> bool:
    try:
        json.loads(text)
    except ValueError:
        return False
    return True


@pytest.mark.parametrize(
    "args",
    [
        ("balance", "alice"),
        ("market", "set", "USDT", "--demand", "100"),
        ("market", "list"),
        ("clock", "set-sim", "--speed", "0", "--start", "2026-12-01T20:00"),
        ("clock", "show"),
        ("key", "list", "alice"),
        ("product", "list"),
        ("savings", "purchase", "alice", "USDT", "10", "--rate", "0.01"),
        ("savings", "set-rate", "alice", "USDT", "0.02"),
        ("settle",),
    ],
)
def test_every_command_prints_text_by_default_and_json_with_the_flag(cli: Cli, args: tuple[str, ...]) -> None:
    cli.ok("key", "create", "alice")
    cli.ok("product", "create", "--spec", SPEC)
    if args[0] == "savings" and args[1] == "set-rate":
        cli.ok("savings", "purchase", "alice", "USDT", "10")
    text = cli.ok(*args)
    assert text.strip()
    assert not is_json(text), text
    assert "{" not in text
    if args[0] != "settle":  # a second purchase and set-rate are fine too
        assert is_json(cli.ok(*args, "--json"))


def test_the_balance_is_a_table_per_account(cli: Cli) -> None:
    cli.ok("savings", "purchase", "alice", "USDT", "40")
    assert cli.ok("balance", "alice").splitlines() == [
        "funding:",
        "  ccy   available  frozen",
        "  USDT  60         0",
        "trading:",
        "  (none)",
        "savings:",
        "  ccy   amt  loan  earnings  rate",
        "  USDT  40   0     0         0.01",
    ]


def test_products_list_their_tiers_in_a_table(cli: Cli) -> None:
    cli.ok("product", "create", "--spec", SPEC)
    lines = cli.ok("product", "list").splitlines()
    assert lines[0].split() == ["id", "coin", "term", "apy", "%", "level", "status", "remaining", "quota"]
    assert "0-200: 6, 200-5000: 50" in lines[1]


def test_the_product_spec_has_its_own_options_and_json_means_output(cli: Cli) -> None:
    created = json.loads(cli.ok("product", "create", "--spec", SPEC, "--json"))
    assert created["coin"] == "USDT"
    assert [t["apy"] for t in created["tiers"]] == ["6", "50"]
    result = CliRunner().invoke(
        main,
        ["product", "update", str(created["id"]), "--spec-file", "-", "--db", cli.url],
        input='{"apyList":[{"minStepVal":"0","maxStepVal":"1000","currentApy":"7"}]}',
        env=cli.env,
    )
    assert result.exit_code == 0, result.output
    assert "min_step  max_step  apy" in result.stdout
    assert not is_json(result.stdout)


def test_times_are_read_as_iso_minutes_and_shown_as_utc(cli: Cli) -> None:
    # Years ahead of the wall clock: the market (set up at wall time) opened before these hours.
    cli.ok("clock", "set-sim", "--speed", "0", "--start", "2030-01-01T19:30")
    cli.ok("market", "set", "USDT", "--demand-source", "external")
    posted = cli.ok("market", "post-demand", "USDT", "2030-01-01T20:00", "75")
    assert "hour         2030-01-01T20:00:00.000Z" in posted
    with_offset = json.loads(cli.ok("market", "post-demand", "USDT", "2030-01-01T22:00+01:00", "5", "--json"))
    assert with_offset["hour"] == 1893531600000  # 21:00 UTC
    help_text = cli.ok("market", "post-demand", "--help")
    assert "CCY HOUR DEMAND" in help_text
    assert "2026-12-01T20:00" in help_text
    assert "%Y" not in help_text
    assert "YYYY-MM-DD[THH:MM[:SS]]" in cli.ok("clock", "set-sim", "--help")


def commands(
    group: click.Group, path: tuple[str, ...] = ()
) -> Iterator[tuple[tuple[str, ...], click.Command]]:
    for name, command in group.commands.items():
        yield (*path, name), command
        if isinstance(command, click.Group):
            yield from commands(command, (*path, name))


def test_every_command_has_help_and_no_listing_is_cut_short() -> None:
    found = list(commands(main))
    assert len(found) > 40
    assert [path for path, command in found if not (command.help or "").strip()] == []
    for path, command in [((), main), *found]:
        if isinstance(command, click.Group):
            listing = CliRunner().invoke(main, [*path, "--help"], terminal_width=80).output
            cut = [line for line in listing.splitlines()[1:] if line.endswith("...")]
            assert cut == [], path


def test_python_dash_m_flexearn_is_the_command() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "flexearn", "--help"], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("Usage: flexearn [OPTIONS] COMMAND [ARGS]...")
    assert "migrate" in done.stdout
