"""When the process's figure cache recomputes a figure, and what it serves meanwhile."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass

from flexearn.services.figures import FigureCache


@dataclass(frozen=True)
class Figure:
    value: int
    rows: int


class Source:
    """A figure that takes `seconds` to compute and counts its computations."""

    def __init__(self, rows: int, seconds: float = 0.0) -> None:
        self.rows, self.seconds, self.computed = rows, seconds, 0

    def __call__(self) -> Figure:
        time.sleep(self.seconds)
        self.computed += 1
        return Figure(self.computed, self.rows)


def test_an_unchanged_version_is_served_from_memory() -> None:
    cache, source = FigureCache(), Source(rows=10)
    assert [cache.get("k", 1, source).value for _ in range(5)] == [1] * 5
    assert source.computed == 1


def test_a_small_figure_is_recomputed_as_soon_as_its_version_moves() -> None:
    cache, source = FigureCache(exact_below=100), Source(rows=99)
    assert [cache.get("k", version, source).value for version in (1, 2, 2, 3)] == [1, 2, 2, 3]


def test_a_large_figure_is_recomputed_at_most_once_per_ten_times_its_cost() -> None:
    cache, source = FigureCache(exact_below=100, cpu_share=0.1), Source(rows=100, seconds=0.03)
    assert cache.get("k", 1, source).value == 1
    started = time.monotonic()
    assert cache.get("k", 2, source).value == 1  # changed, but recomputed 0.03 s ago: the last one
    while time.monotonic() - started < 5 and source.computed == 1:
        cache.get("k", 2, source)
    waited = time.monotonic() - started
    assert source.computed == 2
    assert waited >= 0.25  # 10 × its cost (at least 0.03 s) after the last computation, less a bit
    assert cache.get("k", 2, source).value == 2


def test_a_figure_is_read_again_after_its_max_age_whatever_the_version() -> None:
    cache, source = FigureCache(max_age=0.05), Source(rows=1)
    cache.get("k", 1, source)
    time.sleep(0.06)
    assert cache.get("k", 1, source).value == 2


def test_while_one_thread_recomputes_the_others_serve_the_last_figure() -> None:
    cache, slow = FigureCache(exact_below=10), Source(rows=1, seconds=0.3)
    cache.get("k", 1, Source(rows=1))
    worker = threading.Thread(target=cache.get, args=("k", 2, slow))
    worker.start()
    time.sleep(0.05)
    started = time.monotonic()
    assert cache.get("k", 2, slow).value == 1  # not queued behind the recomputation
    assert time.monotonic() - started < 0.1
    worker.join()
    assert slow.computed == 1
    assert cache.get("k", 2, slow).value == 1  # the new figure (slow's first)
