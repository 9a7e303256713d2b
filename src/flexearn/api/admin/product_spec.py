"""The operator's product spec, read where it arrives: the admin API's product bodies and the CLI's
`product create/update --spec/--spec-file` and `product status`.

The spec uses Bitget's field names (`coin`, `periodType`, `apyList`, ...) plus the limits; it is
read into the domain's typed `ProductFields`, every error naming the operator's field. Whether the
fields make a product (a coin, tiers without gaps, a term for a fixed product, ...) is the catalog
service's rule, not this reader's.
"""

from __future__ import annotations

from collections.abc import Mapping
from enum import StrEnum
from typing import Any

from flexearn.api.admin.schema import CCY, MAX_MS, Schema, array, choice, decimal, integer, obj
from flexearn.domain.catalog import (
    OPERATOR_STATUSES,
    AprSource,
    ApyType,
    Level,
    PeriodType,
    ProductFields,
    SettleMethod,
    Status,
    Tier,
    Walk,
)
from flexearn.domain.errors import InvalidParameter, MissingParameter
from flexearn.domain.money import ascii_digits, parse_amount
from flexearn.domain.vocabulary import values

# The operator's fields: each one's schema (the admin API validates and documents it with it) and,
# by kind of value, the `ProductFields` field `parse` reads it into.
_ENUMS: dict[str, tuple[str, type[StrEnum]]] = {
    "periodType": ("period_type", PeriodType),
    "apyType": ("apy_type", ApyType),
    "settleMethod": ("settle_method", SettleMethod),
    "productLevel": ("level", Level),
    "aprSource": ("apr_source", AprSource),  # Binance's flexible model: the tiers are the bonus bands
}
_REALTIME_APR = "real-time APR, percent: set by hand (manual) or where the walk starts (simulated)"
_AMOUNTS: dict[str, tuple[str, Schema]] = {
    "singleMinAmount": ("single_min", decimal()),
    "singleMaxAmount": ("single_max", decimal()),
    "quota": ("quota", decimal("total the product takes")),
    "apr": ("apr", decimal(_REALTIME_APR)),
}
_INTS: dict[str, tuple[str, Schema]] = {
    "period": ("period_days", integer(1, 3650, description="days (fixed products)")),
    "subscribePrecision": ("subscribe_precision", integer(0, 18)),
    "profitPrecision": ("profit_precision", integer(0, 18)),
    "redeemDelay": ("redeem_delay_days", integer(0, 365, description="days until a redemption arrives")),
    "startTime": ("start_time", integer(0, MAX_MS)),
    "endTime": ("end_time", integer(0, MAX_MS)),
}
_WALK: dict[str, Schema] = {  # the simulated APR's walk (docs/facades.md)
    "aprLow": decimal("simulated APR's lower bound, percent"),
    "aprHigh": decimal("simulated APR's upper bound, percent"),
    "aprStep": decimal("simulated APR's largest hourly move, percent"),
}
TIER = obj(
    {
        "rateLevel": integer(0, 1000),
        "minStepVal": decimal(example="0"),
        "maxStepVal": decimal(example="1000"),
        "currentApy": decimal("percent", "5"),
    },
    ("minStepVal", "maxStepVal", "currentApy"),
)
FIELDS: dict[str, Schema] = {
    "coin": CCY,
    **{name: choice(*values(kind)) for name, (_, kind) in _ENUMS.items()},
    **{name: schema for name, (_, schema) in (*_AMOUNTS.items(), *_INTS.items())},
    **_WALK,
    "aprSeed": integer(0, 2**31 - 1, description="simulated APR's seed"),
    "apyList": array(TIER, 20, minItems=1),
    "advanceRedeem": choice("Yes", "No"),
    "status": choice(*values(OPERATOR_STATUSES)),
}
AT_CREATION = ("coin", "periodType", "period")  # a product's own: not among the changes


def parse(spec: Mapping[str, Any]) -> ProductFields:
    """The fields of `spec`; a field that is null or "" counts as not given (but `apyList`, when
    present, must be a list of tiers)."""
    fields: dict[str, Any] = {}
    given = {name: value for name, value in spec.items() if value not in (None, "")}
    for name, (field, kind) in _ENUMS.items():
        if name in given:
            fields[field] = _enum(kind, given[name], name)
    for name, (field, _) in _AMOUNTS.items():
        if name in given:
            fields[field] = parse_amount(str(given[name]), param=name)
            if fields[field] < 0:
                raise InvalidParameter(name, "must not be negative")
    for name, (field, _) in _INTS.items():
        if name in given:
            if not ascii_digits(str(given[name])):
                raise InvalidParameter(name, "a whole number")
            fields[field] = int(str(given[name]))
    if "advanceRedeem" in given:
        if given["advanceRedeem"] not in ("Yes", "No"):
            raise InvalidParameter("advanceRedeem", "Yes or No")
        fields["advance_redeem"] = given["advanceRedeem"] == "Yes"
    if "coin" in given:
        fields["coin"] = str(given["coin"]).upper()
    if "status" in given:
        fields["status"] = operator_status(str(given["status"]))
    return ProductFields(
        **fields,
        tiers=_tiers(spec["apyList"]) if "apyList" in spec else None,
        walk=_walk(given) if any(name in given for name in (*_WALK, "aprSeed")) else None,
    )


def operator_status(text: str) -> Status:
    """A status the operator may set (the others follow from time and quota)."""
    if text not in OPERATOR_STATUSES:
        raise InvalidParameter("status", f"one of {', '.join(OPERATOR_STATUSES)}")
    return Status(text)


def _walk(given: Mapping[str, Any]) -> Walk:
    """The simulated APR's walk: its bounds and hourly step (percent, all three) and its seed."""
    low, high, step = (
        parse_amount(str(given[name]), param=name) if name in given else _missing(name) for name in _WALK
    )
    seed = str(given.get("aprSeed", 0))
    if not ascii_digits(seed):
        raise InvalidParameter("aprSeed", "a whole number")
    return Walk(low, high, step, int(seed))


def _missing(name: str) -> Any:
    raise MissingParameter(name)


def _enum(kind: type[StrEnum], value: Any, name: str) -> StrEnum:
    try:
        return kind(str(value))
    except ValueError:
        raise InvalidParameter(name, f"one of {', '.join(kind)}") from None


def _tiers(raw: Any) -> tuple[Tier, ...]:
    if not isinstance(raw, list):
        raise InvalidParameter("apyList", "a list of tiers")
    try:
        return tuple(
            Tier(
                int(r.get("rateLevel", i)),
                parse_amount(str(r["minStepVal"]), param="minStepVal"),
                parse_amount(str(r["maxStepVal"]), param="maxStepVal"),
                parse_amount(str(r["currentApy"]), param="currentApy"),
            )
            for i, r in enumerate(raw)
        )
    except InvalidParameter:
        raise
    except (KeyError, TypeError, ValueError, AttributeError):
        raise InvalidParameter("apyList", "tiers need minStepVal, maxStepVal and currentApy") from None
