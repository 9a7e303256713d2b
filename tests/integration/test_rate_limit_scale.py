"""FLEXEARN_RATE_LIMIT_SCALE (benchmarks only) multiplies the façades' per-second limits, and
nothing else: the throttle on failed signatures and passphrases keeps its own."""

from __future__ import annotations

from typing import Any

import pytest

from flexearn.adapters.secrets import SecretBox, generate_master_key
from flexearn.api.app import create_app
from flexearn.api.facade import FAILURES_PER_ADDRESS
from flexearn.bootstrap import Flexearn
from flexearn.config import Settings
from flexearn.services import accounts, keys
from tests.contract.okx_http import signed_headers

pytestmark = pytest.mark.filterwarnings("ignore:Using `httpx` with `starlette.testclient`")

TIME = "/api/v5/public/time"  # a public endpoint: 10 requests per second per address
BALANCE = "/api/v5/finance/savings/balance"


def client(app: Flexearn, settings: Settings) -> Any:
    from starlette.testclient import TestClient

    return TestClient(create_app(settings, app))


def answered_before_refused(http: Any, path: str, headers: dict[str, str] | None = None) -> int:
    """How many requests in a burst are answered before the first 429."""
    for n in range(1000):
        if http.get(path, headers=headers).status_code == 429:
            return n
    raise AssertionError("never refused")


@pytest.mark.parametrize("scale", [1, 3])
def test_the_scale_multiplies_each_endpoints_limit(app: Flexearn, scale: int) -> None:
    settings = Settings(master_key=generate_master_key(), demo=True, rate_limit_scale=scale)
    # within the one-second window: the burst takes a few milliseconds a request
    assert answered_before_refused(client(app, settings), TIME) == 10 * scale


def test_the_scale_leaves_the_failure_throttle_alone(app: Flexearn) -> None:
    master_key = generate_master_key()
    user = accounts.create_user(app.uow(), "alice")
    key = keys.create_key(app.uow(), SecretBox(master_key), user, "read")
    settings = Settings(master_key=master_key, demo=True, rate_limit_scale=1000)
    http = client(app, settings)
    for _ in range(FAILURES_PER_ADDRESS):
        guessed = http.get(BALANCE, headers=signed_headers(key, "GET", BALANCE, passphrase="guess"))
        assert guessed.json()["code"] == "50105"
    locked = http.get(BALANCE, headers=signed_headers(key, "GET", BALANCE))
    assert (locked.status_code, locked.json()["code"]) == (429, "50011")


def test_the_setting_is_read_and_bounded() -> None:
    assert Settings.from_env({"FLEXEARN_RATE_LIMIT_SCALE": "1000"}).rate_limit_scale == 1000
    assert Settings.from_env({}).rate_limit_scale == 1
    with pytest.raises(ValueError, match="FLEXEARN_RATE_LIMIT_SCALE"):
        Settings.from_env({"FLEXEARN_RATE_LIMIT_SCALE": "0"})
