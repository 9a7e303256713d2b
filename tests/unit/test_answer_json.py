"""An answer's bytes are what Starlette's `JSONResponse` (Python's `json`) would send, whoever
renders them (orjson, or `json` for what orjson refuses)."""

from __future__ import annotations

import json
import math
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from flexearn.api.facade import Number, _json
from flexearn.observability.context import RequestInfo


def stdlib(content: Any) -> bytes:
    """As `starlette.responses.JSONResponse.render`."""
    rendered = json.dumps(content, ensure_ascii=False, allow_nan=False, indent=None, separators=(",", ":"))
    return rendered.encode()


numbers = st.floats(allow_nan=False, allow_infinity=False).map(Number)
scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)  # past orjson's 64 bits too
    | st.text()  # any code point: quotes, backslashes, controls, U+2028, lone surrogates excluded below
    | numbers
)
content = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=20,
)


@given(content)
def test_an_answer_is_written_byte_for_byte_as_the_stdlib_writes_it(value: Any) -> None:
    try:
        expected = stdlib(value)
    except UnicodeEncodeError:  # a lone surrogate: neither can send it
        with pytest.raises((UnicodeEncodeError, TypeError)):
            _json(value)
        return
    assert _json(value) == expected


def test_a_band_s_rate_keeps_python_s_text_small_rates_included() -> None:
    """Binance's bands are JSON numbers; orjson alone would write 1e-05 as 0.00001."""
    bands = {"0-5BTC": Number(Decimal("0.00001")), "5-10BTC": Number(Decimal("0.05")), "x": Number(4.8e-07)}
    assert _json(bands) == b'{"0-5BTC":1e-05,"5-10BTC":0.05,"x":4.8e-07}'


def test_what_is_not_json_is_refused_as_before() -> None:
    for value in (
        {"a": Decimal(1)},
        {"a": Number(math.nan)},
        {"a": Number(math.inf)},
        {"a": datetime(2026, 12, 5, tzinfo=UTC)},
        {"a": RequestInfo("r")},  # a dataclass
    ):
        with pytest.raises((TypeError, ValueError)):
            stdlib(value)
        with pytest.raises((TypeError, ValueError)):
            _json(value)
    refused = {1: "a", "b": 2**64}  # orjson refuses both; json writes them
    assert _json(refused) == stdlib(refused)
