"""Money is exact: one constructor, named rounding, exact products and quotients."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from decimal import Context, Decimal, Rounded, localcontext

import pytest
from hypothesis import given
from hypothesis import strategies as st

from flexearn.domain.errors import InvalidParameter
from flexearn.domain.money import (
    D,
    check_places,
    decimal_places,
    exact_add,
    exact_sum,
    mul_div_down,
    mul_div_up,
    parse_amount,
    plain,
    round_down,
)


def test_floats_never_become_money() -> None:
    with pytest.raises(TypeError):
        D(0.1)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        D(True)


@pytest.mark.parametrize("text", ["abc", "NaN", "Infinity", "", "1e"])
def test_text_that_is_not_a_finite_number_is_refused_naming_the_parameter(text: str) -> None:
    with pytest.raises(InvalidParameter, match="Parameter amt error"):
        D(text, param="amt")


def test_decimal_places_ignore_trailing_zeros() -> None:
    assert decimal_places(D("1.2300")) == 2
    assert decimal_places(D("100")) == 0
    assert decimal_places(D("1E+2")) == 0
    assert decimal_places(D("0.0000000000000001")) == 16


def test_plain_text_has_no_exponent() -> None:
    assert plain(D("1E+2")) == "100"
    assert plain(D("0.00000010")) == "0.0000001"
    assert plain(D("0.000")) == "0"


WIDE = Context(prec=200)


@given(
    st.decimals(allow_nan=False, allow_infinity=False)
    | st.integers(-(10**70), 10**70).map(lambda i: Decimal(i).scaleb(-20, WIDE))
    | st.integers(10**60, 10**70).map(lambda i: Decimal(i).scaleb(-30, WIDE))  # normalising rounds
    | st.sampled_from([D("-0.000"), D("0E-8"), D("0E+3"), D("1E+3"), D("-1.50"), D("100"), D("1E-7")])
)
def test_plain_is_the_normalised_fixed_point_text(value: Decimal) -> None:
    """Its fast path (trailing zeros stripped from `str`) gives what normalising gives."""
    expected = "0" if value == 0 else format(value.normalize(), "f")
    assert plain(value) == expected


def test_hourly_interest_rounds_down_exactly_even_past_28_digits() -> None:
    assert mul_div_down(D(100), D("0.0425"), 8760, 16) == D("0.0004851598173515")
    # The quotient is 0.99999999999999999999999999999988…: Python's stock 28-digit context rounds
    # it to 1 before any truncation could happen; the exact computation keeps it below 1.
    just_under = D("8759.999999999999999999999999999")
    with localcontext(prec=28):
        assert (just_under / 8760).quantize(D("1e-16"), rounding="ROUND_DOWN") == 1
    assert mul_div_down(just_under, D(1), 8760, 16) == D("0.9999999999999999")


@given(
    st.decimals(min_value=0, max_value=10**12, places=16),
    st.decimals(min_value=Decimal("0.0001"), max_value=Decimal("3.65"), places=6),
    st.integers(0, 16),
)
def test_down_and_up_bracket_the_exact_value_within_one_unit(a: Decimal, rate: Decimal, places: int) -> None:
    down, up = mul_div_down(a, rate, 8760, places), mul_div_up(a, rate, 8760, places)
    unit = Decimal(1).scaleb(-places)
    assert down <= up <= down + unit
    assert (down == up) == (down * 8760 == a * rate)
    assert round_down(down, places) == down


def test_sums_of_the_largest_amounts_are_exact_in_every_thread() -> None:
    big, tiny = D("99999999999999999999.123456789012345678"), D("0.000000000000000001")

    def add() -> Decimal:
        return big + tiny

    assert add() - big == tiny
    with ThreadPoolExecutor(1) as pool:  # a thread started after flexearn was imported
        assert pool.submit(add).result() - big == tiny
    assert sum([big] * 1_000_000, D(0)) == big * 1_000_000


# --- the grammar of amounts a client sends ------------------------------------------------------


@pytest.mark.parametrize(
    "text", ["0", "1", "0.5", "200.000000", "00012.50", "9" * 20, "9" * 20 + "." + "9" * 18]
)
def test_plain_decimals_are_amounts(text: str) -> None:
    assert parse_amount(text, param="amt") == Decimal(text)


@pytest.mark.parametrize(
    "text",
    [
        "",
        " 1",
        "1 ",
        "\t2",
        "1\n",
        "１",
        "٣",
        "1_0",
        "+3",
        "-3",
        "1e2",
        "1E-60",
        "1E+999999999",
        ".5",
        "1.",
        "1,5",
        "NaN",
        "0x10",
        "1" * 21,
        "1." + "0" * 19,
    ],
)
def test_anything_else_is_refused_naming_the_parameter(text: str) -> None:
    with pytest.raises(InvalidParameter, match="Parameter amt error: must be a plain decimal"):
        parse_amount(text, param="amt")


@given(st.text(alphabet=st.characters(), max_size=45))
def test_an_accepted_amount_is_small_plain_and_reads_back_as_written(text: str) -> None:
    try:
        amount = parse_amount(text)
    except InvalidParameter:
        return
    assert set(text) <= set("0123456789.")
    sign, digits, exponent = amount.as_tuple()
    assert (sign, isinstance(exponent, int)) == (0, True)
    assert len(digits) <= 38
    assert -18 <= int(exponent) <= 0
    assert amount == Decimal(text)


@given(st.from_regex(r"\A[0-9]{1,20}(\.[0-9]{1,18})?\Z"))
def test_every_text_of_the_grammar_is_accepted(text: str) -> None:
    assert parse_amount(text) == Decimal(text)


def test_places_finer_than_allowed_are_refused_but_trailing_zeros_are_not() -> None:
    assert check_places(Decimal("1.500000000"), 1) == Decimal("1.5")
    with pytest.raises(InvalidParameter, match="at most 6 decimal places"):
        check_places(Decimal("0.0000001"), 6)


def test_a_balance_that_would_round_raises_rather_than_drift_from_its_legs() -> None:
    # 9900 + 1E-60 needs 64 digits: the 60-digit context would give 9900 and the balance would no
    # longer equal the sum of its legs (which the database adds exactly).
    assert Decimal(9900) + Decimal("1E-60") == Decimal(9900)  # what used to happen
    with pytest.raises(Rounded):
        exact_add(Decimal(9900), Decimal("1E-60"))
    with pytest.raises(Rounded):
        exact_sum([Decimal(9900), Decimal("1E-60"), Decimal(-9900)])
    big = Decimal("9" * 20 + "." + "9" * 18)
    assert exact_sum([big] * 1000) == big * 1000  # every sum of real amounts is exact
