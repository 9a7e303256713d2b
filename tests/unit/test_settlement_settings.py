"""FLEXEARN_SETTLEMENT_THREADS: read strictly, range-checked, handed on to worker processes."""

from __future__ import annotations

import pytest

from flexearn.config import Settings


def test_two_by_default_and_any_in_one_to_sixteen() -> None:
    assert Settings.from_env({}).settlement_threads == 2
    for text in ("1", "16"):
        assert Settings.from_env({"FLEXEARN_SETTLEMENT_THREADS": text}).settlement_threads == int(text)


@pytest.mark.parametrize("text", ["0", "17", "-1", "2.5", "two", " 2"])
def test_out_of_range_or_malformed_is_refused(text: str) -> None:
    with pytest.raises(ValueError, match="FLEXEARN_SETTLEMENT_THREADS"):
        Settings.from_env({"FLEXEARN_SETTLEMENT_THREADS": text})


def test_handed_on_as_read() -> None:
    settings = Settings.from_env({"FLEXEARN_SETTLEMENT_THREADS": "5"})
    assert Settings.from_env(settings.to_env()).settlement_threads == 5
