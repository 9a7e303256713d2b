"""The CHECK constraints of a migrated database say what the domain says (both databases).

`adapters/tables.py` derives each vocabulary's CHECK from the domain's enum (`one_of`); the
migrations are history, written out once. A member added to (or dropped from) a domain enum
without a migration that changes the live CHECK fails here, as does a CHECK a migration forgot.
The databases rewrite a CHECK's text (PostgreSQL: `((level)::text = ANY (ARRAY['beginner'::…`),
so each is compared by what it names: its quoted literals and its numbers, in order.
"""

from __future__ import annotations

import re

import sqlalchemy as sa

from flexearn.adapters import tables as t
from flexearn.adapters.db import make_engine, migrate
from flexearn.domain.catalog import Level, OrderType
from flexearn.domain.ledger import AccountKind

_TERMS = re.compile(r"'([^']*)'|\b([0-9]+(?:\.[0-9]+)?)\b")


def terms(sql: str) -> list[str]:
    """The literals and numbers of a CHECK's text, in order (casts and brackets aside)."""
    return [literal or number for literal, number in _TERMS.findall(sql)]


def declared_checks() -> dict[tuple[str, str], list[str]]:
    checks = {}
    for table in t.metadata.sorted_tables:
        for constraint in table.constraints:
            if isinstance(constraint, sa.CheckConstraint):
                checks[table.name, str(constraint.name)] = terms(str(constraint.sqltext))
    return checks


def test_the_declared_checks_are_the_domain_vocabularies() -> None:
    checks = declared_checks()
    assert checks["user_account", "ck_user_account_level"] == [level.value for level in Level]
    assert checks["earn_order", "ck_earn_order_order_type"] == [kind.value for kind in OrderType]
    user_kinds = [kind.value for kind in AccountKind if kind.user_owned]
    assert checks["ledger_account", "ck_ledger_account_owner"] == user_kinds
    assert len(checks) >= 15  # the walk found the declared CHECKs


def test_a_migrated_database_has_the_checks_the_domain_derives(database_url: str) -> None:
    engine = make_engine(database_url)
    try:
        migrate(engine)
        inspector = sa.inspect(engine)
        live = {
            (table, check["name"]): terms(check["sqltext"])
            for table in inspector.get_table_names()
            for check in inspector.get_check_constraints(table)
        }
        declared = declared_checks()
        assert {key: live.get(key) for key in declared} == declared
    finally:
        engine.dispose()
