"""The in-process sliding window, as the failure throttle uses it: looking records nothing, and a
key locked by failures is free again one window after them, however often it is tried meanwhile."""

from __future__ import annotations

from flexearn.api.ratelimit import RateLimiter


def limiter_at(clock: list[float]) -> RateLimiter:
    limiter = RateLimiter()
    limiter._now = lambda: clock[0]
    return limiter


def test_looking_records_nothing() -> None:
    limiter = limiter_at([0.0])
    assert all(limiter.allow_here("f", "k", 1, 60, record=False) for _ in range(100))
    assert limiter.allow_here("f", "k", 1, 60)  # the first recorded hit still fits
    assert not limiter.allow_here("f", "k", 1, 60, record=False)


def test_a_lock_by_failures_lasts_one_window_after_them_however_often_it_is_tried() -> None:
    clock = [0.0]
    limiter = limiter_at(clock)
    for second in range(10):  # ten failures, one a second
        clock[0] = float(second)
        assert limiter.allow_here("f", "k", 10, 60)
    for second in range(10, 60):  # locked: tried every second, each refusal unrecorded
        clock[0] = float(second)
        assert not limiter.allow_here("f", "k", 10, 60, record=False)
    clock[0] = 60.5  # the first failure left the window: one more may be tried
    assert limiter.allow_here("f", "k", 10, 60, record=False)
    assert limiter.allow_here("f", "other", 10, 60, record=False) is not False  # others never locked


def test_weights_are_spent_in_fixed_windows_on_the_clocks_minutes() -> None:
    """Binance's request weight: counted per identity in the current minute (the wall clock's),
    a spend that would pass the limit refused uncounted with the seconds left, all afresh at the
    next minute."""
    limiter = RateLimiter()
    wall = [120.0]  # the start of a minute
    limiter._wall = lambda: wall[0]
    assert limiter.spend_here("w", "ip", 20, 50, 60) == (20, None)
    wall[0] = 150.0
    assert limiter.spend_here("w", "ip", 20, 50, 60) == (40, None)
    assert limiter.spend_here("w", "ip", 20, 50, 60) == (40, 30.0)  # would be 60: refused, not counted
    assert limiter.spend_here("w", "ip", 10, 50, 60) == (50, None)  # what is left still fits
    assert limiter.spend_here("w", "other", 50, 50, 60) == (50, None)  # each identity its own
    wall[0] = 180.0  # the next minute
    assert limiter.spend_here("w", "ip", 50, 50, 60) == (50, None)
