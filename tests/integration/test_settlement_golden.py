"""Settlement writes today what it wrote before it was reshaped (issue 14): the same world of 72
settled hours and three catalog days (see `settlement_world`) gives, on SQLite and PostgreSQL,
the positions, history, hours, holdings, orders, days, balances and journal that the code of
549310d wrote (`golden/settlement_world.json`); settled in ranges, the same rows and balances."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from flexearn.bootstrap import Flexearn
from tests.integration.settlement_world import build, snapshot

GOLDEN = json.loads((Path(__file__).parent / "golden" / "settlement_world.json").read_text())


def test_a_world_settled_in_one_transaction_per_period_is_the_one_settled_before(app: Flexearn) -> None:
    build(app, ranges=1)
    now = snapshot(app)
    assert len(now["days"]) == 9
    assert len(now["hours"]) == 144
    for part, rows in GOLDEN.items():
        assert now[part] == rows, part


def test_a_world_settled_currencies_side_by_side_is_the_one_settled_before(app: Flexearn) -> None:
    """Its two currencies' hours in two threads at once (on PostgreSQL; SQLite takes turns)."""
    build(app, ranges=1, threads=2)
    now = snapshot(app)
    for part, rows in GOLDEN.items():
        assert now[part] == rows, part


@pytest.mark.parametrize("ranges", [4])
def test_a_world_settled_in_ranges_has_the_rows_and_balances_settled_before(
    app: Flexearn, ranges: int
) -> None:
    build(app, ranges=ranges)
    now, before = snapshot(app, ranged=True), dict(GOLDEN)
    before["journal"] = [j for j in GOLDEN["journal"] if j[0] not in ("interest", "catalog_interest")]
    for part, rows in before.items():
        assert now[part] == rows, part
