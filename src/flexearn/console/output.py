"""What the command prints: readable text by default (key-value lines, aligned tables), the same
value as JSON with --json. Amounts are printed as written (`Decimal`, never a float), times that
are epoch milliseconds as UTC ISO times."""

from __future__ import annotations

import json
import sys
from collections.abc import Mapping, Sequence
from dataclasses import asdict, is_dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import click
from click._termui_impl import ProgressBar

from flexearn.domain.money import plain

# Keys whose integer values are epoch milliseconds (e.g. created_at, first_hour, start_time).
TIME_SUFFIXES = ("_at", "_time", "hour", "now", "time", "_ms")
EPOCH_MS_FROM = 10**11  # 1973 in milliseconds: smaller integers are counts, not times


def iso(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def jsonable(value: Any) -> Any:
    if isinstance(value, Decimal):
        return plain(value)
    if is_dataclass(value) and not isinstance(value, type):
        return {k: jsonable(v) for k, v in asdict(value).items()}
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    if hasattr(value, "value") and isinstance(value.value, str):  # enums
        return value.value
    return value


def as_json(value: Any) -> str:
    return json.dumps(jsonable(value))


def render(value: Any) -> str:
    """`value` for a person: a mapping as aligned `key  value` lines (its lists as titled tables),
    a list of mappings as a table, anything else as its text."""
    value = jsonable(value)
    if isinstance(value, dict):
        return _mapping(value)
    if isinstance(value, list):
        return table(value) if value else "(none)"
    return cell(value)


def _mapping(value: Mapping[str, Any]) -> str:
    scalars = {k: v for k, v in value.items() if not isinstance(v, list | dict)}
    width = max((len(k) for k in scalars), default=0)
    parts = ["\n".join(f"{k.ljust(width)}  {cell(v, k)}" for k, v in scalars.items())] if scalars else []
    for key, nested in value.items():
        if isinstance(nested, list):
            parts.append(f"{key}:\n" + _indent(table(nested) if nested else "(none)"))
        elif isinstance(nested, dict):
            parts.append(f"{key}:\n" + _indent(_mapping(nested) if nested else "(none)"))
    return "\n".join(parts)


def _indent(text: str) -> str:
    return "\n".join(f"  {line}" for line in text.splitlines())


def table(rows: Sequence[Any], columns: Sequence[str] | None = None) -> str:
    """Rows (mappings, or plain values) as a table with a header, one column per key."""
    rows = jsonable(list(rows))
    if not all(isinstance(row, dict) for row in rows):
        return "\n".join(cell(row) for row in rows)
    if columns is None:
        columns = list(dict.fromkeys(key for row in rows for key in row))
    cells = [[cell(row.get(c), c) for c in columns] for row in rows]
    widths = [max(len(c), *(len(r[i]) for r in cells)) for i, c in enumerate(columns)]
    lines = [list(columns), *cells]
    return "\n".join(
        "  ".join(v.ljust(w) for v, w in zip(line, widths, strict=True)).rstrip() for line in lines
    )


def cell(value: Any, key: str = "") -> str:
    """One value as text: none as "-", epoch milliseconds (by its key) as a UTC time, a list as its
    items, a mapping as `k=v` pairs."""
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int) and value >= EPOCH_MS_FROM and key.endswith(TIME_SUFFIXES):
        return iso(value)
    if isinstance(value, list):
        return ", ".join(cell(v) for v in value) or "-"
    if isinstance(value, dict):
        return " ".join(f"{k}={cell(v, k)}" for k, v in value.items())
    return str(value)


class Progress:
    """A progress bar on stderr for work that reports itself as (done, total), e.g. settlement
    catching up: called with a new total, it starts a new bar. Off a terminal click prints the
    label once instead of a bar; work of no size prints nothing."""

    def __init__(self, label: str) -> None:
        self.label = label
        self._bar: ProgressBar[int] | None = None
        self._total = self._done = 0

    def __enter__(self) -> Progress:
        return self

    def __exit__(self, *_exc: object) -> None:
        self._close()

    def __call__(self, done: int, total: int) -> None:
        if total <= 0:
            return
        if self._bar is None or total != self._total:
            self._close()
            self._bar = click.progressbar(length=total, label=self.label, file=sys.stderr, show_pos=True)
            self._bar.__enter__()
            self._total, self._done = total, 0
        self._bar.update(done - self._done)
        self._done = done
        if done >= total:
            self._close()

    def _close(self) -> None:
        if self._bar is not None:
            self._bar.__exit__(None, None, None)
            self._bar = None
