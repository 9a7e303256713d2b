"""The text of a query sent past psycopg's own quoting (`db.postgres_text`, used where a turn's or a
trade's statements go as one query) is the text psycopg's `ClientCursor` sends for the same
statement and values, on a real PostgreSQL connection."""

from __future__ import annotations

from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import psycopg
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from flexearn.adapters import db
from tests.conftest import postgres_database

pytestmark = pytest.mark.postgres

VALUES = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**80), max_value=2**80),
    st.decimals(allow_nan=False, allow_infinity=False, places=None).filter(lambda d: d.is_finite()),
    st.text(alphabet=st.characters(blacklist_characters="\x00", blacklist_categories=("Cs",)), max_size=40),
    st.sampled_from(["it's", "back\\slash", "'; DROP TABLE x; --", "E'x'", "$$", ":name", "%(x)s", "%s %%"]),
)
NAMES = st.from_regex(r"[a-z_][a-z0-9_]{0,8}", fullmatch=True)


@pytest.fixture(scope="module")
def driver() -> Iterator[psycopg.Connection[Any]]:
    database = postgres_database()
    url = next(database)
    try:
        with psycopg.connect(url.replace("postgresql+psycopg://", "postgresql://", 1)) as conn:
            yield conn
    finally:
        database.close()  # dropped


@settings(max_examples=300, deadline=None)
@given(st.dictionaries(NAMES, VALUES, min_size=0, max_size=6), st.data())
def test_the_text_is_what_a_client_cursor_sends(
    driver: psycopg.Connection[Any], params: dict[str, Any], data: st.DataObject
) -> None:
    names = list(params)
    used = data.draw(st.lists(st.sampled_from(names), max_size=8)) if names else []
    # a statement with casts, which are not parameters, and each used name possibly twice
    columns = "".join(f", :{name}, :{name}::text, 'x'::text" for name in used)
    sql = f"SELECT 1::bigint{columns} WHERE 1 = 1"
    expected = psycopg.ClientCursor(driver).mogrify(db._pyformat(sql), params) if used else sql
    assert db.postgres_text(sql, params, db.postgres_quote(driver)) == expected


def test_a_nul_in_a_text_is_refused_as_psycopg_refuses_it(driver: psycopg.Connection[Any]) -> None:
    with pytest.raises(psycopg.DataError):
        db.postgres_text("SELECT :x", {"x": "a\x00b"}, db.postgres_quote(driver))


def test_the_text_runs_and_round_trips_the_values(driver: psycopg.Connection[Any]) -> None:
    values = {"a": "it's \\ 'quoted'", "b": Decimal("-12.500"), "c": 2**70, "d": None, "e": "é ü 😀"}
    text = db.postgres_text("SELECT :a::text, :b::numeric, :c::numeric, :d::text, :e::text", values,
                            db.postgres_quote(driver))
    row = driver.execute(text, prepare=False).fetchone()
    assert row == (values["a"], values["b"], Decimal(values["c"]), None, values["e"])


def test_a_percent_sign_in_the_statement_is_left_as_it_is(driver: psycopg.Connection[Any]) -> None:
    """(`ClientCursor.mogrify` would read it as a placeholder: the text is not a format here.)"""
    text = db.postgres_text("SELECT 'a%' LIKE :p, '%s %(x)s'", {"p": "a%"}, db.postgres_quote(driver))
    assert text == "SELECT 'a%' LIKE 'a%', '%s %(x)s'"
    assert driver.execute(text, prepare=False).fetchone() == (True, "%s %(x)s")
