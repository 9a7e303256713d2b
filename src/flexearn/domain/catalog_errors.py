"""Why a catalog product refuses a subscription or a redemption: one error, one stable code, per
rule, so that a façade can answer each with its exchange's own code (api/bitget/errors.py)."""

from __future__ import annotations

from decimal import Decimal

from flexearn.domain.errors import FlexearnError, InsufficientBalance, MissingParameter, NotFound


class NoSuchProduct(NotFound):
    """Still `not_found` to the admin API and the logs; Bitget answers it with its own code."""

    def __init__(self, product_id: int) -> None:
        super().__init__(f"no product {product_id}", param="productId")


class ProductUnavailable(FlexearnError):
    """The product takes no subscription now: paused, sold out, completed or offline."""

    code = "product_unavailable"


class ProductNotStarted(ProductUnavailable):
    code = "product_not_started"


class NotEligible(FlexearnError):
    """The user's level may not subscribe to the product (a VIP product, for a user who is not)."""

    code = "not_eligible"


class BeginnersOnly(NotEligible):
    code = "beginners_only"


class TooPrecise(FlexearnError):
    """An amount written with more decimal places than the product (or its currency) takes."""

    code = "too_precise"

    def __init__(self, behavior: str, places: int) -> None:
        super().__init__(f"a {behavior} amount has at most {places} decimal places", param="amount")
        self.behavior, self.places = behavior, places


class BelowMinimum(FlexearnError):
    code = "below_minimum"

    def __init__(self, behavior: str, minimum: Decimal) -> None:
        what = "positive" if minimum == 0 else f"at least {minimum}"
        super().__init__(f"a {behavior} amount must be {what}", param="amount")
        self.behavior, self.minimum = behavior, minimum


class AboveMaximum(FlexearnError):
    code = "above_maximum"

    def __init__(self, maximum: Decimal) -> None:
        super().__init__(f"a subscription amount must be at most {maximum}", param="amount")
        self.maximum = maximum


class QuotaExceeded(FlexearnError):
    code = "quota_exceeded"

    def __init__(self, remaining: Decimal) -> None:
        super().__init__(f"only {remaining} of the product's quota remains", param="amount")
        self.remaining = remaining


class SubscriptionUnfunded(InsufficientBalance):
    """The funding (Bitget: spot) account holds less than the subscription."""

    code = "subscription_unfunded"


class OrderIdRequired(MissingParameter):
    """A fixed holding is redeemed by the `orderId` of its subscription."""

    code = "order_id_required"

    def __init__(self) -> None:
        super().__init__("orderId")


class RedemptionRefused(FlexearnError):
    """The holding cannot be redeemed now (a fixed term without early redemption)."""

    code = "redemption_refused"


class TooFrequent(FlexearnError):
    """A redemption within a minute of the user's last one."""

    code = "too_frequent"

    def __init__(self, wait_ms: int) -> None:
        super().__init__(f"redemptions are a minute apart; the next one in {wait_ms} ms", param="amount")
        self.wait_ms = wait_ms
