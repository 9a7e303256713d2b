"""One hierarchy of engine errors, each with a stable code that the façades map to wire codes."""

from __future__ import annotations


class FlexearnError(Exception):
    """Base of every error a caller can cause; `code` is stable, `message` is for humans."""

    code = "error"

    def __init__(self, message: str, *, param: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.param = param


class InvalidParameter(FlexearnError):
    code = "invalid_parameter"

    def __init__(self, param: str, detail: str = "") -> None:
        suffix = f": {detail}" if detail else ""
        super().__init__(f"Parameter {param} error{suffix}", param=param)


class TooManyPlaces(InvalidParameter):
    """An amount written with more decimal places than its currency has: an invalid parameter
    everywhere (its code, as the admin API and the OKX and Bitget tables answer it), a kind of its
    own because Binance answers it with its own code (-1111, "Precision is over the maximum
    defined for this asset."; `api/binance/errors._key`)."""


class MissingParameter(FlexearnError):
    code = "missing_parameter"

    def __init__(self, param: str) -> None:
        super().__init__(f"Parameter {param} can not be empty", param=param)


class NotFound(FlexearnError):
    code = "not_found"


class AlreadyExists(FlexearnError):
    code = "already_exists"


class Conflict(FlexearnError):
    """The request is well formed but the state does not allow it (a settled hour, a real clock)."""

    code = "conflict"


class UnsupportedCurrency(FlexearnError):
    code = "unsupported_currency"

    def __init__(self, ccy: str) -> None:
        super().__init__(f"Savings does not support this currency type: {ccy}", param="ccy")
        self.ccy = ccy


class InsufficientBalance(FlexearnError):
    code = "insufficient_balance"

    def __init__(self, detail: str) -> None:
        super().__init__(f"Insufficient balance: {detail}", param="amt")


class AmountTooLarge(FlexearnError):
    """A redemption (or other `behavior`) asked for more than the position holds."""

    code = "amount_too_large"

    def __init__(self, behavior: str, limit: str) -> None:
        super().__init__(f"The {behavior} amount must be equal to or less than {limit}", param="amt")
        self.behavior = behavior
        self.limit = limit


class ClockError(FlexearnError):
    code = "clock"


def lineage(error: FlexearnError) -> list[str]:
    """The error's code, then its ancestors' up to the base's: a façade's error table answers with
    the row of the nearest one it has (a `SubscriptionUnfunded` is an `insufficient_balance`)."""
    codes = [kind.code for kind in type(error).__mro__ if issubclass(kind, FlexearnError)]
    return list(dict.fromkeys(codes))
