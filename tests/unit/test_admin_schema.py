"""The admin API's schemas: requests are checked against what the OpenAPI document says."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest

from flexearn.api.admin.openapi import document, openapi_path
from flexearn.api.admin.routes import ROUTES
from flexearn.api.admin.schema import array, choice, decimal, integer, jsonable, obj, text, validate
from flexearn.domain.errors import InvalidParameter, MissingParameter
from flexearn.domain.market import MatchingMode
from flexearn.services.markets import MarketSettings

BODY = obj(
    {
        "name": text(1, 8, r"^[a-z]+$"),
        "amount": decimal(),
        "count": integer(1, 10, multipleOf=2),
        "kind": choice("a", "b"),
        "tags": array(text(1, 3), 2, uniqueItems=True),
        "inner": obj({"x": integer(0, 1)}, ("x",)),
    },
    ("name",),
)


@pytest.mark.parametrize(
    ("body", "error", "param"),
    [
        ({}, MissingParameter, "name"),
        ({"name": "Bob"}, InvalidParameter, "name"),
        ({"name": "bob", "amount": 5}, InvalidParameter, "amount"),
        ({"name": "bob", "amount": "1e5"}, InvalidParameter, "amount"),
        ({"name": "bob", "count": 3}, InvalidParameter, "count"),
        ({"name": "bob", "count": True}, InvalidParameter, "count"),
        ({"name": "bob", "count": 12}, InvalidParameter, "count"),
        ({"name": "bob", "kind": "c"}, InvalidParameter, "kind"),
        ({"name": "bob", "tags": ["a", "a"]}, InvalidParameter, "tags"),
        ({"name": "bob", "tags": ["a", "b", "c"]}, InvalidParameter, "tags"),
        ({"name": "bob", "tags": ["abcd"]}, InvalidParameter, "tags[0]"),
        ({"name": "bob", "inner": {}}, MissingParameter, "inner.x"),
        ({"name": "bob", "inner": {"x": 1, "y": 2}}, InvalidParameter, "inner.y"),
        ({"name": "bob", "extra": 1}, InvalidParameter, "extra"),
    ],
)
def test_a_body_breaking_its_schema_is_refused_naming_the_field(
    body: dict[str, Any], error: type[Exception], param: str
) -> None:
    with pytest.raises(error) as raised:
        validate(body, BODY, "body")
    assert getattr(raised.value, "param", None) == param


def test_a_body_keeping_its_schema_passes() -> None:
    validate({"name": "bob", "amount": "1.5", "count": 4, "tags": ["a"], "inner": {"x": 0}}, BODY, "body")


def test_results_are_json_with_decimal_strings_and_enum_values() -> None:
    assert jsonable({"a": Decimal("1.50"), "b": [Decimal("0E-8")]}) == {"a": "1.5", "b": ["0"]}
    assert jsonable(MatchingMode.PRO_RATA) == "pro_rata"


def test_the_document_describes_every_route_with_its_schemas() -> None:
    doc = document(ROUTES)
    assert doc["openapi"] == "3.1.0"
    operations = {(method.upper(), path) for path, item in doc["paths"].items() for method in item}
    assert operations == {(r.method, openapi_path(r.path)) for r in ROUTES}
    assert len({r.operation for r in ROUTES}) == len(ROUTES)
    schemas = doc["components"]["schemas"]
    market = schemas[MarketSettings.__name__]
    assert market["required"] == list(market["properties"])
    assert market["properties"]["demand"]["type"] == "string"
    assert market["properties"]["simulation"] == {
        "anyOf": [{"$ref": "#/components/schemas/SimulatedDemand"}, {"type": "null"}]
    }
    for path, item in doc["paths"].items():
        for method, operation in item.items():
            assert {"400", "401", "503"} <= set(operation["responses"]), (method, path)
            if method != "get":
                assert any(p["name"] == "X-Admin-Actor" for p in operation["parameters"])
            for name in [p["name"] for p in operation["parameters"] if p["in"] == "path"]:
                assert f"{{{name}}}" in path
    refs = [ref for ref in _refs(doc) if ref.startswith("#/components/schemas/")]
    assert {ref.rsplit("/", 1)[1] for ref in refs} <= set(schemas)


def _refs(value: Any) -> list[str]:
    if isinstance(value, dict):
        return [value["$ref"]] if "$ref" in value else [r for v in value.values() for r in _refs(v)]
    if isinstance(value, list):
        return [r for v in value for r in _refs(v)]
    return []
