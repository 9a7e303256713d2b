"""Schemathesis against the admin API's own OpenAPI document, on a running server.

Every operation gets generated requests (valid per the document, plus the examples it gives):
no answer may be a server error, every status must be documented, every body must match its
schema, and authentication must not be ignored. `positive_data_acceptance` is left out on
purpose: a request can match the document and still be refused with 400 for a rule the
document cannot state (an amount with more decimals than that currency allows, a tier ladder
with a gap), which is the API working as intended.
"""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.specs.openapi.checks import positive_data_acceptance

from flexearn.adapters.secrets import generate_master_key
from flexearn.api.admin import product_spec
from flexearn.api.admin.openapi import document
from flexearn.api.admin.routes import ROUTES
from flexearn.bootstrap import Flexearn
from flexearn.domain.money import D
from flexearn.services import accounts, catalog, markets
from tests.server import ADMIN_TOKEN, running_server

AUTH = {"Authorization": f"Bearer {ADMIN_TOKEN}"}


@pytest.fixture(scope="module")
def admin_base(module_database_url: str) -> Iterator[str]:
    """A server with a currency, a market, a user and a product (ids 1), on the real clock."""
    app = Flexearn(module_database_url)
    accounts.add_currency(app.uow(), "USDT", 8)
    markets.set_market(app.uow(), "USDT", demand=D(100))
    user_id = accounts.create_user(app.uow(), "alice")
    accounts.deposit(app.uow(), user_id, "USDT", D(1000))
    catalog.create_product(
        app.uow(),
        product_spec.parse(
            {"coin": "USDT", "apyList": [{"minStepVal": "0", "maxStepVal": "1000", "currentApy": "5"}]}
        ),
    )
    try:
        with running_server(module_database_url, generate_master_key()) as base:
            yield f"{base}/admin/v1"
            # the server lived through everything schemathesis sent it
            assert httpx.get(f"{base}/healthz").json() == {"status": "ok"}
    finally:
        app.close()


def test_the_server_serves_the_document_generated_from_the_route_table(admin_base: str) -> None:
    served = httpx.get(f"{admin_base}/openapi.json")  # no token needed to read the document
    assert served.status_code == 200
    assert served.json() == DOCUMENT


DOCUMENT = document(ROUTES)
schema = schemathesis.openapi.from_dict(DOCUMENT)


@schema.parametrize()
@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)
def test_the_admin_api_keeps_its_openapi_document(case: schemathesis.Case, admin_base: str) -> None:
    case.call_and_validate(base_url=admin_base, headers=AUTH, excluded_checks=[positive_data_acceptance])
