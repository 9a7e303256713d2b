"""The admin API's reference page, served by a running flexearn from its own OpenAPI document."""

from __future__ import annotations

import re

import httpx

from flexearn.api.admin.openapi import document
from flexearn.api.admin.routes import ROUTES
from tests.admin.conftest import PREFIX, Admin


def test_the_reference_page_renders_every_operation_and_schema_without_a_token(admin: Admin) -> None:
    answer = httpx.get(f"{admin.base_url}{PREFIX}/docs", timeout=30)  # no token, as openapi.json
    assert answer.status_code == 200
    assert answer.headers["content-type"].startswith("text/html")
    page = answer.text
    spec = document(ROUTES)
    for path, methods in spec["paths"].items():
        for method, operation in methods.items():
            assert f'id="{operation["operationId"]}"' in page
            assert f">{method.upper()}</span>{PREFIX}{path}</h3>" in page
    for name in spec["components"]["schemas"]:
        assert f'id="schema-{name}"' in page
    assert 'href="/admin/v1/openapi.json"' in page


def test_the_reference_page_needs_no_network(admin: Admin) -> None:
    page = httpx.get(f"{admin.base_url}{PREFIX}/docs", timeout=30).text
    assert "<script" not in page
    assert re.findall(r'(?:src|href)="(?!#|/admin/v1/)[^"]*"', page) == []  # nothing fetched from elsewhere
    assert "@import" not in page
    assert "url(" not in page
