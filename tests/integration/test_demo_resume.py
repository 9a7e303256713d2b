"""Resuming a demo world: one built by an earlier flexearn, with fewer catalog products than
today's, is not resumed (the banner's snippets would name products it lacks), nor one whose
operator's token has another name than the one asked for."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest

from flexearn.adapters.secrets import SecretBox, generate_master_key
from flexearn.bootstrap import Flexearn
from flexearn.demo import restart
from flexearn.demo.world import HOUSE_TOKEN, PRODUCTS, DemoWorld
from flexearn.services import accounts, clock, keys
from tests.helpers import T0

RESUME: dict[str, Any] = {"seed": 7, "speed": Decimal(0), "start": None, "history_hours": 24}


def built_world(
    app: Flexearn, product_ids: list[int], token: str = HOUSE_TOKEN
) -> tuple[SecretBox, keys.NewKey]:
    """A world recorded as built (its demo user, key and products), its clock standing at T0."""
    box = SecretBox(generate_master_key())
    user_id = accounts.create_user(app.uow(), "demo")
    key = keys.create_key(app.uow(), box, user_id, "read,trade")
    clock.set_simulated(app.uow(), Decimal(0), T0)
    restart._record_built(app, DemoWorld(user_id, key, T0, product_ids, 7, 24, token=token))
    return box, key


def test_a_world_with_fewer_products_than_todays_is_refused_with_reset_named(database_url: str) -> None:
    app = Flexearn(database_url)
    try:
        box, key = built_world(app, [1, 2, 3, 4])  # the first demo's four
        refusal = f"4 catalog products.*this one has {len(PRODUCTS)}.*--reset"
        with pytest.raises(restart.CannotResume, match=refusal):
            restart.open_world(app, box, key, seed=7, speed=Decimal(360), start=None, history_hours=24)
        assert clock.show(app.uow()).speed == 0  # the clock not resumed
    finally:
        app.close()


def test_the_operators_token_is_the_worlds_own_a_different_name_is_refused(database_url: str) -> None:
    app = Flexearn(database_url)
    try:
        ids = list(range(1, len(PRODUCTS) + 1))
        box, key = built_world(app, ids, token="BNB")
        with pytest.raises(restart.CannotResume, match=r"own token is BNB, not XYZ.*--reset"):
            restart.open_world(app, box, key, **RESUME, token="XYZ")
        for named in ("BNB", None):  # its own name, or none: the world's
            world = restart.open_world(app, box, key, **RESUME, token=named)
            assert (world.token, world.resumed, world.product_ids) == ("BNB", True, ids)
    finally:
        app.close()
