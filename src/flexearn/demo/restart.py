"""A sandbox that can be stopped and started again: build the world once, then resume it.

Building the world ends with an audit entry (`DEMO flexearn demo`, with the seed, start, history
and product ids): a database holding that entry is a finished demo world, and a later start
resumes it — same history, positions, key — with the business clock continuing from where it
stopped (see `services.clock.resume`).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from decimal import Decimal

from flexearn.adapters.repository import user_id_by_name
from flexearn.adapters.secrets import MasterKeyError, SecretBox
from flexearn.bootstrap import Flexearn
from flexearn.demo.world import DEMO_USER, HOUSE_TOKEN, PRODUCTS, DemoWorld, seed_world
from flexearn.services import accounts, audit, keys
from flexearn.services import clock as clock_service
from flexearn.services.scheduler import Progress

BUILT = ("DEMO", "flexearn demo")  # the audit entry's method and path


class CannotResume(RuntimeError):
    """The database is not a demo world this run can continue (the message says what to do)."""


@dataclass(frozen=True)
class Built:
    seed: int
    start: int  # business time the clock started at
    history_hours: int
    product_ids: list[int]
    token: str  # the operator's token's name (FLX in a world built before it could be named)


def open_world(
    app: Flexearn,
    box: SecretBox,
    key: keys.NewKey | None,
    *,
    seed: int,
    speed: Decimal,
    start: int | None,
    history_hours: int,
    progress: Progress | None = None,
    token: str | None = None,
) -> DemoWorld:
    """The demo world on `app`'s database: resumed if a run built it, else built afresh (with
    `key` for the demo user if given; `progress` told the history hours built). A database
    holding something else is refused."""
    found = built(app)
    if found is not None:
        if token not in (None, found.token):
            raise CannotResume(
                f"the demo world's own token is {found.token}, not {token}: use --reset to rebuild "
                "it with another name, or leave --token out"
            )
        return _resume(app, box, found, key, speed)
    if accounts.list_currencies(app.uow()):
        raise CannotResume(
            "the database holds something other than a finished demo world (or its building was "
            "interrupted); use --reset to rebuild it, or --db for another database"
        )
    world = seed_world(
        app, box, seed=seed, speed=speed, now=start, history_hours=history_hours, key=key,
        progress=progress, token=token or HOUSE_TOKEN,
    )  # fmt: skip
    _record_built(app, world)
    return world


def built(app: Flexearn) -> Built | None:
    entry = audit.latest(app.uow(), *BUILT)
    if entry is None:
        return None
    data = json.loads(entry.summary)
    return Built(
        int(data["seed"]),
        int(data["start"]),
        int(data["history"]),
        list(data["products"]),
        str(data.get("token", HOUSE_TOKEN)),
    )


def _record_built(app: Flexearn, world: DemoWorld) -> None:
    summary = {
        "seed": world.seed,
        "start": world.now,
        "history": world.history_hours,
        "products": world.product_ids,
        "token": world.token,
        "user": DEMO_USER,
        "apiKey": world.key.api_key,
    }
    method, path = BUILT
    audit.record(
        app.uow(), actor="flexearn demo", token="", method=method, path=path,
        summary=json.dumps(summary), status=200,
    )  # fmt: skip


def _resume(
    app: Flexearn, box: SecretBox, found: Built, key: keys.NewKey | None, speed: Decimal
) -> DemoWorld:
    if len(found.product_ids) != len(PRODUCTS):  # the banner's snippets name today's products
        raise CannotResume(
            f"the demo world has {len(found.product_ids)} catalog products, built by an earlier "
            f"flexearn; this one has {len(PRODUCTS)}: use --reset to rebuild it"
        )
    with app.uow() as uow:
        user_id = user_id_by_name(uow.conn, DEMO_USER)
    if key is None:  # the key file is gone: the printed key cannot be read back (only its hash is kept)
        key = keys.create_key(app.uow(), box, user_id, "read,trade")
    else:
        try:
            record = keys.load_key(app.uow(), box, key.api_key)
        except MasterKeyError:
            raise CannotResume(
                "the demo's key was encrypted under another master key: set FLEXEARN_MASTER_KEY to "
                "it, or use --reset to rebuild the world"
            ) from None
        if record is None:  # e.g. a key file kept from another world: this one issues it too
            keys.create_key(app.uow(), box, user_id, "read,trade", reissue=key)
        elif record.secret != key.secret_key or record.info.user_id != user_id or record.info.revoked_at:
            raise CannotResume(
                f"the key file's key {key.api_key} is not the demo user's usable key in this database; "
                "delete the key file for a new key, or use --reset"
            )
    view = clock_service.resume(app.uow(), speed)
    return DemoWorld(
        user_id, key, view.now, found.product_ids, found.seed, found.history_hours, True, found.token
    )
