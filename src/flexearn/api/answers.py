"""Public answers served from memory: the same bytes for every client while nothing has changed.

A public endpoint whose answer depends only on what is stored and on the business hour (the rate
history, the rate summary, the instruments) is computed once and its body kept, keyed by its path,
its query string and the business hour. A kept body is served, without a database slot or a query,
while both hold:

- this process has committed nothing since it was computed (`unit_of_work.commits()`): a purchase,
  a settled hour, a market changed through this process is seen by the next answer;
- it is younger than `max_age` seconds (1 by default): what another process writes (the settling
  worker, a second API process, the CLI) is seen within that time, as the business time itself is
  (`adapters.clock.ClockCache`).

Only successful answers are kept. Query strings are the client's, so the table is bounded: when it
holds `max_entries` bodies it is emptied and refills with what is asked.
"""

from __future__ import annotations

import time
from collections.abc import Hashable

from flexearn.services import unit_of_work

MAX_AGE_S = 1.0
MAX_ENTRIES = 4096


class PublicAnswers:
    def __init__(self, max_age: float = MAX_AGE_S, max_entries: int = MAX_ENTRIES) -> None:
        self.max_age, self.max_entries = max_age, max_entries
        self._bodies: dict[Hashable, tuple[int, float, bytes]] = {}

    def get(self, key: Hashable) -> bytes | None:
        kept = self._bodies.get(key)
        if kept is None:
            return None
        commits, at, body = kept
        if commits != unit_of_work.commits() or time.monotonic() - at >= self.max_age:
            return None
        return body

    def since(self) -> tuple[int, float]:
        """Taken before an answer is computed: what it will be kept against (a commit or the clock
        moving during the computation then makes it out of date, never wrongly fresh)."""
        return unit_of_work.commits(), time.monotonic()

    def keep(self, key: Hashable, since: tuple[int, float], body: bytes) -> None:
        if len(self._bodies) >= self.max_entries:
            self._bodies.clear()
        self._bodies[key] = (*since, body)
