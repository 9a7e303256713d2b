"""An enum's values as plain text, for those that need text rather than members.

Each vocabulary (market modes, product types, statuses, user levels, …) is one `StrEnum` in the
domain; the database CHECKs (`adapters/tables.py`), the admin API's schemas and the CLI's choices
are derived from it through `values`, never written out again.
"""

from __future__ import annotations

from collections.abc import Iterable
from enum import StrEnum


def values(members: Iterable[StrEnum]) -> tuple[str, ...]:
    """The values of an enum (or of some of its members), in their order, as plain `str`."""
    return tuple(member.value for member in members)
