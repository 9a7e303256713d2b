"""Every engine error has a row in each façade's error table (api/okx/errors.py,
api/bitget/errors.py) and a status in the admin API's (api/admin/server.py): a caller's error is
never answered as the server's (OKX 50026, Bitget 40015, HTTP 500).

The walk finds every `FlexearnError` subclass in the package, so an error class added without a
row fails here. Only configuration errors, which no request causes, are the server's.
"""

from __future__ import annotations

import importlib
import inspect
import pkgutil
import typing
from decimal import Decimal

import pytest

import flexearn
from flexearn.adapters.secrets import MasterKeyError
from flexearn.api.admin.auth import AdminTokenError
from flexearn.api.admin.server import engine_error
from flexearn.api.bitget import errors as bitget
from flexearn.api.okx import errors as okx
from flexearn.domain.catalog_errors import BelowMinimum, SubscriptionUnfunded, TooPrecise
from flexearn.domain.errors import AmountTooLarge, Conflict, FlexearnError, MissingParameter

# Raised at start-up (or when the operator's master key cannot decrypt a stored secret): the
# server's own misconfiguration, which a client can neither cause nor fix.
INTERNAL = {FlexearnError, MasterKeyError, AdminTokenError}
SAMPLES = {str: "x", int: 7, Decimal: Decimal("1.5")}


def engine_errors() -> list[type[FlexearnError]]:
    for module in pkgutil.walk_packages(flexearn.__path__, "flexearn."):
        if ".migrations" not in module.name:  # alembic's env.py runs migrations when imported
            importlib.import_module(module.name)
    found, stack = set(), [FlexearnError]
    while stack:
        kind = stack.pop()
        found.add(kind)
        stack.extend(kind.__subclasses__())
    return sorted(found, key=lambda kind: f"{kind.__module__}.{kind.__qualname__}")


def sample(kind: type[FlexearnError]) -> FlexearnError:
    """An instance made from the constructor's required arguments, by their types."""
    hints = typing.get_type_hints(kind.__init__)
    required = [
        p
        for p in inspect.signature(kind.__init__).parameters.values()
        if p.name != "self" and p.default is inspect.Parameter.empty and p.kind is p.POSITIONAL_OR_KEYWORD
    ]
    return kind(*(SAMPLES[hints[p.name]] for p in required))


ERRORS = engine_errors()


def test_the_walk_finds_the_engine_errors_of_every_layer() -> None:
    names = {kind.__name__ for kind in ERRORS}
    assert {"Conflict", "ProductUnavailable", "NotEligible", "KeyReused", "MasterKeyError"} <= names
    assert len(ERRORS) >= 25


@pytest.mark.parametrize("kind", [k for k in ERRORS if k not in INTERNAL], ids=lambda k: k.__name__)
def test_every_caller_error_has_a_row_in_each_table(kind: type[FlexearnError]) -> None:
    error = sample(kind)
    answers = {"okx": okx.from_engine(error), "bitget": bitget.from_engine(error)}
    assert {name: a.status < 500 for name, a in answers.items()} == {"okx": True, "bitget": True}
    assert answers["okx"].code != okx.SYSTEM_ERROR.code
    assert answers["bitget"].code != bitget.SYSTEM_ERROR.code
    assert engine_error(error).status < 500


@pytest.mark.parametrize("kind", sorted(INTERNAL, key=lambda k: k.__name__), ids=lambda k: k.__name__)
def test_configuration_errors_are_the_servers(kind: type[FlexearnError]) -> None:
    error = sample(kind)
    assert okx.from_engine(error) is okx.SYSTEM_ERROR
    assert bitget.from_engine(error) is bitget.SYSTEM_ERROR


def test_the_engine_errors_the_tables_once_missed_have_their_own_codes() -> None:
    assert okx.from_engine(Conflict("hour 0 of BTC is settled")).code == "51000"
    unavailable = next(k for k in ERRORS if k.__name__ == "ProductUnavailable")("paused")
    not_eligible = next(k for k in ERRORS if k.__name__ == "NotEligible")("VIP products are for VIP users")
    assert (okx.from_engine(unavailable).code, bitget.from_engine(unavailable).code) == ("51731", "59029")
    assert (okx.from_engine(not_eligible).code, bitget.from_engine(not_eligible).code) == ("51732", "59029")
    assert bitget.from_engine(Conflict("settled")).code == "59046"


def test_an_error_without_a_row_takes_its_nearest_ancestors() -> None:
    unfunded = SubscriptionUnfunded("spot holds 1")
    assert (okx.from_engine(unfunded).code, bitget.from_engine(unfunded).code) == ("58350", "59011")
    missing = MissingParameter("ccy")
    assert okx.from_engine(missing).msg == "Parameter ccy can not be empty"
    assert bitget.from_engine(missing).msg == "Parameter ccy cannot be empty"
    too_large = AmountTooLarge("redemption", "5")
    assert okx.from_engine(too_large).msg == "The redemption amount must be equal to or less than 5"
    assert bitget.from_engine(TooPrecise("redemption", 4)).msg.endswith("cannot exceed 4 digits")
    assert bitget.from_engine(BelowMinimum("subscription", Decimal(1))).code == "59020"
