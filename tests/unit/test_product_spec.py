"""The operator's product spec is read where it arrives (admin API, CLI) into typed fields, each
error naming the operator's field; whether the fields make a product is the service's rule."""

from __future__ import annotations

from decimal import Decimal

import pytest

from flexearn.api.admin.product_spec import operator_status, parse
from flexearn.domain.catalog import ApyType, Level, PeriodType, ProductFields, SettleMethod, Status, Tier
from flexearn.domain.errors import InvalidParameter


def test_bitget_names_become_typed_fields() -> None:
    fields = parse(
        {
            "coin": "usdt",
            "periodType": "fixed",
            "period": "30",
            "apyType": "ladder",
            "apyList": [
                {"minStepVal": "0", "maxStepVal": "200", "currentApy": "6"},
                {"rateLevel": "7", "minStepVal": "200", "maxStepVal": "5000", "currentApy": "50.00"},
            ],
            "advanceRedeem": "No",
            "settleMethod": "maturity",
            "productLevel": "VIP",
            "status": "paused",
            "singleMinAmount": "10",
            "singleMaxAmount": "5000",
            "quota": 150000,
            "subscribePrecision": "6",
            "profitPrecision": 6,
            "redeemDelay": "1",
            "startTime": "1767225600000",
            "endTime": "1767312000000",
        }
    )
    assert fields == ProductFields(
        coin="USDT",
        period_type=PeriodType.FIXED,
        period_days=30,
        apy_type=ApyType.LADDER,
        tiers=(
            Tier(0, Decimal(0), Decimal(200), Decimal(6)),
            Tier(7, Decimal(200), Decimal(5000), Decimal(50)),
        ),
        advance_redeem=False,
        settle_method=SettleMethod.MATURITY,
        status=Status.PAUSED,
        level=Level.VIP,
        single_min=Decimal(10),
        single_max=Decimal(5000),
        quota=Decimal(150000),
        subscribe_precision=6,
        profit_precision=6,
        redeem_delay_days=1,
        start_time=1767225600000,
        end_time=1767312000000,
    )


def test_null_and_empty_are_not_given_but_tiers_must_be_a_list() -> None:
    assert parse({"coin": "", "quota": None, "status": ""}) == ProductFields()
    with pytest.raises(InvalidParameter, match=r"^Parameter apyList error: a list of tiers$"):
        parse({"apyList": None})


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ({"periodType": "weekly"}, "Parameter periodType error: one of flexible, fixed"),
        ({"productLevel": "vip"}, "Parameter productLevel error: one of beginner, normal, VIP"),
        ({"period": "١٢"}, "Parameter period error: a whole number"),
        ({"advanceRedeem": "yes"}, "Parameter advanceRedeem error: Yes or No"),
        ({"status": "sold_out"}, "Parameter status error: one of in_progress, paused, off_line"),
        (
            {"apyList": [{"minStepVal": "0"}]},
            "Parameter apyList error: tiers need minStepVal, maxStepVal and currentApy",
        ),
        (
            {"apyList": [{"minStepVal": "x", "maxStepVal": "1", "currentApy": "1"}]},
            "Parameter minStepVal error",
        ),
        ({"quota": "-5"}, "Parameter quota error"),
    ],
)
def test_each_refusal_names_the_operators_field(spec: dict[str, object], message: str) -> None:
    with pytest.raises(InvalidParameter) as refused:
        parse(spec)
    assert str(refused.value).startswith(message)
    assert refused.value.param == message.split()[1]


def test_the_operator_sets_only_the_statuses_that_do_not_follow_from_time_and_quota() -> None:
    assert [operator_status(s) for s in ("in_progress", "paused", "off_line")] == [
        Status.IN_PROGRESS,
        Status.PAUSED,
        Status.OFF_LINE,
    ]
    for derived in ("not_started", "completed", "sold_out", "PAUSED"):
        with pytest.raises(InvalidParameter, match="status"):
            operator_status(derived)
