"""A running flexearn server and an admin client with the right (or a wrong, or no) token."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import httpx
import pytest

from flexearn.adapters.secrets import generate_master_key
from flexearn.bootstrap import Flexearn
from tests.helpers import T0, start_clock
from tests.server import ADMIN_TOKEN, running_server

PREFIX = "/admin/v1"


@dataclass(frozen=True)
class Admin:
    app: Flexearn  # the same database, for checks the API does not offer
    base_url: str
    client: httpx.Client  # authenticated, at /admin/v1
    master_key: str


def admin_client(base_url: str, token: str | None = ADMIN_TOKEN, **headers: str) -> httpx.Client:
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    return httpx.Client(base_url=base_url + PREFIX, headers=headers, timeout=60)


@pytest.fixture(scope="module")
def admin(module_database_url: str) -> Iterator[Admin]:
    """A server of the module's own, on a simulated clock standing still at T0 + 30 min."""
    app = Flexearn(module_database_url)
    start_clock(app, T0 + 1_800_000)
    master = generate_master_key()
    try:
        with running_server(module_database_url, master) as base, admin_client(base) as client:
            yield Admin(app, base, client, master)
    finally:
        app.close()
