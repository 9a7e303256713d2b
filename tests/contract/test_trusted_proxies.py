"""Behind a trusted HTTP proxy, limits and IP allow-lists apply to the forwarded client; from
anyone else, X-Forwarded-For is ignored (it could be forged)."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from flexearn.adapters.secrets import generate_master_key
from flexearn.bootstrap import Flexearn
from tests.contract.conftest import World, _markets, _user
from tests.contract.okx_http import signed_headers
from tests.server import running_server

SUMMARY = "/api/v5/finance/savings/lending-rate-summary"  # public: limited per IP, 6/s
BALANCE = "/api/v5/finance/savings/balance"


def serve(url: str, proxies: str) -> Iterator[World]:
    app = Flexearn(url)
    _markets(app)
    master = generate_master_key()
    try:
        with running_server(url, master, env={"FLEXEARN_TRUSTED_PROXIES": proxies}) as base:
            yield _user(app, master, base)
    finally:
        app.close()


@pytest.fixture
def behind_proxy(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    yield from serve(f"sqlite:///{tmp_path_factory.mktemp('db') / 'proxied.db'}", "127.0.0.1")


@pytest.fixture
def direct(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    yield from serve(f"sqlite:///{tmp_path_factory.mktemp('db') / 'direct.db'}", "")


def codes(base: str, forwarded_for: str, n: int) -> list[str]:
    with httpx.Client(base_url=base) as client:
        return [
            client.get(SUMMARY, headers={"X-Forwarded-For": forwarded_for}).json()["code"] for _ in range(n)
        ]


def test_each_forwarded_client_has_its_own_public_limit(behind_proxy: World) -> None:
    assert codes(behind_proxy.base_url, "10.0.0.1", 7) == ["0"] * 6 + ["50011"]
    assert codes(behind_proxy.base_url, "198.51.100.7, 10.0.0.2", 6) == ["0"] * 6  # another client


def test_without_trusted_proxies_the_header_changes_nothing(direct: World) -> None:
    assert codes(direct.base_url, "10.0.0.1", 6) == ["0"] * 6
    assert codes(direct.base_url, "10.0.0.2", 1) == ["50011"]  # the same connecting client


def test_ip_allow_lists_see_the_forwarded_client_and_not_what_it_forged(behind_proxy: World) -> None:
    key = behind_proxy.new_key("read", ips="10.9.9.9")

    def code(forwarded_for: str) -> str:
        headers = {**signed_headers(key, "GET", BALANCE), "X-Forwarded-For": forwarded_for}
        return str(httpx.get(behind_proxy.base_url + BALANCE, headers=headers).json()["code"])

    assert code("10.9.9.9") == "0"
    assert code("10.9.9.8") == "50110"
    # The client wrote "10.9.9.9"; the proxy appended what it saw: the right-most untrusted hop counts.
    assert code("10.9.9.9, 10.1.1.1") == "50110"
